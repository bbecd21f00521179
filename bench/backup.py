"""Backup cost: `oauthd backup` over COUNT clients, and a server's token p99 beside it.

    .venv/bin/python bench/backup.py [COUNT ...]      # default: 10000 100000

For each COUNT, registers COUNT client_credentials clients in a temporary data dir (shards.py:
byte copies of one real shard), starts `oauthd serve` (one worker, pinned to CPU 0), and
measures, with this process (the load) pinned to CPU 1:

- *full backup*: `oauthd backup --full` into an empty directory, pinned to CPU 0 beside the
  server (the worst case: they share a core): wall time, CPU time (user+system of the backup
  process), shards/s and MB/s (bytes of the copies);
- *incremental, unchanged*: the same command without `--full` at once, nothing changed;
- *token p99*: `POST /token` (client_credentials) at a steady rate per second on one
  connection, latency from when each was due: alone, then while full backups run back to back
  on CPU 0 at `--nice 10` (the command's default), then at `--nice 0`; in rounds,
  round-robin, the median of each.

Knobs: BENCH_BACKUP_RATE (100 requests/s), BENCH_BACKUP_SECONDS (15 per p99),
BENCH_BACKUP_ROUNDS (1).

Prints a Markdown table. The machine is shared: wall times wander; the CPU column is steadier.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from loadgen import answers_ok, free_port
from shards import MACHINE_SECRET, client_id, make_clients

OAUTHD = str(Path(sys.executable).with_name("oauthd"))
SERVER_CPU, LOAD_CPU = "0", 1
RATE = int(os.environ.get("BENCH_BACKUP_RATE", "100"))
SECONDS = int(os.environ.get("BENCH_BACKUP_SECONDS", "15"))
ROUNDS = int(os.environ.get("BENCH_BACKUP_ROUNDS", "1"))
BODY = "grant_type=client_credentials"


def write_config(tmp: Path, port: int) -> Path:
    config = tmp / "oauthd.toml"
    config.write_text(
        f'issuer = "http://127.0.0.1:{port}"\ndata_dir = "{tmp / "data"}"\ndev_mode = true\n'
        f'listen = "127.0.0.1:{port}"\n[log]\nlevel = "warning"\naccess_log = false\n'
        "[limits]\ntoken_per_ip = { requests = 1000000, window_s = 60 }\n",
        encoding="utf-8",
    )
    return config


def backup(config: Path, to: Path, *options: str, nice: int = 0) -> tuple[float, float, str]:
    """One `oauthd backup` on the server's CPU: (wall s, CPU s, its summary line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    argv = ["taskset", "-c", SERVER_CPU, OAUTHD, "backup", "--nice", str(nice)]
    done = subprocess.run(
        [*argv, "--config", str(config), "--to", str(to), *options],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout.strip().splitlines()[-1]


def steady(port: int, seconds: int) -> list[float]:
    """Token requests at RATE per second: each one's latency (ms) from when it was due."""
    basic = base64.b64encode(f"{client_id(1)}:{MACHINE_SECRET}".encode()).decode()
    headers = {
        "Authorization": f"Basic {basic}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    start = time.perf_counter()
    for i in range(RATE * seconds):
        due = start + i / RATE
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        conn.request("POST", "/token", BODY, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"token request answered {response.status}")
        latencies.append((time.perf_counter() - due) * 1000)
    conn.close()
    return latencies


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def during_backups(config: Path, port: int, to: Path, nice: int) -> float:
    """The token p99 while full backups run back to back."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            backup(config, to, "--full", nice=nice)

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        return p99(steady(port, SECONDS))
    finally:
        stop.set()
        worker.join()


def p99_rounds(config: Path, port: int, tmp: Path) -> tuple[float, float, float]:
    """The token p99 alone, beside backups at nice 10 and at nice 0: ROUNDS rounds of the
    three, round-robin (background load hits each alike), the median of each."""
    rows: list[tuple[float, float, float]] = []
    for _ in range(ROUNDS):
        alone = p99(steady(port, SECONDS))
        niced = during_backups(config, port, tmp / "b1", 10)
        plain = during_backups(config, port, tmp / "b2", 0)
        rows.append((alone, niced, plain))
        shutil.rmtree(tmp / "b1")
        shutil.rmtree(tmp / "b2")
    alone, niced, plain = (statistics.median(column) for column in zip(*rows, strict=True))
    return alone, niced, plain


def measure(count: int) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="oauthd-bench-backup-") as name:
        tmp = Path(name)
        made = make_clients(tmp / "data", count, machine=True)
        port = free_port()
        config = write_config(tmp, port)
        log = (tmp / "serve.log").open("wb")
        argv = ["taskset", "-c", SERVER_CPU, OAUTHD, "serve", "--config", str(config)]
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not answers_ok(f"http://127.0.0.1:{port}/healthz"):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"oauthd did not start: {(tmp / 'serve.log').read_text()}")
                time.sleep(0.1)
            steady(port, 2)  # warm-up
            wall, cpu, line = backup(config, tmp / "backup", "--full")
            incremental, _cpu, _line = backup(config, tmp / "backup")
            alone, niced, plain = p99_rounds(config, port, tmp)
        finally:
            server.terminate()
            server.wait(timeout=30)
    mb = float(re.search(r"; ([\d.]+) MB in", line).group(1))  # type: ignore[union-attr]
    return {
        "clients": f"{count:,}",
        "setup s": f"{made.seconds:.0f}",
        "full backup s (wall)": f"{wall:.1f}",
        "backup CPU s": f"{cpu:.1f}",
        "shards/s": f"{(count + 2) / wall:,.0f}",
        "MB/s": f"{mb / wall:.1f}",
        "incremental, unchanged s": f"{incremental:.1f}",
        "token p99 alone ms": f"{alone:.1f}",
        "p99 during backup, nice 10": f"{niced:.1f} ({niced / alone:.1f}x)",
        "p99 during backup, nice 0": f"{plain:.1f} ({plain / alone:.1f}x)",
    }


def main(counts: list[int]) -> None:
    os.sched_setaffinity(0, {LOAD_CPU})
    rows = [measure(count) for count in counts]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row[c] for c in columns) + " |")
    print(
        f"\nload average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}; "
        f"{RATE} token requests/s for {SECONDS} s per p99"
    )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
