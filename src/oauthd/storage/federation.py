"""The federation shard (`<tenant>/federation.sqlite`): upstream logins in flight.

A pending login is keyed by the hash of its `state` and bound to the browser by the hash of a
cookie value. Nothing usable rests on disk: the PKCE verifier and the nonce are derived from
the state, which only the browser carries (see `oauth/oidc_federation.py`)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from oauthd.storage.secrets import hash_secret
from oauthd.storage.sqlite import Schema, Store

__all__ = ["FEDERATION", "LoginRow", "collect_logins", "insert_login", "take_login"]


def _v1(db: sqlite_utils.Database) -> None:
    db.table("logins").create(
        {
            "state_hash": str,
            "binding_hash": str,
            "request_id": str,
            "started_at": int,
            "expires_at": int,
            "max_age": int,  # NULL: none asked
            "force_login": int,
        },
        pk="state_hash",
    )
    db.table("logins").create_index(["expires_at"])


FEDERATION = Schema("federation", (_v1,))


@dataclass(frozen=True, slots=True)
class LoginRow:
    binding_hash: str
    request_id: str
    started_at: int
    expires_at: int
    max_age: int | None
    force_login: bool


def insert_login(store: Store, state: str, binding: str, row: LoginRow) -> None:
    store.conn.execute(
        "INSERT INTO logins VALUES (?,?,?,?,?,?,?)", login_values(state, binding, row)
    )


def login_values(state: str, binding: str, row: LoginRow) -> tuple[object, ...]:
    """A login's columns, state and browser binding hashed, for any backend."""
    return (
        hash_secret(state),
        hash_secret(binding),
        row.request_id,
        row.started_at,
        row.expires_at,
        row.max_age,
        int(row.force_login),
    )


def take_login(store: Store, state: str, binding: str) -> LoginRow | None:
    """The login this state and browser started, deleted so it is used once; None (and
    nothing deleted) when the state is unknown or the browser is another one."""
    state_hash = hash_secret(state)
    rows = store.query(
        "SELECT binding_hash, request_id, started_at, expires_at, max_age, force_login "
        "FROM logins WHERE state_hash = ?",
        (state_hash,),
    )
    if not rows:
        return None
    binding_hash, request_id, started_at, expires_at, max_age, force_login = rows[0]
    if binding_hash != hash_secret(binding):
        return None
    store.conn.execute("DELETE FROM logins WHERE state_hash = ?", (state_hash,))
    return LoginRow(binding_hash, request_id, started_at, expires_at, max_age, bool(force_login))


def collect_logins(store: Store, now: int) -> int:
    """Delete expired pending logins; the number deleted."""
    return store.conn.execute("DELETE FROM logins WHERE expires_at <= ?", (now,)).rowcount
