"""The tenant's directory shard: the index of clients (and, in later schema versions, users,
browser sessions, consents and the device user-code index)."""

from __future__ import annotations

import sqlite_utils

from oauthd.storage.people import migrate_consent_redirects, migrate_people
from oauthd.storage.sqlite import Schema, Store

__all__ = [
    "DIRECTORY",
    "count_clients",
    "index_client",
    "list_clients",
    "load_shard_key",
    "unindex_client",
]


def _v1(db: sqlite_utils.Database) -> None:
    db.table("clients").create(
        {"client_id": str, "shard_key": str, "source": str, "created_at": int}, pk="client_id"
    )
    db.table("clients").create_index(["shard_key"], unique=True)


DIRECTORY = Schema("directory", (_v1, migrate_people, migrate_consent_redirects))


def index_client(store: Store, client_id: str, shard_key: str, source: str, now: int) -> None:
    store.conn.execute(
        "INSERT OR REPLACE INTO clients VALUES (?,?,?,?)", (client_id, shard_key, source, now)
    )


def load_shard_key(store: Store, client_id: str) -> str | None:
    rows = store.query("SELECT shard_key FROM clients WHERE client_id = ?", (client_id,))
    return str(rows[0][0]) if rows else None


def count_clients(store: Store) -> int:
    return int(store.query("SELECT count(*) FROM clients")[0][0])


def unindex_client(store: Store, client_id: str) -> None:
    store.conn.execute("DELETE FROM clients WHERE client_id = ?", (client_id,))


def list_clients(store: Store) -> list[tuple[str, str, int]]:
    rows = store.query("SELECT client_id, source, created_at FROM clients ORDER BY created_at")
    return [(str(a), str(b), int(c)) for a, b, c in rows]
