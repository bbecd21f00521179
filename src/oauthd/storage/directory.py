"""The tenant's directory shard: the index of clients (and, in later schema versions, users,
browser sessions, consents and the device user-code index).

v4 adds the user-code index (RFC 8628 §3.3): the normalised code a person types names the
client shard and the device code (by hash) it stands for, until it expires. v5 adds the
identities linking users to upstream subjects (federation)."""

from __future__ import annotations

import sqlite_utils

from oauthd.storage.people import migrate_consent_redirects, migrate_identities, migrate_people
from oauthd.storage.sqlite import Schema, Store

__all__ = [
    "DIRECTORY",
    "count_clients",
    "index_client",
    "index_user_code",
    "list_clients",
    "load_user_code",
    "unindex_client",
]


def _v1(db: sqlite_utils.Database) -> None:
    db.table("clients").create(
        {"client_id": str, "shard_key": str, "source": str, "created_at": int}, pk="client_id"
    )
    db.table("clients").create_index(["shard_key"], unique=True)


def _v4(db: sqlite_utils.Database) -> None:
    db.table("user_codes").create(
        {"user_code": str, "shard_key": str, "code_hash": str, "expires_at": int},
        pk="user_code",
    )
    db.table("user_codes").create_index(["expires_at"])


DIRECTORY = Schema(
    "directory", (_v1, migrate_people, migrate_consent_redirects, _v4, migrate_identities)
)


def index_client(store: Store, client_id: str, shard_key: str, source: str, now: int) -> None:
    store.conn.execute(
        "INSERT OR REPLACE INTO clients VALUES (?,?,?,?)", (client_id, shard_key, source, now)
    )


def count_clients(store: Store, source: str | None = None) -> int:
    """Registered clients, or those from one source (the caps count "dynamic", "document")."""
    if source is None:
        return int(store.query("SELECT count(*) FROM clients")[0][0])
    return int(store.query("SELECT count(*) FROM clients WHERE source = ?", (source,))[0][0])


def unindex_client(store: Store, client_id: str) -> None:
    store.conn.execute("DELETE FROM clients WHERE client_id = ?", (client_id,))


def list_clients(store: Store) -> list[tuple[str, str, int]]:
    rows = store.query("SELECT client_id, source, created_at FROM clients ORDER BY created_at")
    return [(str(a), str(b), int(c)) for a, b, c in rows]


def index_user_code(
    store: Store, user_code: str, shard_key: str, code_hash: str, expires_at: int, now: int
) -> bool:
    """Index a user code; False if an outstanding one already has it (the caller draws
    another). Expired codes go on the way, so their letters can be drawn again."""
    store.conn.execute("DELETE FROM user_codes WHERE expires_at <= ?", (now,))
    cursor = store.conn.execute(
        "INSERT OR IGNORE INTO user_codes VALUES (?,?,?,?)",
        (user_code, shard_key, code_hash, expires_at),
    )
    return cursor.rowcount == 1


def load_user_code(store: Store, user_code: str, now: int) -> tuple[str, str] | None:
    """(shard key, device-code hash) of an outstanding user code."""
    rows = store.query(
        "SELECT shard_key, code_hash FROM user_codes WHERE user_code = ? AND expires_at > ?",
        (user_code, now),
    )
    return (str(rows[0][0]), str(rows[0][1])) if rows else None
