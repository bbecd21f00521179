"""Three hosts on one PostgreSQL behind HAProxy against one host, measured with wrk (issue 19).

    .venv/bin/python bench/hosts.py          # BENCH_DURATION, BENCH_ROUNDS, BENCH_CONNECTIONS

The token endpoint (client_credentials, 16 clients round-robin: tests/../bench/token.lua),
rows measured round-robin so a shared machine's background load hits each alike:

- `SQLite, 1 host`: `oauthd serve` on its data dir, pinned to CPU 0;
- `PostgreSQL, 1 host`: the same on a durable throwaway PostgreSQL (tests/postgres.py:
  fsync and synchronous_commit on), oauthd pinned to CPU 0;
- `PostgreSQL, 3 hosts`: three `oauthd serve` processes, each with its own empty data dir, on
  that database behind HAProxy (tests/haproxy.py, round-robin per request), all three and
  HAProxy pinned to CPU 0, the issuer HAProxy's URL.

wrk runs on CPU 1, with PostgreSQL's own processes (unpinned). On this 2-core VM three hosts
cannot serve more than one core's worth: the 3-host row says what spreading the load over
hosts costs (HAProxy's hop, each host's caches checked against the database), not how it
scales; on three machines each host would have its own cores. The CPU columns are each
group's own CPU time per request: oauthd's processes, PostgreSQL's, HAProxy's.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests: the cluster, HAProxy

from tests.haproxy import balancer
from tests.postgres import Cluster, server_binaries, throwaway_cluster

from loadgen import CLOCK_TICKS, answers_ok, free_port
from workers import CLIENTS, SECRET, basic, config, tree_cpu_seconds, wrk_run

OAUTHD = str(Path(sys.executable).with_name("oauthd"))
DSN_ENV = "BENCH_PG_DSN"
STORAGE = f'[storage]\nbackend = "postgres"\ndsn_env = "{DSN_ENV}"\n'


def pids_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


@dataclass
class Row:
    name: str
    postmaster: int  # the cluster's server process
    url: str = ""
    pids: list[int] = field(default_factory=list)
    haproxy: int = 0  # its process, for the row behind HAProxy
    ports: list[int] = field(default_factory=list)  # each host's own port
    rps: list[float] = field(default_factory=list)
    p99_us: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # group -> CPU seconds
    wall_s: float = 0.0
    requests: int = 0
    errors: int = 0

    def sample(self) -> dict[str, float]:
        return {
            "oauthd": pids_cpu(self.pids),
            "postgres": tree_cpu_seconds(self.postmaster),
            "haproxy": pids_cpu([self.haproxy] if self.haproxy else []),
        }


@contextmanager
def host(tmp: Path, issuer_port: int, port: int, extra: str, env: dict[str, str]) -> Iterator[int]:
    """One `oauthd serve` on CPU 0: its pid."""
    root = tmp / f"host-{port}"
    root.mkdir()
    path = config(root, issuer_port, extra=extra, listen_port=port)
    argv = ["taskset", "-c", "0", OAUTHD, "serve", "--config", str(path)]
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
    )
    try:
        deadline = time.monotonic() + 60
        while not answers_ok(f"http://127.0.0.1:{port}/healthz"):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"oauthd did not start; see {root / 'serve.log'}")
            time.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def start_rows(stack: ExitStack, tmp: Path, cluster: Cluster) -> list[Row]:
    secret = {"BENCH_CLIENT_SECRET": SECRET}
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    rows = []
    port = free_port()
    sqlite = Row("SQLite, 1 host", postmaster, f"http://127.0.0.1:{port}")
    sqlite.pids.append(stack.enter_context(host(tmp, port, port, "", secret)))
    sqlite.ports.append(port)
    rows.append(sqlite)
    env = {**secret, DSN_ENV: cluster.create_database()}
    port = free_port()
    one = Row("PostgreSQL, 1 host", postmaster, f"http://127.0.0.1:{port}")
    one.pids.append(stack.enter_context(host(tmp, port, port, STORAGE, env)))
    one.ports.append(port)
    rows.append(one)
    env = {**secret, DSN_ENV: cluster.create_database()}
    front, ports = free_port(), [free_port() for _ in range(3)]
    three = Row("PostgreSQL, 3 hosts behind HAProxy", postmaster)
    three.pids += [stack.enter_context(host(tmp, front, p, STORAGE, env)) for p in ports]
    three.ports += ports
    proxy = stack.enter_context(balancer(tmp / "haproxy", front, ports))
    three.url, three.haproxy = proxy.url, proxy.pid
    subprocess.run(["taskset", "-a", "-p", "-c", "0", str(three.haproxy)], check=True)
    rows.append(three)
    return rows


def token_statuses(ports: list[int]) -> Counter[str]:
    """The /token answers of the hosts on `ports` by status, from their own /metrics."""
    counts: Counter[str] = Counter()
    for port in ports:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "oauthd_http_requests_total" and labels["endpoint"] == "/token":
                    counts[labels["status"]] += int(sample.value)
    return counts


def main() -> None:
    duration = int(os.environ.get("BENCH_DURATION", "24"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "4"))
    connections = int(os.environ.get("BENCH_CONNECTIONS", "32"))
    auths = [basic(f"bench-{i}") for i in range(CLIENTS)]
    binaries = server_binaries()
    if binaries is None:
        raise SystemExit("bench/hosts.py needs PostgreSQL: apt-get install postgresql haproxy")
    with (
        tempfile.TemporaryDirectory(prefix="oauthd-bench-hosts-") as name,
        throwaway_cluster(binaries, durable=True) as cluster,
        ExitStack() as stack,
    ):
        rows = start_rows(stack, Path(name), cluster)
        for row in rows:
            wrk_run(row.url, auths, 2, connections)  # warm-up: actors, keys, pools
        for _ in range(rounds):
            for row in rows:
                before = row.sample()
                r = wrk_run(row.url, auths, max(1, duration // rounds), connections)
                after = row.sample()
                for group, seconds in after.items():
                    row.cpu[group] = row.cpu.get(group, 0.0) + seconds - before[group]
                wall = r["duration_us"] / 1e6
                row.wall_s += wall
                row.requests += int(r["requests"])
                row.errors += int(r["errors"])
                row.rps.append(r["requests"] / wall)
                row.p99_us.append(r["p99_us"])
        statuses = {row.name: token_statuses(row.ports) for row in rows}
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"wrk -t1 -c{connections}, {rounds} rounds x {duration // rounds} s; load {load}")
    print("| row | req/s (median) | p99 | CPU/req: oauthd | PostgreSQL | HAProxy | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        per = {g: s * 1e6 / max(row.requests, 1) for g, s in row.cpu.items()}
        print(
            f"| {row.name} | {statistics.median(row.rps):,.0f} | "
            f"{statistics.median(row.p99_us) / 1000:.1f} ms | {per['oauthd']:,.0f} us | "
            f"{per['postgres']:,.0f} us | {per['haproxy']:,.0f} us | {row.errors} |"
        )
    for name, counts in statuses.items():
        print(f"{name}: /token answers by status {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
