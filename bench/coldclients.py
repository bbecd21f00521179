"""Many registered clients: the server's RSS, and the latency of a client's first request.

    .venv/bin/python bench/coldclients.py COUNT [SAMPLE]      # e.g. 100000 2000

Registers COUNT clients in a temporary data dir in bulk (shards.py: one shard made by oauthd,
the rest byte copies of it with the client_id patched, all indexed in the directory), starts
`oauthd serve` on it (one worker, pinned to CPU 0, `actors.max_live` at its default), and sends
`GET /authorize` for SAMPLE random clients, one at a time on one keep-alive connection:

- cold: the client's first request (spawn its actor, open its shard, store the pending
  request), its shard file in the page cache (it was just written);
- cold, evicted: the same for other clients after `posix_fadvise(DONTNEED)` on their shard
  files, so the first request reads the shard from disk, as many would with a million shards
  (4 KB each on disk since schema v8: 4 GB; 84 KB before, 84 GB, more than this machine's RAM);
- warm: a second request to the same client.

Prints one JSON object: setup time, disk use, RSS after startup and after the sample, and
p50/p99 per kind. Wall-clock numbers on a shared machine are indicative.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from loadgen import answers_ok, free_port
from oauthd.storage import client_shard_path, shard_key_for, tenant_dir
from shards import TENANT, client_id, make_clients

OAUTHD = str(Path(sys.executable).with_name("oauthd"))
REDIRECT = "http://127.0.0.1:9999/callback"  # what shards.py registers


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values_ms, 50), 2),
        "p99_ms": round(percentile(values_ms, 99), 2),
        "max_ms": round(max(values_ms), 2),
        "n": len(values_ms),
    }


def authorize_path(cid: str) -> str:
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
    query = {
        "client_id": cid,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "code_challenge": challenge.decode(),
        "code_challenge_method": "S256",
        "state": "s",
    }
    return "/authorize?" + urlencode(query)


def timed_get(conn: http.client.HTTPConnection, path: str) -> float:
    started = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status not in (302, 303):
        raise RuntimeError(f"GET {path}: {response.status}")
    return elapsed


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main(count: int, sample: int) -> None:
    with tempfile.TemporaryDirectory(prefix="oauthd-bench-clients-") as name:
        tmp = Path(name)
        data = tmp / "data"
        made = make_clients(data, count)
        disk_mib = int(
            subprocess.run(["du", "-sm", str(data)], capture_output=True, text=True).stdout.split()[
                0
            ]
        )
        port = free_port()
        config = tmp / "oauthd.toml"
        config.write_text(
            f'issuer = "http://127.0.0.1:{port}"\ndata_dir = "{data}"\ndev_mode = true\n'
            f'listen = "127.0.0.1:{port}"\n[log]\nlevel = "warning"\naccess_log = false\n',
            encoding="utf-8",
        )
        log = (tmp / "serve.log").open("wb")
        argv = ["taskset", "-c", "0", OAUTHD, "serve", "--config", str(config)]
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not answers_ok(f"http://127.0.0.1:{port}/healthz"):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("oauthd did not start")
                time.sleep(0.1)
            rss_idle = rss_mib(server.pid)
            picks = random.Random(3).sample(range(1, count), 2 * sample)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            cold, warm, evicted = [], [], []
            for i in picks[:sample]:
                cold.append(timed_get(conn, authorize_path(client_id(i))))
                warm.append(timed_get(conn, authorize_path(client_id(i))))
            clients_dir = tenant_dir(data, TENANT)
            for i in picks[sample:]:
                evict(client_shard_path(clients_dir, shard_key_for(client_id(i))))
            for i in picks[sample:]:
                evicted.append(timed_get(conn, authorize_path(client_id(i))))
            conn.close()
            rss_after = rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        json.dumps(
            {
                "clients": count,
                "setup_s": round(made.seconds, 1),
                "disk_mib": disk_mib,
                "rss_idle_mib": round(rss_idle, 1),
                "rss_after_mib": round(rss_after, 1),
                "cold": summary(cold),
                "cold_evicted": summary(evicted),
                "warm": summary(warm),
                "load": load,
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
