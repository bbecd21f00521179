"""Many tenants in one process (issue 16): startup, memory, and a cold tenant's first token.

    .venv/bin/python bench/tenants.py [--tenants 10000] [--serve 1000] [--clients 100000]
                                      [--touch 5000] [--data DIR] [--no-clients] [--seed N]

Part 1. Makes a data dir of `--tenants` path tenants (tenant_data.py: registry rows, a first
signing key and one confidential client each, through oauthd's own layers), or reuses `--data
DIR` if it holds one (made by an earlier run with the same `--tenants`), and starts a real
`oauthd serve` on it, pinned to CPU 0 (this script runs on CPU 1). Reports the startup time
(process start to the first /healthz answer), RSS when idle, then serves `--serve` different
tenants, one after the other on one keep-alive connection: a client_credentials token (the
tenant's first request: activation and token), its RFC 8414 metadata, and a second token.
Reports the RSS after, and p50/p99 of each kind of request in wall time and in the server's
CPU time (its main thread's /proc schedstat, nanoseconds: steadier on a busy machine). The
target is for a warm page cache, so the served tenants' directories are walked and their
files read just before (`warm_page_cache`): a reused data dir's pages may have left the cache
since (this VM's kernel pages out file pages idle for a minute), and a cold tenant's request
would then wait for the disk.

Part 2. Adds `--clients` clients spread over the tenants (byte copies of each tenant's own
shard, tenant_data.add_clients), reports the data dir's disk use, restarts the server and
sends `--touch` token requests to random clients of random tenants; reports RSS after
(bounded by `actors.max_live` and the router's 100 tenant apps, not by the clients).

Prints a table (bench/table.py); targets are reported, a miss never fails the run.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import random
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from coldclients import percentile
from loadgen import Server, free_port
from oauthd.settings import settings_for_tests
from oauthd.storage.registry import registry_file
from table import Row, at_most, fmt_int, fmt_us, render
from tenant_data import (
    ISSUER,
    MACHINE_SECRET,
    add_clients,
    make_tenants,
    tenant_client,
    tenant_id,
)

OAUTHD = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "oauthd")
SERVER_CPU = "0"
CLIENT_CPU = 1
COLD_P99_MS = 5.0
RSS_SERVED_MB = 500.0
RSS_CLIENTS_MB = 1024.0
DISK_PER_MILLION_GB = 24.0
MIB = 1024 * 1024


def write_config(tmp: Path, data: Path, port: int) -> Path:
    config = tmp / "oauthd.toml"
    config.write_text(
        f'issuer = "{ISSUER}"\ndata_dir = "{data}"\ndev_mode = true\n'
        f'listen = "127.0.0.1:{port}"\n[log]\nlevel = "info"\naccess_log = false\n',
        encoding="utf-8",
    )
    return config


def cpu_ns(pid: int) -> int:
    """CPU time of the server's main thread, in ns (the first field of /proc/<pid>/schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


class Client:
    """One keep-alive connection that times each request in wall and server CPU time."""

    def __init__(self, port: int, pid: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.pid = pid

    def timed(
        self, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[float, float]:
        """(wall ms, server CPU ms) of one request; it must answer 200."""
        cpu = cpu_ns(self.pid)
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        response.read()
        wall = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status}")
        return wall, (cpu_ns(self.pid) - cpu) / 1e6

    def token(self, tenant: int, client: int = 0) -> tuple[float, float]:
        basic = base64.b64encode(f"{tenant_client(tenant, client)}:{MACHINE_SECRET}".encode())
        return self.timed(
            "POST",
            f"/t/{tenant_id(tenant)}/token",
            "grant_type=client_credentials",
            {
                "Authorization": f"Basic {basic.decode()}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )

    def metadata(self, tenant: int) -> tuple[float, float]:
        return self.timed("GET", f"/.well-known/oauth-authorization-server/t/{tenant_id(tenant)}")


def start(stack: ExitStack, tmp: Path, data: Path, name: str) -> tuple[Server, int, float]:
    """A server on CPU 0; its port and the seconds from its start to its first /healthz 200."""
    port = free_port()
    config = write_config(tmp, data, port)
    argv = [OAUTHD, "serve", "--config", str(config)]
    server = Server(argv, f"http://127.0.0.1:{port}/healthz", tmp / f"{name}.log", SERVER_CPU)
    started = time.perf_counter()
    stack.enter_context(server)
    return server, port, time.perf_counter() - started


def timing_row(scenario: str, samples: list[tuple[float, float]], target: str = "") -> Row:
    wall = [w for w, _ in samples]
    cpu = [c for _, c in samples]
    p99 = percentile(wall, 99)
    return Row(
        scenario,
        p50=fmt_us(percentile(wall, 50) * 1000),
        p99=fmt_us(p99 * 1000),
        cpu=f"{fmt_us(percentile(cpu, 50) * 1000)} / {fmt_us(percentile(cpu, 99) * 1000)}",
        value=f"n={len(samples)}",
        target=target,
        result=at_most(percentile(cpu, 99), COLD_P99_MS, " by CPU p99") if target else "",
    )


def rss_row(scenario: str, rss_mib: float, limit_mib: float) -> Row:
    return Row(
        scenario,
        value=f"{rss_mib:.0f} MB",
        target=f"< {limit_mib:g} MB",
        result=at_most(rss_mib, limit_mib),
    )


def prepare(data: Path, tenants: int) -> Row:
    if registry_file(data).exists():
        return Row(f"{fmt_int(tenants)} tenants: data dir reused", value=str(data))
    made = make_tenants(data, settings_for_tests(issuer=ISSUER, data_dir=data), tenants)
    rate = made.count / made.seconds
    return Row(
        f"make {fmt_int(tenants)} tenants (registry row, keys, 1 client)",
        value=f"{made.seconds:.0f} s ({rate:.0f}/s)",
    )


def warm_page_cache(data: Path, tenants: list[int]) -> None:
    """Every file of these tenants read, and their directories listed: in the page cache."""
    for t in tenants:
        for folder, _dirs, files in os.walk(data / tenant_id(t)):
            for name in files:
                with open(os.path.join(folder, name), "rb") as file:
                    while file.read(1 << 20):
                        pass


def serve_tenants(tmp: Path, data: Path, tenants: int, serve: int, seed: int) -> list[Row]:
    rows = []
    picks = random.Random(seed).sample(range(tenants), min(serve, tenants))
    warm_page_cache(data, picks)
    with ExitStack() as stack:
        server, port, startup_s = start(stack, tmp, data, "tenants")
        pid = server.process.pid
        rows.append(
            Row(
                f"startup over {fmt_int(tenants)} tenants (to the first /healthz 200)",
                value=f"{startup_s * 1000:.0f} ms, RSS {server.rss_mib():.0f} MB",
            )
        )
        client = Client(port, pid)
        cold, metadata, warm = [], [], []
        for t in picks:
            cold.append(client.token(t))
            metadata.append(client.metadata(t))
            warm.append(client.token(t))
        rss = server.rss_mib()
        target = f"p99 < {COLD_P99_MS:g} ms"
        rows += [
            timing_row("cold tenant: first request, a token (activation + token)", cold, target),
            timing_row("same tenant: RFC 8414 metadata", metadata),
            timing_row("same tenant: second token (warm)", warm),
            rss_row(f"RSS after serving {fmt_int(len(picks))} tenants", rss, RSS_SERVED_MB),
        ]
    return rows


def disk_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def serve_clients(tmp: Path, data: Path, tenants: int, clients: int, touch: int) -> list[Row]:
    made = add_clients(data, tenants, clients)
    total = clients + tenants
    disk = disk_mib(data)
    disk_target_mib = DISK_PER_MILLION_GB * 1024 * total / 1_000_000
    rows = [
        Row(
            f"add {fmt_int(clients)} clients over {fmt_int(tenants)} tenants",
            value=f"{made.seconds:.0f} s ({clients / made.seconds:,.0f}/s)",
        ),
        Row(
            f"disk use, {fmt_int(total)} clients (du of the data dir)",
            value=f"{disk / 1024:.2f} GB ({disk * MIB / total / 1024:.1f} KB/client)",
            target=f"< {DISK_PER_MILLION_GB:g} GB per million",
            result=at_most(disk, disk_target_mib),
        ),
    ]
    per_tenant = clients // tenants
    rng = random.Random(17)
    with ExitStack() as stack:
        server, port, _startup = start(stack, tmp, data, "clients")
        client = Client(port, server.process.pid)
        samples = [
            client.token(rng.randrange(tenants), rng.randint(0, per_tenant)) for _ in range(touch)
        ]
        rss = server.rss_mib()
    rows += [
        timing_row(
            f"token of a random client of a random tenant ({fmt_int(total)} clients)", samples
        ),
        rss_row(f"RSS after {fmt_int(touch)} such tokens", rss, RSS_CLIENTS_MB),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--serve", type=int, default=1_000, help="tenants served a token each")
    parser.add_argument("--clients", type=int, default=100_000, help="clients added in part 2")
    parser.add_argument("--touch", type=int, default=5_000, help="tokens sent in part 2")
    parser.add_argument("--data", type=Path, help="keep (or reuse) the data dir here")
    parser.add_argument("--no-clients", action="store_true", help="part 1 only")
    parser.add_argument(
        "--seed",
        type=int,
        default=16,
        help="picks part 1's tenants: with a reused --data, "
        "change it, so that the tenants served were never served before (their first token "
        "also creates their client's access-token table)",
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {CLIENT_CPU})
    with tempfile.TemporaryDirectory(prefix="oauthd-bench-tenants-") as name:
        tmp = Path(name)
        data = args.data or tmp / "data"
        rows = [prepare(data, args.tenants)]
        rows += serve_tenants(tmp, data, args.tenants, args.serve, args.seed)
        if not args.no_clients:
            rows += serve_clients(tmp, data, args.tenants, args.clients, args.touch)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(render(rows))
    print(
        f"\nCPU/req: the server's CPU time per request, p50 / p99. Load average {' '.join(load)}."
    )


if __name__ == "__main__":
    main()
