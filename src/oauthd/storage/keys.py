"""The tenant's keys shard: signing keys with the times that define their states."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from oauthd.storage.sqlite import Schema, Store

__all__ = ["KEYS", "KeyRow", "delete_keys", "insert_key", "load_keys", "update_key_times"]


@dataclass(frozen=True, slots=True)
class KeyRow:
    kid: str
    alg: str
    created_at: int
    activate_at: int
    retire_at: int
    remove_at: int
    public_jwk: str
    private_jwk: str  # a JWK, or a JWE of it when a key-encryption key is configured


def _v1(db: sqlite_utils.Database) -> None:
    db.table("keys").create(
        {
            "kid": str,
            "alg": str,
            "created_at": int,
            "activate_at": int,
            "retire_at": int,
            "remove_at": int,
            "public_jwk": str,
            "private_jwk": str,
        },
        pk="kid",
    )


# Read when a tenant's KeyManager opens (its first request after a start or an idle spell)
# and written at a rotation: a rollback journal opens faster than WAL (`Schema.journal`).
KEYS = Schema("keys", (_v1,), journal="delete")


def load_keys(store: Store) -> list[KeyRow]:
    rows = store.query("SELECT * FROM keys ORDER BY activate_at, created_at, kid")
    return [KeyRow(*row) for row in rows]


def insert_key(store: Store, row: KeyRow) -> None:
    store.conn.execute(
        "INSERT INTO keys VALUES (?,?,?,?,?,?,?,?)",
        (
            row.kid,
            row.alg,
            row.created_at,
            row.activate_at,
            row.retire_at,
            row.remove_at,
            row.public_jwk,
            row.private_jwk,
        ),
    )


def update_key_times(store: Store, kid: str, retire_at: int, remove_at: int) -> None:
    store.conn.execute(
        "UPDATE keys SET retire_at = ?, remove_at = ? WHERE kid = ?", (retire_at, remove_at, kid)
    )


def delete_keys(store: Store, kids: list[str]) -> None:
    store.conn.executemany("DELETE FROM keys WHERE kid = ?", [(k,) for k in kids])
