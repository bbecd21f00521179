"""The endpoints on PostgreSQL against SQLite, one host (issue 19).

    .venv/bin/python bench/postgres.py [COUNT]

Starts a throwaway PostgreSQL (tests/postgres.py, durable: fsync and synchronous_commit on),
then, in rounds alternating the backends so background load skews both alike, an `oauthd
serve` in this process on a free loopback port (the native engine, no access log) over
SQLite files or over a fresh database, and times COUNT sequential requests of each row over
one keep-alive HTTP connection:

- token: POST /token, client_credentials with client_secret_basic (one committed jti row);
- refresh: POST /token, refresh_token, each rotating the last one (a chain);
- code flow: /authorize with a session and consent in place (one redirect with a code), then
  POST /token redeeming it (code, family, refresh token, access token rows).

Prints p50 and p99 latency per row and backend, the median over rounds.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Literal

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests: the cluster, the flow

from tests.flow import RESOURCE, Authorization, authorize_code, redeem, register, register_machine
from tests.postgres import server_binaries, throwaway_cluster

from oauthd.server import serve
from oauthd.settings import (
    LimitSettings,
    LogSettings,
    Rate,
    RegistrationSettings,
    ResourceSettings,
    Settings,
    StorageSettings,
    settings_for_tests,
)

ROUNDS = 3
DSN_ENV = "BENCH_PG_DSN"
Row = Callable[[httpx.AsyncClient], Awaitable[Callable[[], Awaitable[None]]]]


async def token_row(http: httpx.AsyncClient) -> Callable[[], Awaitable[None]]:
    machine = await register_machine(http)
    auth = (machine["client_id"], machine["client_secret"])

    async def once() -> None:
        response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)
        assert response.status_code == 200, response.text

    return once


async def refresh_row(http: httpx.AsyncClient) -> Callable[[], Awaitable[None]]:
    client = await register(http)
    auth = Authorization(client["client_id"], resource=None)
    code = (await authorize_code(http, auth))["code"]
    token = (await redeem(http, auth, code)).json()["refresh_token"]

    async def once() -> None:
        nonlocal token
        data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": auth.client_id}
        response = await http.post("/token", data=data)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]

    return once


async def code_flow_row(http: httpx.AsyncClient) -> Callable[[], Awaitable[None]]:
    client = await register(http)
    auth = Authorization(client["client_id"], resource=None)
    await authorize_code(http, auth)  # login and consent once: later runs get a code at once

    async def once() -> None:
        code = (await authorize_code(http, auth))["code"]
        assert (await redeem(http, auth, code)).status_code == 200

    return once


ROWS: dict[str, Row] = {"token": token_row, "refresh": refresh_row, "code flow": code_flow_row}


def settings_for(data: Path, backend: Literal["sqlite", "postgres"]) -> Settings:
    many = Rate(1_000_000, 1)
    return settings_for_tests(
        data_dir=data,
        listen="127.0.0.1:0",
        log=LogSettings(access_log=False),
        limits=LimitSettings(token_per_ip=many, register_per_ip=many),
        registration=RegistrationSettings(allow_client_credentials=True),
        resources=(ResourceSettings(RESOURCE, ("mcp:tools",)),),
        storage=StorageSettings(backend=backend, dsn_env=DSN_ENV),
    )


async def one_round(
    backend: Literal["sqlite", "postgres"], count: int, data: Path
) -> dict[str, tuple[float, float]]:
    settings = settings_for(data, backend)
    stop = trio.Event()
    results: dict[str, tuple[float, float]] = {}
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve, settings, shutdown=stop.wait))
        async with httpx.AsyncClient(base_url=binds[0], timeout=30) as http:
            for name, row in ROWS.items():
                once = await row(http)
                for _ in range(min(50, count)):  # warm: actors spawned, connections made
                    await once()
                times = []
                for _ in range(count):
                    start = time.perf_counter()
                    await once()
                    times.append(time.perf_counter() - start)
                times.sort()
                results[name] = (statistics.median(times), times[int(len(times) * 0.99) - 1])
        stop.set()
    return results


def main(count: int) -> None:
    binaries = server_binaries()
    if binaries is None:
        raise SystemExit("no PostgreSQL server binaries: apt-get install postgresql")
    rounds: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with throwaway_cluster(binaries, durable=True) as cluster, tempfile.TemporaryDirectory() as d:
        for r in range(ROUNDS):
            for backend in ("sqlite", "postgres"):
                os.environ[DSN_ENV] = cluster.create_database()
                data = Path(d) / f"{backend}-{r}"
                for name, result in trio.run(one_round, backend, count, data).items():
                    rounds.setdefault((name, backend), []).append(result)
    print(f"{count} sequential requests per row and round, median of {ROUNDS} rounds")
    print(f"{'row':<10} {'backend':<9} {'p50':>9} {'p99':>9}")
    for (name, backend), results in rounds.items():
        p50 = statistics.median(r[0] for r in results) * 1e3
        p99 = statistics.median(r[1] for r in results) * 1e3
        print(f"{name:<10} {backend:<9} {p50:>6.2f} ms {p99:>6.2f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
