"""Noisy neighbours (issue 16): does a flooded tenant raise another tenant's p99?

One `oauthd serve` pinned to CPU 0 hosts two path tenants, `a` and `b`, each with a
confidential client_credentials client. Tenant B gets a steady light load: client_credentials
token requests at a fixed rate on one keep-alive connection, each latency taken from the
moment the request was due (so a stall also delays the requests behind it, and is counted),
from this process pinned to CPU 1. B's p50/p99 are measured in five rows:

1. alone;
2. while tenant A's token endpoint is flooded (wrk, or the flooder below when wrk is not
   installed: many keep-alive connections, each sending its next request as soon as the last
   is answered, on CPU 1) and A has no request quota;
3. the same flood with A's quota on (`limits.tenant_requests`, set by `oauthd tenants update`
   while the server runs; the server sees it within REGISTRY_POLL_S), A's requests past it
   queued up to `limits.tenant_queue_s` (1 s, the default);
4. the same with 8 times the connections: more than the queue holds (quota x 1 s), so most
   of A's requests are refused at once and come straight back;
5. B alone again: how far the machine's own noise moves B's p99 between two quiet rows.

The rows are measured round-robin, in this order, for several rounds (a shared machine's
background load then hits every row alike); each row's numbers are medians over the rounds.
The table gives B's latencies, the server's CPU time per B request, what A got (requests/s
and the share refused with 429), and p99 over the p99 alone (target <= 2x with the quota on).

Run alone: `.venv/bin/python bench/noisy_neighbour.py`, or with the other benches:
`BENCH_ONLY=noisy .venv/bin/python bench/run.py`. Knobs: BENCH_NOISY_SECONDS (per row and
round, 10), BENCH_NOISY_ROUNDS (3), BENCH_NOISY_RATE (B's requests/s, 20), BENCH_NOISY_QUOTA
(A's requests/s with the quota on, 50), BENCH_CONNECTIONS (the flood's connections, 32),
BENCH_NOISY_ENGINE (`native`, the default, or `hypercorn`). BENCH_NOISY_PROFILE=1 runs the
server under cProfile and prints its top functions (slower: compare rows, not runs).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import http.client
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from tempfile import TemporaryDirectory

from loadgen import Server, free_port
from providers import lifted_limits
from table import Row, fmt_int, fmt_us, render

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
OAUTHD = str(Path(sys.executable).parent / "oauthd")
SERVER_CPU, CLIENT_CPU = "0", "1"
TARGET_RATIO = 2.0
CROWD = 8  # the last row floods with this many times the connections
REGISTRY_POLL_S = 1.0  # oauthd.actors.registry: a running server sees a change within this
RESOURCE = "https://api.bench.example/"
TENANT_SETTINGS = (
    "[registration]\nallow_client_credentials = true\n"
    f'[[resources]]\nuri = "{RESOURCE}"\nscopes = ["bench:read"]\n' + lifted_limits()
)

__all__ = ["main", "noisy_rows"]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True, slots=True)
class NoisyConfig:
    seconds: int  # measured seconds per row and round
    rounds: int
    rate: int  # B's token requests per second
    quota: int  # A's requests per second with the quota on
    connections: int  # the flood's connections
    profile: bool
    engine: str  # [server] engine: native (the default) or hypercorn

    @classmethod
    def from_env(cls) -> NoisyConfig:
        return cls(
            seconds=env_int("BENCH_NOISY_SECONDS", 10),
            rounds=env_int("BENCH_NOISY_ROUNDS", 3),
            rate=env_int("BENCH_NOISY_RATE", 20),
            quota=env_int("BENCH_NOISY_QUOTA", 50),
            connections=env_int("BENCH_CONNECTIONS", 32),
            profile=os.environ.get("BENCH_NOISY_PROFILE", "") == "1",
            engine=os.environ.get("BENCH_NOISY_ENGINE", "native"),
        )


@dataclass(frozen=True, slots=True)
class Client:
    tenant: str
    basic: str  # the Authorization header's value

    @property
    def path(self) -> str:
        return f"/t/{self.tenant}/token"


BODY = b"grant_type=client_credentials"


# --- the server and its tenants ------------------------------------------------------------------


def write_config(tmp: Path, port: int, engine: str) -> Path:
    path = tmp / "noisy.toml"
    path.write_text(
        f'issuer = "http://127.0.0.1:{port}"\ndata_dir = "{tmp / "data"}"\ndev_mode = true\n'
        f'listen = "127.0.0.1:{port}"\n[server]\nengine = "{engine}"\n'
        '[log]\nlevel = "info"\nformat = "json"\n'
        "access_log = true\n" + lifted_limits(),
        encoding="utf-8",
    )
    return path


def oauthd(config: Path, args: list[str]) -> None:
    subprocess.run([OAUTHD, *args, "--config", str(config)], check=True, capture_output=True)


def tenant_settings(tmp: Path, name: str, quota: int = 0) -> Path:
    path = tmp / f"{name}.toml"
    text = TENANT_SETTINGS
    if quota:
        text += f"tenant_requests = {{ requests = {quota}, window_s = 1 }}\n"
    path.write_text(text, encoding="utf-8")
    return path


def register(port: int, tenant: str) -> Client:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = {
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "bench:read",
    }
    conn.request("POST", f"/t/{tenant}/register", json.dumps(body), JSON)
    response = conn.getresponse()
    made = json.loads(response.read())
    conn.close()
    if response.status != 201:
        raise RuntimeError(f"registration at {tenant}: {response.status} {made}")
    pair = f"{made['client_id']}:{made['client_secret']}".encode()
    return Client(tenant, "Basic " + base64.b64encode(pair).decode())


JSON = {"Content-Type": "application/json"}


def server_argv(config: Path, profile: Path | None) -> list[str]:
    if profile is None:
        return [OAUTHD, "serve", "--config", str(config)]
    return [PYTHON, "-m", "cProfile", "-o", str(profile), OAUTHD, "serve", "--config", str(config)]


# --- B's steady load -----------------------------------------------------------------------------


def token_request(conn: http.client.HTTPConnection, client: Client) -> int:
    headers = {"Authorization": client.basic, "Content-Type": "application/x-www-form-urlencoded"}
    conn.request("POST", client.path, BODY, headers)
    response = conn.getresponse()
    response.read()
    return response.status


def steady(port: int, client: Client, rate: int, seconds: int) -> tuple[list[float], int]:
    """`rate` requests a second for `seconds` on one connection: the latency of each, in us,
    from the moment it was due; and how many were not answered 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    interval = 1.0 / rate
    latencies: list[float] = []
    failed = 0
    start = time.perf_counter()
    for i in range(rate * seconds):
        due = start + i * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        if token_request(conn, client) != 200:
            failed += 1
        latencies.append((time.perf_counter() - due) * 1e6)
    conn.close()
    return latencies, failed


def p(latencies: list[float], q: int) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1]


# --- A's flood -----------------------------------------------------------------------------------


async def _flood_connection(
    port: int, request: bytes, deadline: float, counts: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            counts[status] = counts.get(status, 0) + 1
    finally:
        writer.close()


async def _flood(port: int, path: str, basic: str, connections: int, seconds: float) -> None:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {basic}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    counts: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(_flood_connection(port, request, deadline, counts) for _ in range(connections)),
        return_exceptions=True,
    )
    print("FLOOD " + json.dumps({str(k): v for k, v in counts.items()}), flush=True)


@contextmanager
def flood(
    port: int, client: Client, cfg: NoisyConfig, seconds: float
) -> Iterator[dict[str, float]]:
    """A's token endpoint flooded for `seconds` on CPU 1 (wrk when installed); on exit, what
    A got: requests/s and the share answered 429."""
    result: dict[str, float] = {}
    started = time.monotonic()
    if shutil.which("wrk"):
        argv = [
            *("taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{cfg.connections}"),
            *(f"-d{round(seconds)}s", "-s", str(HERE / "lua" / "static.lua")),
            *(f"http://127.0.0.1:{port}{client.path}", "--", "POST", client.basic, BODY.decode()),
        ]
    else:
        argv = [
            *("taskset", "-c", CLIENT_CPU, PYTHON, __file__, "flood", str(port)),
            *(client.path, client.basic, str(cfg.connections), str(seconds)),
        ]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        yield result
    finally:
        out, _ = process.communicate(timeout=seconds + 60)
        wall = time.monotonic() - started
        line = next(x for x in out.splitlines() if x.startswith(("FLOOD ", "BENCH ")))
        if line.startswith("FLOOD "):
            counts = {int(k): v for k, v in json.loads(line[6:]).items()}
        else:  # wrk (report.lua): its errors are the replies that were not 2xx, i.e. the 429s
            fields = {k: int(float(v)) for k, v in (x.split("=") for x in line.split()[1:])}
            counts = {429: fields["errors"], 200: fields["requests"] - fields["errors"]}
        total = sum(counts.values())
        result["rps"] = total / wall
        result["refused"] = counts.get(429, 0) / max(total, 1)
        result["other"] = total - counts.get(429, 0) - counts.get(200, 0)


# --- the rows ------------------------------------------------------------------------------------


@dataclass
class Measured:
    p50_us: float
    p99_us: float
    failed: int
    cpu_us: float  # the server's CPU time over the row, per B request
    flood: dict[str, float]


def measure_b(server: Server, port: int, b: Client, cfg: NoisyConfig, a: Client | None) -> Measured:
    """B's latencies in one round, alone (`a` None) or while A is flooded."""
    cpu_before = server.cpu_seconds()
    if a is None:
        latencies, failed = steady(port, b, cfg.rate, cfg.seconds)
        flooded: dict[str, float] = {}
    else:
        with flood(port, a, cfg, cfg.seconds + 2) as flooded:
            time.sleep(1.0)  # the flood is at full strength before B is measured
            latencies, failed = steady(port, b, cfg.rate, cfg.seconds)
    cpu_us = (server.cpu_seconds() - cpu_before) * 1e6 / len(latencies)
    return Measured(p(latencies, 50), p(latencies, 99), failed, cpu_us, flooded)


def median(rounds: list[Measured]) -> Measured:
    """A row over its rounds: medians, and B's errors summed."""
    floods = [r.flood for r in rounds if r.flood]
    return Measured(
        statistics.median(r.p50_us for r in rounds),
        statistics.median(r.p99_us for r in rounds),
        sum(r.failed for r in rounds),
        statistics.median(r.cpu_us for r in rounds),
        {k: statistics.median(f[k] for f in floods) for k in floods[0]} if floods else {},
    )


def set_quota(config: Path, tmp: Path, port: int, a: Client, quota: int) -> None:
    """`tenants update a`, then a request to A more than REGISTRY_POLL_S after the server last
    read the registry makes it read it again and rebuild A's app (the table's A req/s shows
    the quota at work)."""
    settings = tenant_settings(tmp, f"a-{quota}", quota)
    oauthd(config, ["tenants", "update", "a", "--settings", str(settings)])
    time.sleep(2 * REGISTRY_POLL_S)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(2):
        token_request(conn, a)
    conn.close()


def noisy_rows(tmp: Path, cfg: NoisyConfig) -> tuple[list[Row], list[str]]:
    port = free_port()
    config = write_config(tmp, port, cfg.engine)
    oauthd(config, ["tenants", "add", "a", "--settings", str(tenant_settings(tmp, "a"))])
    oauthd(config, ["tenants", "add", "b", "--settings", str(tenant_settings(tmp, "b"))])
    profile = tmp / "noisy.prof" if cfg.profile else None
    argv = server_argv(config, profile)
    notes: list[str] = []
    crowd = dataclasses.replace(cfg, connections=cfg.connections * CROWD)
    rows: dict[str, list[Measured]] = {k: [] for k in ("alone", "off", "on", "crowd", "again")}
    with Server(argv, f"http://127.0.0.1:{port}/healthz", tmp / "noisy.log", SERVER_CPU) as srv:
        a, b = register(port, "a"), register(port, "b")
        steady(port, b, cfg.rate, 2)  # warm-up: B's client actor, keys, code paths
        for _round in range(cfg.rounds):  # round-robin: background load hits every row alike
            rows["alone"].append(measure_b(srv, port, b, cfg, None))
            set_quota(config, tmp, port, a, 0)
            rows["off"].append(measure_b(srv, port, b, cfg, a))
            set_quota(config, tmp, port, a, cfg.quota)
            rows["on"].append(measure_b(srv, port, b, cfg, a))
            rows["crowd"].append(measure_b(srv, port, b, crowd, a))
            time.sleep(2.0)  # the crowd's last requests drain
            rows["again"].append(measure_b(srv, port, b, cfg, None))
    alone, unlimited, limited, crowded, again = (median(r) for r in rows.values())
    notes.append(f"oauthd exited {srv.exit_code} on SIGTERM")
    if profile is not None:
        notes.append("profile of the server over all rows (cProfile, cumulative):\n" + top(profile))
    table = [
        row(f"B alone: {cfg.rate}/s client_credentials at /t/b/token", alone, None, ""),
        row("B while A's /token is flooded, A without quota", unlimited, alone, ""),
        row(
            f"B while A's /token is flooded, A's quota {cfg.quota}/s",
            limited,
            alone,
            f"p99 <= {TARGET_RATIO:.0f}x alone",
        ),
        row(
            f"the same with {crowd.connections} flood connections (more than the queue holds)",
            crowded,
            alone,
            "",
        ),
        row("B alone again, after the floods (the machine's own noise)", again, alone, ""),
    ]
    flood_kind = "wrk" if shutil.which("wrk") else "the Python flooder (wrk is not installed)"
    notes.append(
        f"A flooded by {flood_kind}, {cfg.connections} connections, CPU {CLIENT_CPU}; "
        f"B from this process on CPU {CLIENT_CPU}; oauthd on CPU {SERVER_CPU}, engine "
        f"{cfg.engine} (BENCH_NOISY_ENGINE: a refusal's cost is mostly the HTTP engine's "
        "per-request work, so the rows depend on it)."
    )
    return table, notes


def row(name: str, m: Measured, alone: Measured | None, target: str) -> Row:
    value = f"{m.failed} B errors"
    if m.flood:
        value = (
            f"A {fmt_int(m.flood['rps'])} req/s, {m.flood['refused']:.0%} 429; {m.failed} B errors"
        )
    result = ""
    if alone is not None:
        ratio = m.p99_us / alone.p99_us
        verdict = ("ok " if ratio <= TARGET_RATIO else "MISS ") if target else ""
        result = f"{verdict}(p99 {ratio:.2f}x alone)"
    return Row(
        name, "", fmt_us(m.p50_us), fmt_us(m.p99_us), fmt_us(m.cpu_us), value, target, result
    )


def top(profile: Path, lines: int = 25) -> str:
    out = StringIO()
    stats = pstats.Stats(str(profile), stream=out)
    stats.sort_stats("tottime")
    stats.print_stats(lines)
    return out.getvalue()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "flood":
        port, path, basic, connections, seconds = sys.argv[2:7]
        asyncio.run(_flood(int(port), path, basic, int(connections), float(seconds)))
        return
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    cfg = NoisyConfig.from_env()
    with TemporaryDirectory(prefix="oauthd-noisy-") as tmp:
        rows, notes = noisy_rows(Path(tmp), cfg)
    print(render(rows) + "\n\n" + "\n".join(f"- {note}" for note in notes))


if __name__ == "__main__":
    main()
