"""What oauthd's own app costs per request, without sockets or Hypercorn: POST /token
(client_credentials, Basic auth) and GET /.well-known/jwks.json called as ASGI in-process,
and a bare SQLite write transaction (BEGIN IMMEDIATE, one INSERT, COMMIT) on this disk.

`.venv/bin/python bench/token_inproc.py [N]` prints CPU time per request (best of 5 rounds
of N). This is where bench/README.md's in-process figures come from."""

from __future__ import annotations

import base64
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

from oauthd.server import TENANT, open_runtime
from oauthd.settings import ClientSettings, LimitSettings, LogSettings, Rate, settings_for_tests
from oauthd.web import AppState, create_app

SECRET_ENV = "BENCH_TOKEN_SECRET"
ROUNDS = 5


async def call(app: Any, method: str, path: str, body: bytes, headers: list[Any]) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8787),
        "extensions": {},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def cpu_per_call(n: int, once: Callable[[], Awaitable[int]]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.process_time()
        for _ in range(n):
            assert await once() == 200
        best = min(best, (time.process_time() - start) / n)
    return best * 1e6


def sqlite_commit_us(n: int, directory: Path) -> float:
    conn = sqlite3.connect(directory / "commit.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INT)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (f"k{i}", i))
        conn.execute("COMMIT")
    conn.close()
    return (time.perf_counter() - start) / n * 1e6


async def main(n: int) -> None:
    directory = Path(tempfile.mkdtemp())
    os.environ[SECRET_ENV] = "bench-secret"
    client = ClientSettings(
        "svc",
        token_endpoint_auth_method="client_secret_basic",
        client_secret_env=SECRET_ENV,
        grant_types=("client_credentials",),
    )
    settings = settings_for_tests(
        data_dir=directory / "data",
        log=LogSettings(access_log=False),
        limits=LimitSettings(token_per_ip=Rate(1_000_000, 1)),
        clients=(client,),
    )
    async with trio.open_nursery() as nursery:
        runtime = await nursery.start(partial(open_runtime, settings, janitor=False))
        state = AppState(settings, runtime.system, runtime.keyring, runtime.env.clock, TENANT)
        app = create_app(state)
        basic = b"Basic " + base64.b64encode(b"svc:bench-secret")
        form = [(b"content-type", b"application/x-www-form-urlencoded"), (b"authorization", basic)]
        token = partial(call, app, "POST", "/token", b"grant_type=client_credentials", form)
        jwks = partial(call, app, "GET", "/.well-known/jwks.json", b"", [])
        await cpu_per_call(200, token)  # warm: actor spawned, shard open
        print(f"POST /token client_credentials: {await cpu_per_call(n, token):.0f} us CPU")
        print(f"GET /.well-known/jwks.json:     {await cpu_per_call(n, jwks):.0f} us CPU")
        nursery.cancel_scope.cancel()
    print(
        f"SQLite BEGIN IMMEDIATE + INSERT + COMMIT (WAL): {sqlite_commit_us(n, directory):.0f} us"
    )


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
