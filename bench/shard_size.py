"""Bytes on disk per client shard, by kind of client, and the projection for a million clients.

    .venv/bin/python bench/shard_size.py [OLD_SRC]

Runs `oauthd serve` in-process on a temporary data dir, drives each kind of client over HTTP
as a real one would, stops the server (every actor closes its shard: the WAL is checkpointed
and removed) and measures each client's shard: the file with its -wal and -shm, its pages, the
pages of each table and index (`dbstat`), the tables holding rows. Kinds:

- registered: registered over /register (RFC 7591), never used;
- mcp: a public client (an MCP client): code flow with PKCE, openid and a resource, then one
  refresh;
- client_credentials: a confidential client, one token;
- device: a public client, the device flow (RFC 8628) approved in the browser, then one refresh.

With OLD_SRC (the `src` folder of another checkout, e.g. `git worktree add /tmp/old main`),
the same runs again on that code in a subprocess, and the table compares the two. "bytes" are
the files' sizes; "on disk" what they occupy in file-system blocks (what `du` counts).

Then, in this one process and interleaved so that a busy machine skews both alike, what the
new layout costs in time, on SQLite alone: opening a shard and reading its registration
(what a cold actor does) in the v6 layout (4 KB pages, every table) and in the v8 one; and a
first access-token row, into the v6 table that exists and into a v8 shard that creates it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.flow: the HTTP flows

from tests.flow import RESOURCE, Authorization, consent, login, register, tokens_for

from oauthd.server import serve
from oauthd.settings import (
    LogSettings,
    RegistrationSettings,
    ResourceSettings,
    settings_for_tests,
)
from oauthd.storage import Schema, Store, client_shard_path, shard_key_for, tenant_dir
from oauthd.storage.clients import CLIENT

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
KINDS = ("registered", "mcp", "client_credentials", "device")
MILLION = 1_000_000


async def refresh(http: httpx.AsyncClient, client_id: str, token: str) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    response = await http.post("/token", data=form)
    assert response.status_code == 200, response.text


async def mcp(http: httpx.AsyncClient) -> str:
    client = await register(http, redirect_uris=["http://127.0.0.1:5555/cb"])
    tokens = await tokens_for(http, Authorization(client["client_id"]))
    await refresh(http, client["client_id"], tokens["refresh_token"])
    return str(client["client_id"])


async def client_credentials(http: httpx.AsyncClient) -> str:
    body = {
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    client = await register(http, **body, redirect_uris=[])
    auth = (client["client_id"], client["client_secret"])
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert response.status_code == 200, response.text
    return str(client["client_id"])


async def device(http: httpx.AsyncClient) -> str:
    client = await register(http, grant_types=[DEVICE, "refresh_token"], redirect_uris=[])
    cid = client["client_id"]
    form = {"client_id": cid, "scope": "openid email", "resource": RESOURCE}
    started = (await http.post("/device_authorization", data=form)).json()
    response = await http.get("/device", params={"user_code": started["user_code"]})
    location = response.headers["location"]
    if location.startswith("/login"):
        location = (await login(http, location)).headers["location"]
    assert (await consent(http, location)).status_code == 200
    form = {"grant_type": DEVICE, "device_code": started["device_code"], "client_id": cid}
    tokens = (await http.post("/token", data=form)).json()
    await refresh(http, cid, tokens["refresh_token"])
    return str(cid)


async def registered(http: httpx.AsyncClient) -> str:
    return str((await register(http))["client_id"])


FLOWS = {
    "registered": registered,
    "mcp": mcp,
    "client_credentials": client_credentials,
    "device": device,
}


async def run_flows(data_dir: Path) -> dict[str, str]:
    settings = settings_for_tests(
        data_dir=data_dir,
        listen="127.0.0.1:0",
        log=LogSettings(access_log=False, level="warning"),
        resources=(ResourceSettings(RESOURCE, ("mcp:tools",)),),
        registration=RegistrationSettings(allow_client_credentials=True),
    )
    stop = trio.Event()
    client_ids = {}
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, settings, shutdown=stop.wait))
        async with httpx.AsyncClient(base_url=binds[0]) as http:
            for kind in KINDS:
                client_ids[kind] = await FLOWS[kind](http)
        stop.set()
    return client_ids


def measure(path: Path) -> dict[str, Any]:
    """The shard on disk once closed, then what is in it (read-only, after the sizes)."""
    files = {suffix: path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm")}
    sizes = {suffix: f.stat().st_size if f.exists() else 0 for suffix, f in files.items()}
    blocks = sum(f.stat().st_blocks * 512 for f in files.values() if f.exists())
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        pages = dict(conn.execute("SELECT name, count(*) FROM dbstat GROUP BY name").fetchall())
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        used = [t for t in tables if conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone()]  # noqa: S608 (names from sqlite_master)
    finally:
        conn.close()
    return {
        "bytes": sum(sizes.values()),
        "disk": blocks,
        "db": sizes[""],
        "wal": sizes["-wal"],
        "shm": sizes["-shm"],
        "page_size": page_size,
        "pages": page_count,
        "tables": len(tables),
        "objects": len(pages),
        "used": used,
        "dbstat": pages,
    }


def measure_here() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="oauthd-bench-size-") as name:
        data = Path(name) / "data"
        client_ids = trio.run(run_flows, data)
        tenant = tenant_dir(data, "default")
        return {
            kind: measure(client_shard_path(tenant, shard_key_for(cid)))
            for kind, cid in client_ids.items()
        }


def measure_in(src: str) -> dict[str, Any]:
    """The same measurement on another checkout's code, in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": src}
    argv = [sys.executable, __file__, "--json"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


def gb(n: float) -> str:
    return f"{n * MILLION / 1e9:.1f} GB"


def render(now: dict[str, Any], before: dict[str, Any] | None) -> str:
    """One row per kind of client: bytes and blocks per shard, and per million clients."""
    sides = [("before", before), ("after", now)] if before is not None else [("", now)]
    head = "| client |"
    for side, _ in sides:
        head += f" bytes {side} | on disk {side} | pages {side} | 1,000,000 on disk {side} |"
    lines = [head.replace("  ", " "), "|---|" + "---:|" * (4 * len(sides))]
    for kind in KINDS:
        row = f"| {kind} |"
        for _, result in sides:
            a = result[kind]
            row += (
                f" {a['bytes']:,} | {kb(a['disk'])} | {a['pages']} x {a['page_size']} "
                f"| {gb(a['disk'])} |"
            )
        lines.append(row)
    return "\n".join(lines)


class Conn:
    """What grant_tables.insert needs of a Store: its connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def open_and_load(path: Path) -> None:
    """What a cold actor does with an up-to-date shard (Store.__init__, then load_client)."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA user_version").fetchone()
    conn.execute("SELECT * FROM client LIMIT 1").fetchall()
    conn.close()


def first_access_token(path: Path) -> None:
    """Open, then the first access-token row in its own write transaction."""
    from oauthd.storage.grant_tables import insert  # not in OLD_SRC's code, which --json runs

    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    sql = "INSERT INTO access_tokens VALUES (?,?,?,NULL)"
    insert(Conn(conn), "access_tokens", sql, ("jti", None, 1))  # type: ignore[arg-type]
    conn.execute("COMMIT")
    conn.close()


def timing(rounds: int = 7, files: int = 200) -> dict[str, dict[str, float]]:
    """Median over rounds of the mean microseconds per operation, v6 and v8 interleaved."""
    result: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="oauthd-bench-open-") as name:
        tmp = Path(name)
        templates = {"v6": tmp / "v6.sqlite", "v8": tmp / "v8.sqlite"}
        Store(templates["v6"], Schema("client", CLIENT.migrations[:6]), create=True).close()
        Store(templates["v8"], CLIENT, create=True).close()
        for _ in range(rounds):
            copies = {
                layout: [tmp / f"{layout}-{i}.sqlite" for i in range(files)] for layout in templates
            }
            for layout, paths in copies.items():
                for copy in paths:
                    shutil.copyfile(templates[layout], copy)
            for op in (open_and_load, first_access_token):
                for layout, paths in copies.items():
                    started = time.perf_counter()
                    for copy in paths:
                        op(copy)
                    per_op = (time.perf_counter() - started) / files * 1e6
                    result.setdefault(op.__name__, {}).setdefault(layout, []).append(per_op)
            for paths in copies.values():
                for copy in paths:
                    copy.unlink()
    return {
        op: {layout: statistics.median(values) for layout, values in by_layout.items()}
        for op, by_layout in result.items()
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["--json"]:
        print(json.dumps(measure_here()))
        return
    now = measure_here()
    before = measure_in(argv[0]) if argv else None
    print(render(now, before))
    for kind in KINDS:
        print(f"\n{kind}: tables with rows {now[kind]['used']}")
        print(f"  pages by table/index: {now[kind]['dbstat']}")
    print("\nSQLite alone, us per operation (median of rounds), v6 layout -> v8 layout:")
    for op, by_layout in timing().items():
        print(f"  {op}: {by_layout['v6']:.0f} -> {by_layout['v8']:.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
