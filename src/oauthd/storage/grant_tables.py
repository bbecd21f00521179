"""The grant tables of a client shard, from schema v7 created on first use: a client costs
the pages of what it uses, and a registration alone is the `client` table (bench/README.md
"Shard size": every table and index takes at least one page).

The first insert into a table creates it, inside the handler's write transaction (BEGIN
IMMEDIATE): no two processes can both create it, and a handler that fails takes the new table
with it. A read, update or delete of a table not created yet behaves as on an empty table.
SQLite checks a connection's schema at the start of each transaction, so a table another
process has created since is seen at once, and a missing one is missing for everybody.

Besides laziness, v7 trims what the grants need: access tokens and assertion jtis, small rows
looked up by their key, are WITHOUT ROWID tables (one b-tree, not a table and its key index);
refresh tokens and device codes lose the indexes only the janitor used (it scans each table
for expired rows anyway). Larger rows stay in rowid tables, where a row up to a page fits in
its leaf; in a WITHOUT ROWID table a row past ~230 bytes (at 1 KB pages) spills to overflow
pages.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlite_utils

from oauthd.storage.sqlite import Store

__all__ = ["TABLES", "change", "insert", "migrate_v7", "migrate_v9", "rows"]

FAMILY_INDEX = (
    "CREATE INDEX idx_access_tokens_family_id ON access_tokens (family_id) "
    "WHERE family_id IS NOT NULL"
)
# Each table's definition: its CREATE TABLE, then its indexes. Columns keep the order of the
# v2-v4 tables (inserts name none).
TABLES: dict[str, tuple[str, ...]] = {
    "pending": (
        "CREATE TABLE pending (id_hash TEXT PRIMARY KEY, browser_hash TEXT, csrf_hash TEXT, "
        "request TEXT, created_at INTEGER, expires_at INTEGER)",
    ),
    "codes": (
        'CREATE TABLE codes (code_hash TEXT PRIMARY KEY, "grant" TEXT, expires_at INTEGER, '
        "redeemed_at INTEGER, family_id TEXT)",
    ),
    "families": (
        "CREATE TABLE families (family_id TEXT PRIMARY KEY, user_id TEXT, scope TEXT, "
        "resources TEXT, auth_time INTEGER, created_at INTEGER, expires_at INTEGER, "
        "revoked_at INTEGER)",
    ),
    "refresh_tokens": (
        "CREATE TABLE refresh_tokens (token_hash TEXT PRIMARY KEY, family_id TEXT, "
        "issued_at INTEGER, rotated_at INTEGER, replay TEXT)",
    ),
    "access_tokens": (
        "CREATE TABLE access_tokens (jti TEXT PRIMARY KEY, family_id TEXT, expires_at INTEGER, "
        "revoked_at INTEGER) WITHOUT ROWID",
        # revoke_family: a replayed code or refresh token ends the grant's access tokens.
        # Only a grant's tokens have a family: client_credentials tokens stay out of it.
        FAMILY_INDEX,
    ),
    "device_codes": (
        "CREATE TABLE device_codes (code_hash TEXT PRIMARY KEY, request TEXT, "
        "created_at INTEGER, expires_at INTEGER, interval INTEGER, next_poll_at INTEGER, "
        "status TEXT, user_id TEXT, auth_time INTEGER, family_id TEXT)",
    ),
    "assertion_jtis": (
        "CREATE TABLE assertion_jtis (jti_hash TEXT PRIMARY KEY, expires_at INTEGER) WITHOUT ROWID",
        # spend_assertion_jti deletes the expired ones on every assertion
        "CREATE INDEX idx_assertion_jtis_expires_at ON assertion_jtis (expires_at)",
    ),
}
_REBUILT = ("access_tokens", "assertion_jtis")  # the others keep their v2-v4 definitions
_DROPPED_INDEXES = ("idx_refresh_tokens_family_id", "idx_device_codes_expires_at")
_MISSING = "no such table: "


def _missing_table(exc: sqlite3.OperationalError) -> str | None:
    """The grant table a statement failed on because it does not exist yet, if that is why."""
    message = str(exc)
    if not message.startswith(_MISSING):
        return None
    name = message.removeprefix(_MISSING).removeprefix("main.")
    return name if name in TABLES else None


def rows(store: Store, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A query's rows; none from a table not created yet."""
    try:
        return store.conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if _missing_table(exc) is None:
            raise
        return []


def change(store: Store, sql: str, params: tuple[Any, ...] = ()) -> int:
    """An UPDATE or DELETE; returns the rows it changed, none in a table not created yet."""
    try:
        return store.conn.execute(sql, params).rowcount
    except sqlite3.OperationalError as exc:
        if _missing_table(exc) is None:
            raise
        return 0


def insert(store: Store, table: str, sql: str, params: tuple[Any, ...]) -> int:
    """An INSERT into `table`, created first if this is its first row; returns the rows
    inserted. Only inside the handler's write transaction, which makes the creation atomic
    with the row and ordered against other processes."""
    try:
        return store.conn.execute(sql, params).rowcount
    except sqlite3.OperationalError as exc:
        if _missing_table(exc) != table:
            raise
    if not store.conn.in_transaction:
        raise RuntimeError(f"{table} created outside a write transaction")
    for statement in TABLES[table]:
        store.conn.execute(statement)
    return store.conn.execute(sql, params).rowcount


def migrate_v7(db: sqlite_utils.Database) -> None:
    """Bring a v6 shard's grant tables to the v7 shapes: an empty table goes (it comes back
    on first use), a kept table loses the indexes v7 does without, and the tables v7 makes
    WITHOUT ROWID are rebuilt with every row. Runs in the migration's write transaction."""
    conn = db.conn
    for table, definition in TABLES.items():
        if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None:  # noqa: S608 (names from TABLES)
            conn.execute(f"DROP TABLE {table}")
        elif table in _REBUILT:
            conn.execute(f"ALTER TABLE {table} RENAME TO {table}_v6")
            conn.execute(definition[0])
            conn.execute(f"INSERT INTO {table} SELECT * FROM {table}_v6")  # noqa: S608 (names from TABLES)
            conn.execute(f"DROP TABLE {table}_v6")  # and its indexes, so the names are free
            for statement in definition[1:]:
                conn.execute(statement)
    for index in _DROPPED_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {index}")


def migrate_v9(db: sqlite_utils.Database) -> None:
    """The access tokens' family index holds only the tokens that have a family (a grant's):
    a client_credentials token, which has none, no longer writes an index entry that no query
    reads (its transaction ~28 -> ~19 us, bench/README.md "Part 5b"). `family_id = ?`
    implies `family_id IS NOT NULL`, so revoke_family still uses the index."""
    conn = db.conn
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'access_tokens'").fetchone():
        conn.execute("DROP INDEX IF EXISTS idx_access_tokens_family_id")
        conn.execute(FAMILY_INDEX)
