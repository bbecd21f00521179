"""How long the event loop stalls while client actors commit, in each durability mode.

    .venv/bin/python bench/stall.py [SECONDS_PER_MODE]

A heartbeat task sleeps 1 ms in a loop and records how late each wake-up is: while a handler
(and its COMMIT) runs on the event loop, every other request of the process waits, and the
heartbeat sees it. Meanwhile 16 tasks ask the token grant (`IssueClientToken`, a write: it
records the access token's jti) of 4 client actors, through the real runtime, at a fixed
100 requests/s in all: far below capacity, so a late heartbeat is a stall, not a queue. Modes:

- `fsync=false`: handlers run on the loop (a WAL commit without fsync costs microseconds).
- `fsync=true (thread)`: as shipped, every handler and its fsync'ing COMMIT run in a thread.
- `fsync=true (on loop)`: the counterfactual, handlers kept on the loop, to show the stall the
  thread avoids.
- `fsync=false, lock held by another process`: a second process takes the same shards' write
  lock (BEGIN IMMEDIATE) for 5 ms of every 10 ms, as another worker would on a hot client.
- `..., waiting on the loop`: the counterfactual (how oauthd behaved before the LockBusy
  retry): BEGIN IMMEDIATE waits in SQLite's busy handler on the event loop.

Prints one JSON line per mode: tokens/s, heartbeat lateness p50/p99/max in microseconds.
Numbers are indicative (wall clock, shared machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import trio

import oauthd.actors.shard as shard_module
from oauthd.actors import RegisterClient, client_address, directory_address
from oauthd.actors.client_tokens import IssueClientToken
from oauthd.oauth.rfc6749_client_auth import ClientCredentials
from oauthd.server import Runtime, open_runtime
from oauthd.settings import LogSettings, ResourceSettings, StorageSettings, settings_for_tests
from oauthd.storage import ClientRecord, client_shard_path, hash_secret, shard_key_for, tenant_dir

TENANT = "default"
SECRET = "stall-bench-" + "s" * 32
CLIENTS = 4
ASKERS = 16
RATE_PER_S = 100  # offered load, well under capacity: the loop idles between requests
BEAT_S = 0.001

HOLDER = """
import sqlite3, sys, time
conns = [sqlite3.connect(p, isolation_level=None, timeout=5) for p in sys.argv[1:]]
print("ready", flush=True)
while True:
    for c in conns:
        c.execute("BEGIN IMMEDIATE")
    time.sleep(0.005)
    for c in conns:
        c.execute("COMMIT")
    time.sleep(0.005)
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def record(i: int) -> ClientRecord:
    return ClientRecord(
        client_id=f"stall-{i}",
        client_name="",
        redirect_uris=(),
        grant_types=("client_credentials",),
        response_types=("code",),
        token_endpoint_auth_method="client_secret_basic",
        scope="",
        first_party=False,
        secret_hash=hash_secret(SECRET),
        source="cli",
        created_at=int(time.time()),
    )


async def heartbeat(lateness_us: list[float]) -> None:
    while True:
        t0 = time.perf_counter()
        await trio.sleep(BEAT_S)
        lateness_us.append((time.perf_counter() - t0 - BEAT_S) * 1e6)


async def run_mode(name: str, seconds: float, fsync: bool, holder: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="oauthd-stall-") as tmp:
        settings = settings_for_tests(
            data_dir=Path(tmp),
            listen="127.0.0.1:0",
            log=LogSettings(access_log=False, level="warning"),
            resources=(ResourceSettings("https://mcp.example.com/mcp", ("mcp:tools",)),),
            storage=replace(StorageSettings(), fsync=fsync),
        )
        lateness: list[float] = []
        issued = 0
        async with trio.open_nursery() as nursery:
            runtime: Runtime = await nursery.start(partial(open_runtime, settings, janitor=False))
            system = runtime.system
            for i in range(CLIENTS):
                await system.ask(directory_address(TENANT), RegisterClient(record(i)))
            paths = [
                str(client_shard_path(tenant_dir(Path(tmp), TENANT), shard_key_for(f"stall-{i}")))
                for i in range(CLIENTS)
            ]
            process = None
            if holder:
                process = await trio.lowlevel.open_process(
                    [sys.executable, "-c", HOLDER, *paths], stdout=subprocess.PIPE
                )
                assert process.stdout is not None
                await process.stdout.receive_some()  # "ready": it holds its connections
            try:
                deadline = trio.current_time() + seconds

                async def asker(k: int) -> None:
                    nonlocal issued
                    i = k % CLIENTS
                    message = IssueClientToken(
                        ClientCredentials(f"stall-{i}", "client_secret_basic", SECRET), None, ()
                    )
                    await trio.sleep(k / RATE_PER_S)  # spread the askers evenly
                    while trio.current_time() < deadline:
                        started = trio.current_time()
                        await system.ask(client_address(TENANT, f"stall-{i}"), message)
                        issued += 1
                        await trio.sleep_until(started + ASKERS / RATE_PER_S)

                nursery.start_soon(heartbeat, lateness)
                async with trio.open_nursery() as askers:
                    for k in range(ASKERS):
                        askers.start_soon(asker, k)
            finally:
                if process is not None:
                    process.kill()
                    await process.wait()
            nursery.cancel_scope.cancel()
    return {
        "mode": name,
        "tokens_per_s": round(issued / seconds),
        "beat_late_p50_us": round(percentile(lateness, 50)),
        "beat_late_p99_us": round(percentile(lateness, 99)),
        "beat_late_max_us": round(max(lateness)),
        "beats_late_over_1ms": f"{sum(x > 1000 for x in lateness) / len(lateness):.1%}",
        "beats": len(lateness),
    }


def keep_on_loop() -> None:
    """The counterfactual: run every handler on the event loop even in fsync mode, and wait
    for another process's lock there too."""

    async def receive(self: Any, message: Any) -> Any:
        entry = self._handlers[type(message)]
        return self._run(entry, message)

    shard_module.ShardActor.receive = receive  # type: ignore[method-assign]


async def main(seconds: float) -> None:
    modes = [
        ("fsync=false", False, False),
        ("fsync=true (thread)", True, False),
        ("fsync=false, lock held by another process", False, True),
    ]
    for name, fsync, holder in modes:
        print(json.dumps(await run_mode(name, seconds, fsync, holder)), flush=True)
    keep_on_loop()
    print(json.dumps(await run_mode("fsync=true (on loop)", seconds, True, False)), flush=True)
    name = "fsync=false, lock held by another process, waiting on the loop"
    print(json.dumps(await run_mode(name, seconds, False, True)), flush=True)


if __name__ == "__main__":
    trio.run(main, float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)
