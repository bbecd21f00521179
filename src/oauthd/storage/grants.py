"""What a client shard holds besides the registration (schema v2): pending authorization
requests, codes, refresh-token families, refresh tokens and access-token records; and from
schema v4 the device codes of RFC 8628. From schema v7 each table is created by its first
row (`grant_tables.py`); until then it reads as empty.

Every credential is stored as a hash of the whole handle; the refresh-token replay blob is
sealed under a key derived from the token it answers, so nothing usable rests on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from oauthd.storage.grant_tables import change, insert, rows
from oauthd.storage.secrets import hash_secret
from oauthd.storage.sqlite import Store

__all__ = [
    "REVOKE_FAMILY_TOKENS",
    "AccessTokenRow",
    "CodeRow",
    "DeviceRow",
    "FamilyRow",
    "PendingRow",
    "RefreshRow",
    "consume_pending",
    "decide_device_code",
    "insert_access_token",
    "insert_code",
    "insert_device_code",
    "insert_family",
    "insert_pending",
    "insert_refresh",
    "load_access_token",
    "load_code",
    "load_device_code",
    "load_family",
    "load_pending",
    "load_refresh",
    "mark_code_redeemed",
    "mark_device_redeemed",
    "mark_refresh_rotated",
    "migrate_v2",
    "migrate_v4",
    "revoke_access_token",
    "revoke_family",
    "set_device_poll",
    "set_pending_csrf",
    "set_pending_request",
]


def migrate_v2(db: sqlite_utils.Database) -> None:
    db.table("pending").create(
        {
            "id_hash": str,
            "browser_hash": str,
            "csrf_hash": str,
            "request": str,
            "created_at": int,
            "expires_at": int,
        },
        pk="id_hash",
    )
    db.table("codes").create(
        {
            "code_hash": str,
            "grant": str,
            "expires_at": int,
            "redeemed_at": int,
            "family_id": str,
        },
        pk="code_hash",
    )
    db.table("families").create(
        {
            "family_id": str,
            "user_id": str,
            "scope": str,
            "resources": str,
            "auth_time": int,
            "created_at": int,
            "expires_at": int,
            "revoked_at": int,
        },
        pk="family_id",
    )
    db.table("refresh_tokens").create(
        {
            "token_hash": str,
            "family_id": str,
            "issued_at": int,
            "rotated_at": int,
            "replay": str,
        },
        pk="token_hash",
    )
    db.table("refresh_tokens").create_index(["family_id"])
    db.table("access_tokens").create(
        {"jti": str, "family_id": str, "expires_at": int, "revoked_at": int}, pk="jti"
    )
    db.table("access_tokens").create_index(["family_id"])


# --- pending authorization requests --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingRow:
    browser_hash: str
    csrf_hash: str
    request: dict[str, Any]
    expires_at: int


def insert_pending(
    store: Store, request_id: str, browser: str, request: dict[str, Any], now: int, ttl_s: int
) -> None:
    insert(
        store,
        "pending",
        "INSERT INTO pending VALUES (?,?,?,?,?,?)",
        (hash_secret(request_id), hash_secret(browser), "", json.dumps(request), now, now + ttl_s),
    )


def load_pending(store: Store, request_id: str) -> PendingRow | None:
    found = rows(
        store,
        "SELECT browser_hash, csrf_hash, request, expires_at FROM pending WHERE id_hash = ?",
        (hash_secret(request_id),),
    )
    if not found:
        return None
    browser, csrf, request, expires_at = found[0]
    return PendingRow(browser, csrf, json.loads(request), expires_at)


def set_pending_csrf(store: Store, request_id: str, csrf: str) -> None:
    change(
        store,
        "UPDATE pending SET csrf_hash = ? WHERE id_hash = ?",
        (hash_secret(csrf), hash_secret(request_id)),
    )


def set_pending_request(store: Store, request_id: str, request: dict[str, Any]) -> None:
    """Replace the stored request and spend the CSRF token that allowed the change."""
    change(
        store,
        "UPDATE pending SET request = ?, csrf_hash = '' WHERE id_hash = ?",
        (json.dumps(request), hash_secret(request_id)),
    )


def consume_pending(store: Store, request_id: str) -> None:
    change(store, "DELETE FROM pending WHERE id_hash = ?", (hash_secret(request_id),))


# --- codes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeRow:
    grant: dict[str, Any]
    expires_at: int
    redeemed_at: int | None
    family_id: str | None


def insert_code(store: Store, code: str, grant: dict[str, Any], expires_at: int) -> None:
    insert(
        store,
        "codes",
        "INSERT INTO codes VALUES (?,?,?,NULL,NULL)",
        (hash_secret(code), json.dumps(grant), expires_at),
    )


def load_code(store: Store, code: str) -> CodeRow | None:
    found = rows(
        store,
        "SELECT grant, expires_at, redeemed_at, family_id FROM codes WHERE code_hash = ?",
        (hash_secret(code),),
    )
    if not found:
        return None
    grant, expires_at, redeemed_at, family_id = found[0]
    return CodeRow(json.loads(grant), expires_at, redeemed_at, family_id)


def mark_code_redeemed(store: Store, code: str, now: int, family_id: str) -> None:
    change(
        store,
        "UPDATE codes SET redeemed_at = ?, family_id = ? WHERE code_hash = ?",
        (now, family_id, hash_secret(code)),
    )


# --- refresh-token families ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FamilyRow:
    family_id: str
    user_id: str
    scope: str
    resources: tuple[str, ...]
    auth_time: int
    expires_at: int
    revoked_at: int | None


def family_values(family: FamilyRow, now: int) -> tuple[object, ...]:
    """A new family's columns but the last (revoked_at, NULL), for any backend."""
    return (
        family.family_id,
        family.user_id,
        family.scope,
        json.dumps(family.resources),
        family.auth_time,
        now,
        family.expires_at,
    )


def insert_family(store: Store, family: FamilyRow, now: int) -> None:
    insert(
        store,
        "families",
        "INSERT INTO families VALUES (?,?,?,?,?,?,?,NULL)",
        family_values(family, now),
    )


def load_family(store: Store, family_id: str) -> FamilyRow | None:
    found = rows(
        store,
        "SELECT family_id, user_id, scope, resources, auth_time, expires_at, revoked_at "
        "FROM families WHERE family_id = ?",
        (family_id,),
    )
    return family_row(found[0]) if found else None


def family_row(columns: tuple[Any, ...]) -> FamilyRow:
    """A family from its columns as `load_family` selects them, for any backend."""
    fid, user_id, scope, resources, auth_time, expires_at, revoked_at = columns
    return FamilyRow(
        fid, user_id, scope, tuple(json.loads(resources)), auth_time, expires_at, revoked_at
    )


# Searches the access tokens' partial family index (grant_tables.FAMILY_INDEX): `family_id = ?`
# implies `family_id IS NOT NULL`.
REVOKE_FAMILY_TOKENS = (
    "UPDATE access_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL"
)


def revoke_family(store: Store, family_id: str, now: int) -> None:
    """Ends the grant: its refresh tokens and every access token issued from it."""
    change(
        store,
        "UPDATE families SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
        (now, family_id),
    )
    change(store, REVOKE_FAMILY_TOKENS, (now, family_id))


# --- refresh tokens -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefreshRow:
    family_id: str
    issued_at: int
    rotated_at: int | None
    replay: str | None


def insert_refresh(store: Store, token: str, family_id: str, now: int) -> None:
    insert(
        store,
        "refresh_tokens",
        "INSERT INTO refresh_tokens VALUES (?,?,?,NULL,NULL)",
        (hash_secret(token), family_id, now),
    )


def load_refresh(store: Store, token: str) -> RefreshRow | None:
    found = rows(
        store,
        "SELECT family_id, issued_at, rotated_at, replay FROM refresh_tokens WHERE token_hash = ?",
        (hash_secret(token),),
    )
    return RefreshRow(*found[0]) if found else None


def mark_refresh_rotated(store: Store, token: str, now: int, replay: str) -> None:
    change(
        store,
        "UPDATE refresh_tokens SET rotated_at = ?, replay = ? WHERE token_hash = ?",
        (now, replay, hash_secret(token)),
    )


# --- access tokens ------------------------------------------------------------------------


def insert_access_token(store: Store, jti: str, family_id: str | None, expires_at: int) -> None:
    insert(
        store,
        "access_tokens",
        "INSERT INTO access_tokens VALUES (?,?,?,NULL)",
        (jti, family_id, expires_at),
    )


@dataclass(frozen=True, slots=True)
class AccessTokenRow:
    expires_at: int
    revoked_at: int | None


def load_access_token(store: Store, jti: str) -> AccessTokenRow | None:
    """The record of an issued access token; whether it is live is oauth/token_liveness's."""
    found = rows(store, "SELECT expires_at, revoked_at FROM access_tokens WHERE jti = ?", (jti,))
    return AccessTokenRow(*found[0]) if found else None


def revoke_access_token(store: Store, jti: str, now: int) -> None:
    """Ends one access token (RFC 7009 §2.1); its grant and refresh token are left alone."""
    change(
        store,
        "UPDATE access_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL",
        (now, jti),
    )


# --- device codes (schema v4, RFC 8628) ---------------------------------------------------


def migrate_v4(db: sqlite_utils.Database) -> None:
    """Device codes, by hash. `request` holds the scope and resources asked for; the person's
    decision (status approved or denied, user_id, auth_time) arrives from the /device page."""
    db.table("device_codes").create(
        {
            "code_hash": str,
            "request": str,
            "created_at": int,
            "expires_at": int,
            "interval": int,
            "next_poll_at": int,
            "status": str,  # pending | approved | denied | redeemed
            "user_id": str,
            "auth_time": int,
            "family_id": str,
        },
        pk="code_hash",
    )
    db.table("device_codes").create_index(["expires_at"])


@dataclass(frozen=True, slots=True)
class DeviceRow:
    code_hash: str
    request: dict[str, Any]
    expires_at: int
    interval: int
    next_poll_at: int
    status: str
    user_id: str | None
    auth_time: int | None


def insert_device_code(
    store: Store, code: str, request: dict[str, Any], now: int, expires_at: int, interval: int
) -> str:
    """Record a new device code; returns its hash (the name the directory and pages use)."""
    code_hash = hash_secret(code)
    insert(
        store,
        "device_codes",
        "INSERT INTO device_codes VALUES (?,?,?,?,?,?,'pending',NULL,NULL,NULL)",
        (code_hash, json.dumps(request), now, expires_at, interval, now),
    )
    return code_hash


def load_device_code(store: Store, code_hash: str) -> DeviceRow | None:
    found = rows(
        store,
        "SELECT code_hash, request, expires_at, interval, next_poll_at, status, user_id, "
        "auth_time FROM device_codes WHERE code_hash = ?",
        (code_hash,),
    )
    return device_row(found[0]) if found else None


def device_row(values: tuple[Any, ...]) -> DeviceRow:
    """A device code from its columns as `load_device_code` selects them, for any backend."""
    code_hash, request, expires_at, interval, next_poll_at, status, user_id, auth_time = values
    return DeviceRow(
        code_hash,
        json.loads(request),
        expires_at,
        interval,
        next_poll_at,
        status,
        user_id,
        auth_time,
    )


def set_device_poll(store: Store, code_hash: str, interval: int, next_poll_at: int) -> None:
    change(
        store,
        "UPDATE device_codes SET interval = ?, next_poll_at = ? WHERE code_hash = ?",
        (interval, next_poll_at, code_hash),
    )


def decide_device_code(
    store: Store, code_hash: str, status: str, user_id: str | None, auth_time: int | None
) -> None:
    """The person approved or denied: only a pending code can be decided."""
    change(
        store,
        "UPDATE device_codes SET status = ?, user_id = ?, auth_time = ? "
        "WHERE code_hash = ? AND status = 'pending'",
        (status, user_id, auth_time, code_hash),
    )


def mark_device_redeemed(store: Store, code_hash: str, family_id: str) -> None:
    change(
        store,
        "UPDATE device_codes SET status = 'redeemed', family_id = ? WHERE code_hash = ?",
        (family_id, code_hash),
    )
