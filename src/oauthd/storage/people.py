"""What the directory holds about people: users, browser sessions, consents (v2), and the
identities that link a user to an upstream provider's subject (v5). A federated user whose
upstream email is not verified has no email (NULL): the unique email index ignores NULLs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from oauthd.storage.secrets import hash_secret
from oauthd.storage.sqlite import Store

__all__ = [
    "ConsentRow",
    "SessionRow",
    "UserRow",
    "count_users",
    "delete_session",
    "insert_identity",
    "insert_session",
    "insert_user",
    "load_consent",
    "load_identity",
    "load_session",
    "load_user",
    "load_user_by_email",
    "migrate_consent_redirects",
    "migrate_identities",
    "migrate_people",
    "save_consent",
    "set_session_csrf",
    "update_profile",
]


def migrate_people(db: sqlite_utils.Database) -> None:
    db.table("users").create(
        {
            "user_id": str,
            "email": str,
            "name": str,
            "email_verified": int,
            "password_hash": str,
            "created_at": int,
        },
        pk="user_id",
    )
    db.execute("CREATE UNIQUE INDEX users_email ON users (email COLLATE NOCASE)")
    db.table("sessions").create(
        {
            "session_hash": str,
            "user_id": str,
            "auth_time": int,
            "expires_at": int,
            "csrf_hash": str,
        },
        pk="session_hash",
    )
    db.table("consents").create(
        {"user_id": str, "client_id": str, "scope": str, "resources": str, "granted_at": int},
        pk=("user_id", "client_id"),
    )


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: str
    email: str
    name: str
    email_verified: bool
    password_hash: str


def _user(row: tuple[object, ...]) -> UserRow:
    user_id, email, name, verified, password_hash = row
    return UserRow(str(user_id), str(email), str(name), bool(verified), str(password_hash))


_USER = "SELECT user_id, COALESCE(email, ''), name, email_verified, password_hash FROM users "


def load_user(store: Store, user_id: str) -> UserRow | None:
    rows = store.query(_USER + "WHERE user_id = ?", (user_id,))
    return _user(rows[0]) if rows else None


def load_user_by_email(store: Store, email: str) -> UserRow | None:
    rows = store.query(_USER + "WHERE email = ? COLLATE NOCASE", (email,))
    return _user(rows[0]) if rows else None


def user_values(user: UserRow, now: int) -> tuple[object, ...]:
    """A new user's columns, for any backend."""
    return (
        user.user_id,
        user.email or None,
        user.name,
        int(user.email_verified),
        user.password_hash,
        now,
    )


def insert_user(store: Store, user: UserRow, now: int) -> None:
    store.conn.execute("INSERT INTO users VALUES (?,?,?,?,?,?)", user_values(user, now))


def count_users(store: Store) -> int:
    return int(store.query("SELECT count(*) FROM users")[0][0])


def update_profile(store: Store, user_id: str, email: str, name: str, verified: bool) -> None:
    """What the upstream says now; an empty email clears it (no longer verified there)."""
    store.conn.execute(
        "UPDATE users SET email = ?, name = ?, email_verified = ? WHERE user_id = ?",
        (email or None, name, int(verified), user_id),
    )


def migrate_identities(db: sqlite_utils.Database) -> None:
    db.table("identities").create(
        {"provider": str, "subject": str, "user_id": str, "created_at": int},
        pk=("provider", "subject"),
    )
    db.table("identities").create_index(["user_id"])


def load_identity(store: Store, provider: str, subject: str) -> str | None:
    """The local user linked to this upstream subject, or None."""
    rows = store.query(
        "SELECT user_id FROM identities WHERE provider = ? AND subject = ?", (provider, subject)
    )
    return str(rows[0][0]) if rows else None


def insert_identity(store: Store, provider: str, subject: str, user_id: str, now: int) -> None:
    store.conn.execute("INSERT INTO identities VALUES (?,?,?,?)", (provider, subject, user_id, now))


@dataclass(frozen=True, slots=True)
class SessionRow:
    user_id: str
    auth_time: int
    expires_at: int
    csrf_hash: str


def insert_session(store: Store, session_id: str, user_id: str, now: int, ttl_s: int) -> None:
    store.conn.execute(
        "INSERT INTO sessions VALUES (?,?,?,?,'')",
        (hash_secret(session_id), user_id, now, now + ttl_s),
    )


def load_session(store: Store, session_id: str) -> SessionRow | None:
    rows = store.query(
        "SELECT user_id, auth_time, expires_at, csrf_hash FROM sessions WHERE session_hash = ?",
        (hash_secret(session_id),),
    )
    return SessionRow(*rows[0]) if rows else None


def set_session_csrf(store: Store, session_id: str, csrf: str) -> None:
    store.conn.execute(
        "UPDATE sessions SET csrf_hash = ? WHERE session_hash = ?",
        (hash_secret(csrf), hash_secret(session_id)),
    )


def delete_session(store: Store, session_id: str) -> None:
    store.conn.execute("DELETE FROM sessions WHERE session_hash = ?", (hash_secret(session_id),))


@dataclass(frozen=True, slots=True)
class ConsentRow:
    """What a user allowed a client: scopes, resources, and where it may send them."""

    scope: tuple[str, ...]
    resources: tuple[str, ...]
    redirects: tuple[str, ...]


def migrate_consent_redirects(db: sqlite_utils.Database) -> None:
    db.table("consents").add_column("redirects", str, not_null_default="[]")


def load_consent(store: Store, user_id: str, client_id: str) -> ConsentRow | None:
    rows = store.query(
        "SELECT scope, resources, redirects FROM consents WHERE user_id = ? AND client_id = ?",
        (user_id, client_id),
    )
    return consent_row(rows[0]) if rows else None


def consent_row(values: tuple[Any, ...]) -> ConsentRow:
    """A consent from its scope, resources and redirects columns, for any backend."""
    scope, resources, redirects = values
    return ConsentRow(
        tuple(scope.split()), tuple(json.loads(resources)), tuple(json.loads(redirects))
    )


def consent_values(user_id: str, client_id: str, consent: ConsentRow, now: int) -> tuple[Any, ...]:
    """The values of (user_id, client_id, scope, resources, granted_at, redirects)."""
    resources, redirects = json.dumps(consent.resources), json.dumps(consent.redirects)
    return (user_id, client_id, " ".join(consent.scope), resources, now, redirects)


def save_consent(store: Store, user_id: str, client_id: str, consent: ConsentRow, now: int) -> None:
    store.conn.execute(
        "INSERT OR REPLACE INTO consents (user_id, client_id, scope, resources, granted_at, "
        "redirects) VALUES (?,?,?,?,?,?)",
        consent_values(user_id, client_id, consent, now),
    )
