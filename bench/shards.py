"""Many registered clients, fast: one shard written by oauthd, the rest patched copies of it.

Creating a shard through SQLite costs ~2 ms (100,000 would take minutes), so `make_clients`
creates one real shard with `create_client_shard`, then writes every other shard as a copy of
its bytes with the client_id replaced. Ids have a fixed width, so the copy is byte for byte the
file oauthd would have written: the same pages, the same WAL header, the same schema version; only
the id in the row and in its primary-key index differs. A sample of copies is then opened with
oauthd's own `Store` and checked (`PRAGMA integrity_check`, `load_client`). Every client is also
indexed in the tenant's directory, as `RegisterClient` would do. `machine=True` makes confidential
client_credentials clients instead (client_secret_basic, all with the secret `MACHINE_SECRET`).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

from oauthd.storage import (
    DIRECTORY,
    ClientRecord,
    Store,
    client_shard_path,
    create_client_shard,
    hash_secret,
    index_client,
    load_client,
    shard_key_for,
    tenant_dir,
)
from oauthd.storage.clients import CLIENT

__all__ = ["MACHINE_SECRET", "TENANT", "ClientsMade", "client_id", "make_clients"]

TENANT = "default"
VERIFY_SAMPLE = 200
MACHINE_SECRET = "bench-machine-secret"


@dataclass(frozen=True, slots=True)
class ClientsMade:
    count: int
    seconds: float
    verified: int


def client_id(i: int) -> str:
    """The i-th benchmark client; fixed width, so copies of one shard can be patched in place."""
    return f"bench-client-{i:09d}"


def client_record(cid: str, now: int, machine: bool = False) -> ClientRecord:
    if machine:
        return ClientRecord(
            client_id=cid,
            client_name="bench machine client",
            redirect_uris=(),
            grant_types=("client_credentials",),
            response_types=(),
            token_endpoint_auth_method="client_secret_basic",
            scope="",
            first_party=False,
            secret_hash=hash_secret(MACHINE_SECRET),
            source="cli",
            created_at=now,
        )
    return ClientRecord(
        client_id=cid,
        client_name="bench client",
        redirect_uris=("http://127.0.0.1:9999/callback",),
        grant_types=("authorization_code", "refresh_token"),
        response_types=("code",),
        token_endpoint_auth_method="none",
        scope="",
        first_party=False,
        secret_hash="",
        source="cli",
        created_at=now,
    )


def write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def make_clients(data_dir: Path, count: int, machine: bool = False) -> ClientsMade:
    """Register clients 0..count-1 in `data_dir` (client 0 is created by oauthd itself)."""
    started = time.perf_counter()
    tenant = tenant_dir(data_dir, TENANT)
    now = int(time.time())
    template_id = client_id(0).encode()
    template = client_shard_path(
        tenant, create_client_shard(tenant, client_record(client_id(0), now, machine))
    )
    data = template.read_bytes()
    if data.count(template_id) != 2:  # the row and its primary-key index entry
        raise RuntimeError(f"{template}: unexpected shard layout, cannot patch copies")
    for prefix in range(256):
        (tenant / "clients" / f"{prefix:02x}").mkdir(parents=True, exist_ok=True)
    directory = Store(tenant / "directory.sqlite", DIRECTORY, create=True)
    try:
        with directory.transaction():
            index_client(directory, client_id(0), shard_key_for(client_id(0)), "cli", now)
            for i in range(1, count):
                cid = client_id(i)
                key = shard_key_for(cid)
                write_new(client_shard_path(tenant, key), data.replace(template_id, cid.encode()))
                index_client(directory, cid, key, "cli", now)
    finally:
        directory.close()
    seconds = time.perf_counter() - started
    return ClientsMade(count, seconds, verify(tenant, count))


def verify(tenant: Path, count: int) -> int:
    """Open a sample of shards as oauthd does and check each holds its own client."""
    sample = random.Random(7).sample(range(count), min(count, VERIFY_SAMPLE))
    for i in sample:
        cid = client_id(i)
        store = Store(client_shard_path(tenant, shard_key_for(cid)), CLIENT, create=False)
        try:
            if store.query("PRAGMA integrity_check") != [("ok",)]:
                raise RuntimeError(f"shard of {cid} is corrupt")
            record = load_client(store)
            if record is None or record.client_id != cid:
                raise RuntimeError(f"shard of {cid} holds {record}")
        finally:
            store.close()
    return len(sample)
