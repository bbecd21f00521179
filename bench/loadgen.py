"""HTTP measurement: a server subprocess pinned to one CPU, wrk pinned to the other.

`Server` starts a command, waits until a readiness URL answers 200, reads the process's CPU
time from /proc, and stops it with SIGTERM. `measure` warms every target up, then runs wrk
against each target in turn for several rounds (the machine may be shared: round-robin spreads
background load evenly over the rows), and returns per target requests/s, p50 and p99 (medians
over rounds) and the server's CPU time per request. A target may bring its own wrk Lua script
(bench/lua/, each loading report.lua) with arguments made fresh for every run, and count what
the script counts (completed flows) instead of HTTP requests.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

__all__ = [
    "HttpResult",
    "LoadSettings",
    "Server",
    "Tally",
    "Target",
    "free_port",
    "measure",
    "measure_once",
]

HERE = Path(__file__).resolve().parent
REPORT_LUA = HERE / "report.lua"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class LoadSettings:
    duration_s: int  # per row, split over the rounds
    warmup_s: int
    connections: int
    rounds: int
    server_cpu: str
    client_cpu: str


@dataclass(frozen=True, slots=True)
class HttpResult:
    requests: int
    errors: int
    rps: float
    p50_us: float
    p99_us: float
    cpu_us_per_request: float
    rps_rounds: tuple[float, ...]  # for paired ratios between rows measured in the same round
    other_cpu_share: float  # CPU time on the server's CPU not spent by the server, / wall time
    http_requests: int = 0  # HTTP requests behind `requests` (more than it when it counts flows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers_ok(url: str) -> bool:
    """Whether GET `url` (plain http) answers 200 within a second."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=1.0)
    try:
        conn.request("GET", parts.path or "/")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class Server:
    """A server process on `cpu`, ready once `ready_url` answers 200; stopped by SIGTERM."""

    def __init__(
        self,
        argv: list[str],
        ready_url: str,
        log_path: Path,
        cpu: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = ["taskset", "-c", cpu, *argv]  # taskset execs: the pid is the server's
        self.ready_url = ready_url
        self.log_path = log_path
        self.env = {**os.environ, **env} if env else None
        self.cwd = cwd
        self.exit_code: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
        )
        log.close()
        self._wait_ready(timeout_s=30.0)
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "server not started"
        return self._process

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv} exited early; see {self.log_path}")
            if answers_ok(self.ready_url):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.ready_url} not ready after {timeout_s} s; see {self.log_path}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (/proc/<pid>/stat fields 14 and 15)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()  # the command name may contain spaces
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then wait; a server that does not exit in time is killed (exit code -9)."""
        if self.exit_code is not None or self._process is None:
            return self.exit_code or 0
        self._process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            self.exit_code = -9
        return self.exit_code


def run_wrk(
    url: str,
    duration_s: float,
    load: LoadSettings,
    script: Path = REPORT_LUA,
    args: Sequence[str] = (),
    pace_ms: float = 0.0,
) -> dict[str, float]:
    """One wrk run; `pace_ms` > 0: each connection waits that long on average before each
    request (report.lua's `delay`), for a fixed rate of about connections / pace."""
    env = {**os.environ, "BENCH_PACE_MS": f"{pace_ms:.3f}"} if pace_ms > 0 else None
    argv = [
        *("taskset", "-c", load.client_cpu, "wrk", "-t1"),
        *(f"-c{load.connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s"),
        *("-s", str(script), url),
        *(("--", *args) if args else ()),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    return {k: float(v) for k, v in (pair.split("=") for pair in line.split()[1:])}


def cpu_busy_seconds(cpu: str) -> float:
    """Time CPU `cpu` spent not idle, by anyone (/proc/stat; steal counts as busy)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")


@dataclass(frozen=True, slots=True)
class Target:
    """One row: a URL on a running server; optionally a scenario's wrk Lua script (which
    loads report.lua) with arguments made fresh for every wrk run, and whether the row counts
    the script's `bench_counted` (e.g. completed flows) instead of HTTP requests."""

    name: str
    server: Server
    url: str
    script: Path = REPORT_LUA
    args: Callable[[], Sequence[str]] | None = None
    per_count: bool = False

    def run(self, duration_s: float, load: LoadSettings, pace_ms: float = 0.0) -> dict[str, float]:
        args = self.args() if self.args is not None else ()
        return run_wrk(self.url, duration_s, load, self.script, args, pace_ms)


@dataclass
class Tally:
    """One target's rounds, summed or kept per round."""

    requests: int = 0
    http_requests: int = 0
    errors: int = 0
    cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    wall_s: float = 0.0
    rps: list[float] = field(default_factory=list)
    p50_us: list[float] = field(default_factory=list)
    p99_us: list[float] = field(default_factory=list)

    def result(self) -> HttpResult:
        return HttpResult(
            requests=self.requests,
            errors=self.errors,
            rps=statistics.median(self.rps),
            p50_us=statistics.median(self.p50_us),
            p99_us=statistics.median(self.p99_us),
            cpu_us_per_request=self.cpu_s * 1e6 / max(self.requests, 1),
            rps_rounds=tuple(self.rps),
            other_cpu_share=self.other_cpu_s / max(self.wall_s, 1e-9),
            http_requests=self.http_requests,
        )


def measure_once(
    target: Target, duration_s: float, load: LoadSettings, tally: Tally, pace_ms: float = 0.0
) -> None:
    args = target.args() if target.args is not None else ()  # before the CPU is read
    cpu_before = target.server.cpu_seconds()
    busy_before = cpu_busy_seconds(load.server_cpu)
    report = run_wrk(target.url, duration_s, load, target.script, args, pace_ms)
    cpu_s = target.server.cpu_seconds() - cpu_before
    wall_s = report["duration_us"] / 1e6
    units = report["counted"] if target.per_count else report["requests"]
    tally.requests += int(units)
    tally.http_requests += int(report["requests"])
    tally.errors += int(report["errors"])
    tally.cpu_s += cpu_s
    tally.other_cpu_s += max(0.0, cpu_busy_seconds(load.server_cpu) - busy_before - cpu_s)
    tally.wall_s += wall_s
    tally.rps.append(units / wall_s)
    tally.p50_us.append(report["p50_us"])
    tally.p99_us.append(report["p99_us"])


def measure(targets: list[Target], load: LoadSettings) -> dict[str, HttpResult]:
    """Warm every target up, then measure them in turn, `load.rounds` times round-robin, so
    that a change in background load hits every row alike; medians over the rounds."""
    for target in targets:
        if load.warmup_s > 0:
            target.run(load.warmup_s, load)
    tallies = {target.name: Tally() for target in targets}
    for _round in range(load.rounds):
        for target in targets:
            measure_once(target, load.duration_s / load.rounds, load, tallies[target.name])
    return {name: tally.result() for name, tally in tallies.items()}
