"""The per-client shard: `<tenant>/clients/<2 chars>/<shardkey>.sqlite`, one file per client.

v1 holds the registration. v2 adds its RFC 7591 metadata, its registration access token
(hashed) and deletion time, and everything the client's grants need (`grants.py`): pending
authorization requests, codes, refresh-token families, refresh tokens, access-token records.
v3 adds the jti values of client assertions already used (RFC 7523 §3 item 7), each kept
until its assertion expires. v4 adds device codes (RFC 8628, `grants.migrate_v4`). v5 adds
`last_used_at`: when a token was last issued to a dynamically registered client, written at
most once per `USE_RECORDED_EVERY_S`, from which its registration expires (`expires_at`).
v6 adds `fresh_until`: for a client known by its metadata document, until when the stored
copy is fresh (its document's cache lifetime), from which stale-while-error is bounded.
v7 makes the grant tables lazy and leaner (`grant_tables.py`: each is created by its first
row), and v8 rewrites the file in 1 KB pages, so that a shard costs about a page per table
its client uses: a million clients fit in a few GB.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from oauthd.storage.grant_tables import change, insert, migrate_v7, migrate_v9
from oauthd.storage.grants import migrate_v2 as migrate_grants
from oauthd.storage.grants import migrate_v4 as migrate_device_codes
from oauthd.storage.sqlite import Rewrite, Schema, Store

__all__ = [
    "CLIENT",
    "ClientRecord",
    "client_shard_file",
    "client_shard_modified_at",
    "client_shard_path",
    "create_client_shard",
    "delete_client",
    "list_client_shards",
    "load_client",
    "remove_client_shard",
    "save_client",
    "shard_key_for",
    "spend_assertion_jti",
    "touch_client",
]

USE_RECORDED_EVERY_S = 86_400  # last_used_at is rewritten at most once a day: writes stay cheap


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A registered client as stored; `secret_hash` is empty for public clients."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    token_endpoint_auth_method: str
    scope: str
    first_party: bool
    secret_hash: str
    source: str  # "config", "cli", "dynamic" or "document" (a client_id metadata document)
    created_at: int
    metadata: str = "{}"  # the RFC 7591 members as registered, JSON
    registration_token_hash: str = ""  # RFC 7592; empty for clients not registered over HTTP
    deleted_at: int | None = None
    last_used_at: int | None = None  # dynamic, document clients: last token issued (within a day)
    fresh_until: int | None = None  # document clients: the stored copy is fresh until then

    def expires_at(self, unused_ttl_s: int, idle_ttl_s: int) -> int:
        """When the registration of a client that can lapse (dynamic and document clients,
        `Settings.client_quota`) lapses: `unused_ttl_s` after registering if it never got a
        token, else `idle_ttl_s` after it last got one."""
        if self.last_used_at is None:
            return self.created_at + unused_ttl_s
        return self.last_used_at + idle_ttl_s

    def use_is_stale(self, now: int) -> bool:
        """True if issuing a token now should record the use (clients that registered
        themselves or by a document, whose registration lapses; once a day)."""
        if not self.self_asserted:
            return False
        return self.last_used_at is None or now - self.last_used_at >= USE_RECORDED_EVERY_S

    def succeeding(self, earlier: ClientRecord) -> ClientRecord:
        """This registration as the next version of `earlier` (a metadata document that
        changed): the client keeps when it was registered and when it was last used."""
        return dataclasses.replace(
            self, created_at=earlier.created_at, last_used_at=earlier.last_used_at
        )

    @property
    def self_asserted(self) -> bool:
        """Registered by the client itself (RFC 7591) or described by its own metadata
        document (CIMD): nobody vouches for its name (RFC 7591 §5, CIMD-00 §6.4)."""
        return self.source in ("dynamic", "document")


def _v1(db: sqlite_utils.Database) -> None:
    db.table("client").create(
        {
            "client_id": str,
            "client_name": str,
            "redirect_uris": str,
            "grant_types": str,
            "response_types": str,
            "token_endpoint_auth_method": str,
            "scope": str,
            "first_party": int,
            "secret_hash": str,
            "source": str,
            "created_at": int,
        },
        pk="client_id",
    )


def _v2(db: sqlite_utils.Database) -> None:
    client = db.table("client")
    client.add_column("metadata", str, not_null_default="{}")
    client.add_column("registration_token_hash", str, not_null_default="")
    client.add_column("deleted_at", int)
    migrate_grants(db)


def _v3(db: sqlite_utils.Database) -> None:
    db.table("assertion_jtis").create({"jti_hash": str, "expires_at": int}, pk="jti_hash")
    db.table("assertion_jtis").create_index(["expires_at"])


def _v5(db: sqlite_utils.Database) -> None:
    db.table("client").add_column("last_used_at", int)


def _v6(db: sqlite_utils.Database) -> None:
    db.table("client").add_column("fresh_until", int)


# v7 and v8 make a shard small on disk (bench/README.md "Shard size"): v7 drops the grant
# tables a client has not used (`grant_tables.py` creates them on first use), v8 rewrites the
# file in 1 KB pages (a table or index takes at least one page). v9 makes the access tokens'
# family index partial.
PAGE_SIZE = 1024
CLIENT = Schema(
    "client",
    (_v1, _v2, _v3, migrate_device_codes, _v5, _v6, migrate_v7, Rewrite(), migrate_v9),
    page_size=PAGE_SIZE,
)
COLUMNS = (
    "client_id, client_name, redirect_uris, grant_types, response_types, "
    "token_endpoint_auth_method, scope, first_party, secret_hash, source, created_at, "
    "metadata, registration_token_hash, deleted_at, last_used_at, fresh_until"
)


def shard_key_for(client_id: str) -> str:
    """80 bits of SHA-256 in hex: unreserved characters, routable without a global lookup."""
    return hashlib.sha256(client_id.encode("utf-8")).hexdigest()[:20]


def client_shard_file(tenant_root: str, shard_key: str) -> str:
    """The shard's file as a string: the layout, once (also on the hot spawn check)."""
    return f"{tenant_root}/clients/{shard_key[:2]}/{shard_key}.sqlite"


def client_shard_path(tenant_dir: Path, shard_key: str) -> Path:
    return Path(client_shard_file(str(tenant_dir), shard_key))


def save_client(store: Store, record: ClientRecord) -> None:
    store.conn.execute(
        f"INSERT OR REPLACE INTO client ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 (constant columns)
        record_values(record),
    )


def record_values(record: ClientRecord) -> tuple[object, ...]:
    """The registration as the values of COLUMNS (lists as JSON), for any backend."""
    return (
        record.client_id,
        record.client_name,
        json.dumps(record.redirect_uris),
        json.dumps(record.grant_types),
        json.dumps(record.response_types),
        record.token_endpoint_auth_method,
        record.scope,
        int(record.first_party),
        record.secret_hash,
        record.source,
        record.created_at,
        record.metadata,
        record.registration_token_hash,
        record.deleted_at,
        record.last_used_at,
        record.fresh_until,
    )


def create_client_shard(tenant_dir: Path, record: ClientRecord, *, fsync: bool = False) -> str:
    """Create (or overwrite the registration in) the client's shard; returns its shard key.

    A new shard is a copy of an empty template of the current schema, made once per data
    dir: copying a small file costs a fraction of running every migration's DDL again, and
    the copy is renamed into place, so a shard file is never seen half-made. If writing the
    registration fails, a shard this call made is removed again: none is left without one."""
    shard_key = shard_key_for(record.client_id)
    path = client_shard_path(tenant_dir, shard_key)
    made = not path.exists() and _copy_into_place(_template(tenant_dir, fsync), path, fsync)
    try:
        store = Store(path, CLIENT, create=False, fsync=fsync)
        try:
            with store.transaction():
                save_client(store, record)
        finally:
            store.close()
    except BaseException:
        if made:
            remove_client_shard(tenant_dir, shard_key)
        raise
    return shard_key


def _template(tenant_dir: Path, fsync: bool) -> Path:
    template = tenant_dir / "clients" / f".template-v{CLIENT.version}.sqlite"
    if not template.exists():
        scratch = template.with_name(f"{template.name}.{secrets.token_hex(8)}")
        Store(scratch, CLIENT, create=True, fsync=fsync).close()  # closing checkpoints the WAL
        os.replace(scratch, template)
    return template


def _copy_into_place(template: Path, path: Path, fsync: bool) -> bool:
    """True if the copy is now the shard; False if another worker process made it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    shutil.copyfile(template, scratch)
    try:
        if fsync:
            with scratch.open("rb") as copied:
                os.fsync(copied.fileno())
        # A link, not a rename: it never replaces a shard that another worker process made
        # (and may have written to) since our exists() check; theirs is then the one.
        try:
            os.link(scratch, path)
        except FileExistsError:
            return False
        return True
    finally:
        scratch.unlink()


def delete_client(store: Store, now: int) -> None:
    """RFC 7592 §2.3: the client is gone, and so is every grant it held."""
    store.conn.execute("UPDATE client SET deleted_at = ?", (now,))
    change(store, "UPDATE families SET revoked_at = ? WHERE revoked_at IS NULL", (now,))
    change(store, "UPDATE access_tokens SET revoked_at = ? WHERE revoked_at IS NULL", (now,))
    change(store, "DELETE FROM pending")
    change(store, "DELETE FROM device_codes WHERE status != 'redeemed'")


def list_client_shards(tenant_dir: Path) -> list[str]:
    """The shard key of every client shard file on disk, indexed or not (a deleted client is
    unindexed at once, yet its file stays until the janitor removes it)."""
    hex_digits = frozenset("0123456789abcdef")
    keys = []
    for path in sorted((tenant_dir / "clients").glob("??/*.sqlite")):
        key = path.stem
        if len(key) == 20 and hex_digits.issuperset(key) and path.parent.name == key[:2]:
            keys.append(key)
    return keys


def client_shard_modified_at(tenant_dir: Path, shard_key: str) -> float | None:
    """When the shard file was last written (a new shard: when it was made); None if gone."""
    try:
        return client_shard_path(tenant_dir, shard_key).stat().st_mtime
    except FileNotFoundError:
        return None


def remove_client_shard(tenant_dir: Path, shard_key: str) -> None:
    """Remove a client's shard file with its -wal and -shm. Only once no connection is open
    on it: the caller makes sure its actor has closed."""
    path = client_shard_path(tenant_dir, shard_key)
    # The database first: from then on nothing spawns an actor for it (wiring.client_exists).
    # A -journal is left only by a rewrite (schema v8) that was killed; it must not outlive
    # its file, or a new shard at this path would be "rolled back" with it.
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm", f"{path.name}-journal"):
        path.with_name(name).unlink(missing_ok=True)


def load_client(store: Store) -> ClientRecord | None:
    rows = store.query(f"SELECT {COLUMNS} FROM client LIMIT 1")  # noqa: S608 (constant columns)
    return record_from_row(rows[0]) if rows else None


def record_from_row(row: tuple[Any, ...]) -> ClientRecord:
    """A registration from the values of COLUMNS, for any backend."""
    return ClientRecord(
        client_id=row[0],
        client_name=row[1],
        redirect_uris=tuple(json.loads(row[2])),
        grant_types=tuple(json.loads(row[3])),
        response_types=tuple(json.loads(row[4])),
        token_endpoint_auth_method=row[5],
        scope=row[6],
        first_party=bool(row[7]),
        secret_hash=row[8],
        source=row[9],
        created_at=row[10],
        metadata=row[11],
        registration_token_hash=row[12],
        deleted_at=row[13],
        last_used_at=row[14],
        fresh_until=row[15],
    )


def touch_client(store: Store, now: int) -> None:
    """Record that the client was issued a token now (its registration lives on)."""
    store.conn.execute("UPDATE client SET last_used_at = ?", (now,))


def spend_assertion_jti(store: Store, jti: str, expires_at: int, now: int) -> bool:
    """Record a client assertion's jti; False if it was used before and has not expired
    (RFC 7523 §3 item 7). Expired rows go on the way: they can never match again."""
    change(store, "DELETE FROM assertion_jtis WHERE expires_at <= ?", (now,))
    jti_hash = hashlib.sha256(jti.encode("utf-8")).hexdigest()
    inserted = insert(
        store,
        "assertion_jtis",
        "INSERT OR IGNORE INTO assertion_jtis (jti_hash, expires_at) VALUES (?, ?)",
        (jti_hash, expires_at),
    )
    return inserted == 1
