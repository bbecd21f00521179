"""Many tenants, fast: registry rows, keys and clients written through oauthd's own layers.

`make_tenants(data_dir, root, count)` adds `count` path tenants to the registry in one
transaction (the rows `AddTenant` writes, with the same settings check), then gives each its
first signing key (its `KeyManager` opened on its directory, as a first activation would: the
key is generated, sealed and stored by oauthd's code) and one confidential client_credentials
client (`create_client_shard` plus the directory's index, as `RegisterClient` does). No server
and no CLI process is involved, so 10,000 tenants take a minute or two, not an hour.

`add_clients(data_dir, tenants, count)` then spreads `count` more clients over those tenants,
each tenant's as byte copies of one real shard with the fixed-width client_id patched
(shards.py explains why that is the file oauthd would write).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from oauthd.actors.keys import KeyManager
from oauthd.actors.registry import path_issuer, tenant_settings
from oauthd.keys import KeyringHolder
from oauthd.runtime import SystemClock
from oauthd.settings import Settings
from oauthd.storage import (
    DIRECTORY,
    SQLITE,
    Store,
    client_shard_path,
    create_client_shard,
    index_client,
    shard_key_for,
    tenant_dir,
)
from oauthd.storage.registry import TenantRow, insert_tenant, open_registry
from shards import MACHINE_SECRET, client_record, write_new

__all__ = [
    "ISSUER",
    "MACHINE_SECRET",
    "Made",
    "add_clients",
    "make_tenants",
    "tenant_client",
    "tenant_id",
]

# The root issuer the rows are made for; the bench server uses it whatever port it listens on,
# so a data dir made once can be served again (`bench/tenants.py --data DIR`).
ISSUER = "https://auth.bench.example"
SETTINGS = ""  # every table at its default: the same work for each tenant


@dataclass(frozen=True, slots=True)
class Made:
    count: int
    seconds: float


def tenant_id(i: int) -> str:
    return f"tenant-{i:05d}"


def tenant_client(tenant: int, i: int = 0) -> str:
    """The i-th client of a tenant; fixed width, so shard copies can be patched in place."""
    return f"{tenant_id(tenant)}-client-{i:07d}"


def make_tenants(data_dir: Path, root: Settings, count: int) -> Made:
    started = time.perf_counter()
    now = int(time.time())
    store = open_registry(data_dir)
    try:
        with store.transaction():
            for i in range(count):
                tenant = tenant_id(i)
                row = TenantRow(tenant, path_issuer(root, tenant), "active", SETTINGS, now, now)
                tenant_settings(root, row)  # the check AddTenant makes
                insert_tenant(store, row)
    finally:
        store.close()
    own = tenant_settings(root, TenantRow("x", path_issuer(root, "x"), "active", SETTINGS, 0, 0))
    for i in range(count):
        tenant = tenant_id(i)
        directory = tenant_dir(data_dir, tenant)
        trio.run(first_key, tenant, own)
        cid = tenant_client(i)
        key = create_client_shard(directory, client_record(cid, now, machine=True))
        index = Store(directory / "directory.sqlite", DIRECTORY, create=True)
        try:
            with index.transaction():
                index_client(index, cid, key, "cli", now)
        finally:
            index.close()
    return Made(count, time.perf_counter() - started)


async def first_key(tenant: str, own: Settings) -> None:
    """What a tenant's first activation does to its keys shard: plan, generate, seal, store."""
    opener = partial(SQLITE.open_keys, own, tenant)
    manager = KeyManager(opener, own.keys, SystemClock(), KeyringHolder(), None)
    await manager.open()
    await manager.close()


def add_clients(data_dir: Path, tenants: int, count: int) -> Made:
    """`count` more clients, spread evenly over tenants 0..tenants-1 (client 0 of each is the
    one `make_tenants` made; these are numbered from 1)."""
    started = time.perf_counter()
    now = int(time.time())
    per_tenant, extra = divmod(count, tenants)
    for t in range(tenants):
        n = per_tenant + (1 if t < extra else 0)
        if n:
            _copies(tenant_dir(data_dir, tenant_id(t)), t, n, now)
    return Made(count, time.perf_counter() - started)


def _copies(directory: Path, tenant: int, n: int, now: int) -> None:
    template_id = tenant_client(tenant, 0).encode()
    data = client_shard_path(directory, shard_key_for(tenant_client(tenant, 0))).read_bytes()
    if data.count(template_id) != 2:  # the row and its primary-key index entry
        raise RuntimeError(f"{directory}: unexpected shard layout, cannot patch copies")
    index = Store(directory / "directory.sqlite", DIRECTORY, create=True)
    try:
        with index.transaction():
            for i in range(1, n + 1):
                cid = tenant_client(tenant, i)
                key = shard_key_for(cid)
                path = client_shard_path(directory, key)
                path.parent.mkdir(exist_ok=True)  # as oauthd makes them: those in use only
                write_new(path, data.replace(template_id, cid.encode()))
                index_client(index, cid, key, "cli", now)
    finally:
        index.close()
