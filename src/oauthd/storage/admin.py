"""What the admin CLI reads and changes (`oauthd users|grants|clients`): users and their
browser sessions, identities and consents in the directory; live grants in a client shard.

A grant is a token family (docs/architecture.md "Tokens"): revoking it ends its refresh tokens and
every access token issued from it. Codes and approved device codes of the user not yet redeemed go
too, so no grant can appear after its revocation from an authorization already under way."""

from __future__ import annotations

from dataclasses import dataclass

from oauthd.storage.grant_tables import change, rows
from oauthd.storage.grants import revoke_family
from oauthd.storage.sqlite import Store

__all__ = [
    "GrantRow",
    "UserListing",
    "delete_consents",
    "delete_user",
    "list_grants",
    "list_users",
    "revoke_grants",
]


@dataclass(frozen=True, slots=True)
class UserListing:
    user_id: str
    email: str
    name: str
    created_at: int
    identities: int


def list_users(store: Store) -> list[UserListing]:
    rows = store.query(
        "SELECT u.user_id, COALESCE(u.email, ''), u.name, u.created_at, "
        "(SELECT count(*) FROM identities i WHERE i.user_id = u.user_id) "
        "FROM users u ORDER BY u.created_at, u.email"
    )
    return [UserListing(str(a), str(b), str(c), int(d), int(e)) for a, b, c, d, e in rows]


def delete_user(store: Store, user_id: str) -> int:
    """The user, their identities and consents, and their browser sessions (logged out
    everywhere); returns how many sessions ended."""
    sessions = store.conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,)).rowcount
    store.conn.execute("DELETE FROM identities WHERE user_id = ?", (user_id,))
    store.conn.execute("DELETE FROM consents WHERE user_id = ?", (user_id,))
    store.conn.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
    return int(sessions)


def delete_consents(
    store: Store, user_id: str | None, client_id: str | None
) -> list[tuple[str, str]]:
    """Forget what was allowed (the next authorization asks again): a user's, a client's, or
    one user's for one client. Returns the (user_id, client_id) pairs forgotten."""
    where, params = _consent_filter(user_id, client_id)
    rows = store.query(f"SELECT user_id, client_id FROM consents WHERE {where}", params)  # noqa: S608 (fixed clauses)
    store.conn.execute(f"DELETE FROM consents WHERE {where}", params)  # noqa: S608 (fixed clauses)
    return [(str(u), str(c)) for u, c in rows]


def _consent_filter(user_id: str | None, client_id: str | None) -> tuple[str, tuple[str, ...]]:
    clauses, params = [], []
    if user_id is not None:
        clauses.append("user_id = ?")
        params.append(user_id)
    if client_id is not None:
        clauses.append("client_id = ?")
        params.append(client_id)
    if not clauses:
        raise ValueError("a user, a client or both")
    return " AND ".join(clauses), tuple(params)


@dataclass(frozen=True, slots=True)
class GrantRow:
    family_id: str
    user_id: str
    scope: str
    created_at: int
    expires_at: int


_LIVE = "revoked_at IS NULL AND expires_at > ?"


def list_grants(store: Store, user_id: str | None, now: int) -> list[GrantRow]:
    """Live grants of the shard, or of one user in it."""
    sql = f"SELECT family_id, user_id, scope, created_at, expires_at FROM families WHERE {_LIVE}"  # noqa: S608 (fixed clauses)
    params: tuple[object, ...] = (now,)
    if user_id is not None:
        sql += " AND user_id = ?"
        params = (now, user_id)
    found = rows(store, sql + " ORDER BY created_at", params)
    return [GrantRow(str(a), str(b), str(c), int(d), int(e)) for a, b, c, d, e in found]


def revoke_grants(store: Store, user_id: str | None, now: int) -> list[GrantRow]:
    """End the shard's live grants (or one user's), and the user's authorizations under way;
    returns the grants ended."""
    grants = list_grants(store, user_id, now)
    for g in grants:
        revoke_family(store, g.family_id, now)
    if user_id is None:
        change(store, "DELETE FROM codes WHERE redeemed_at IS NULL")
        change(store, "DELETE FROM device_codes WHERE status = 'approved'")
    else:
        change(
            store,
            "DELETE FROM codes WHERE redeemed_at IS NULL "
            "AND json_extract(\"grant\", '$.user_id') = ?",
            (user_id,),
        )
        change(
            store, "DELETE FROM device_codes WHERE status = 'approved' AND user_id = ?", (user_id,)
        )
    return grants
