"""The token endpoint (client_credentials) with 1 and 2 worker processes, measured with wrk.

    .venv/bin/python bench/workers.py            # BENCH_DURATION, BENCH_ROUNDS as in run.py

Rows, measured round-robin (a shared machine's background load hits every row alike):

- `1 worker`: `oauthd serve` pinned to CPU 0, wrk pinned to CPU 1: the server has one core.
- `2 workers, 1 core`: `--workers 2`, both pinned to CPU 0: what splitting costs.
- `2 workers, 2 cores`: `--workers 2` on CPUs 0-1, wrk pinned to CPU 1. With two cores
  the load generator must share one with a worker: this row is a lower bound, and the
  server-CPU column (all processes of the server, supervisor included) says how much of the
  two cores the server got.

Each row runs twice: one hot client (every request contends for one shard's write lock, across
processes in the 2-worker rows) and 16 clients round-robin. Numbers are indicative.
"""

from __future__ import annotations

import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from loadgen import CLOCK_TICKS, answers_ok, free_port
from providers import lifted_limits

HERE = Path(__file__).resolve().parent
OAUTHD = str(Path(sys.executable).with_name("oauthd"))
SECRET = "bench-secret-" + "x" * 32
CLIENTS = 16


def config(tmp: Path, port: int, *, extra: str = "", listen_port: int | None = None) -> Path:
    """The config of a server whose issuer is on `port`, listening there (or on
    `listen_port`, behind a balancer on `port`); `extra`: more top-level tables."""
    path = tmp / f"oauthd-{listen_port or port}.toml"
    clients = "".join(
        f'[[clients]]\nclient_id = "bench-{i}"\ngrant_types = ["client_credentials"]\n'
        'client_secret_env = "BENCH_CLIENT_SECRET"\n'
        for i in range(CLIENTS)
    )
    path.write_text(
        f'issuer = "http://127.0.0.1:{port}"\n'
        f'data_dir = "{tmp / "data"}"\n'
        f'listen = "127.0.0.1:{listen_port or port}"\n'
        'resources = [{ uri = "https://mcp.example.com/mcp", scopes = ["mcp:tools"] }]\n'
        f"{extra}"
        f"{clients}"
        '[log]\nlevel = "warning"\nformat = "json"\naccess_log = false\n'
        + lifted_limits(),  # wrk is one IP: the per-IP limits would refuse most requests
        encoding="utf-8",
    )
    return path


def basic(client_id: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{SECRET}".encode()).decode()


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of `root` and its children (the supervisor's workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == root or ppid == root:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


@dataclass
class Row:
    name: str
    cpus: str
    workers: int
    auths: list[str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    rps: list[float] = field(default_factory=list)
    p99_us: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    requests: int = 0
    errors: int = 0


def start(row: Row, tmp: Path) -> None:
    row.port = free_port()
    path = config(tmp, row.port)
    env = {**os.environ, "BENCH_CLIENT_SECRET": SECRET}
    argv = ["taskset", "-c", row.cpus, OAUTHD, "serve", "--config", str(path)]
    argv += ["--workers", str(row.workers)]
    log = (tmp / f"{row.port}.log").open("wb")
    row.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while not answers_ok(f"http://127.0.0.1:{row.port}/healthz"):
        if time.monotonic() > deadline or row.process.poll() is not None:
            raise RuntimeError(f"{row.name} did not start; see {log.name}")
        time.sleep(0.1)
    time.sleep(1.0 if row.workers > 1 else 0)  # every worker up, not only the first to answer


def wrk(row: Row, seconds: int, connections: int) -> dict[str, float]:
    return wrk_run(f"http://127.0.0.1:{row.port}", row.auths, seconds, connections)


def wrk_run(url: str, auths: list[str], seconds: int, connections: int) -> dict[str, float]:
    """client_credentials at `url` with wrk on CPU 1, round-robin over `auths`."""
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    argv += ["--timeout", "10s", "-s", str(HERE / "token.lua"), url]
    out = subprocess.run([*argv, "--", *auths], capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH "))
    return {k: float(v) for k, v in (p.split("=") for p in line.split()[1:])}


def main() -> None:
    duration = int(os.environ.get("BENCH_DURATION", "24"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "4"))
    connections = int(os.environ.get("BENCH_CONNECTIONS", "32"))
    one, many = [basic("bench-0")], [basic(f"bench-{i}") for i in range(CLIENTS)]
    rows = [
        Row(f"{label}, {who}", cpus, workers, auths)
        for who, auths in (("1 client", one), (f"{CLIENTS} clients", many))
        for label, cpus, workers in (
            ("1 worker (CPU 0)", "0", 1),
            ("2 workers (both on CPU 0)", "0", 2),
            ("2 workers (CPUs 0-1)", "0,1", 2),
        )
    ]
    with tempfile.TemporaryDirectory(prefix="oauthd-bench-workers-") as name:
        tmp = Path(name)
        try:
            for row in rows:
                start(row, tmp)
                wrk(row, 2, connections)  # warm-up: actors, keys, connections
            for _ in range(rounds):
                for row in rows:
                    assert row.process is not None
                    cpu = tree_cpu_seconds(row.process.pid)
                    r = wrk(row, max(1, duration // rounds), connections)
                    wall = r["duration_us"] / 1e6
                    row.cpu_s += tree_cpu_seconds(row.process.pid) - cpu
                    row.wall_s += wall
                    row.requests += int(r["requests"])
                    row.errors += int(r["errors"])
                    row.rps.append(r["requests"] / wall)
                    row.p99_us.append(r["p99_us"])
        finally:
            for row in rows:
                if row.process is not None and row.process.poll() is None:
                    row.process.terminate()
                    row.process.wait(timeout=30)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"wrk -t1 -c{connections}, {rounds} rounds x {duration // rounds} s; load {load}")
    print("| row | req/s (median) | p99 | server CPU (cores) | CPU/req | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        cores = row.cpu_s / max(row.wall_s, 1e-9)
        print(
            f"| {row.name} | {statistics.median(row.rps):,.0f} | "
            f"{statistics.median(row.p99_us) / 1000:.1f} ms | {cores:.2f} | "
            f"{row.cpu_s * 1e6 / max(row.requests, 1):,.0f} us | {row.errors} |"
        )


if __name__ == "__main__":
    main()
