"""A shard's tokens as oauth/token_liveness judges them: the records loaded from storage and
handed to the one rule, so /token, /introspect and /userinfo (through CheckAccessToken) can
never disagree about a token."""

from __future__ import annotations

from dataclasses import dataclass

from oauthd.oauth.token_liveness import (
    Liveness,
    access_token_liveness,
    refresh_token_expires_at,
    refresh_token_liveness,
)
from oauthd.storage import ClientStore
from oauthd.storage.grants import (
    FamilyRow,
    RefreshRow,
)

__all__ = ["RefreshState", "is_access_token_live", "load_refresh_state"]


@dataclass(frozen=True, slots=True)
class RefreshState:
    row: RefreshRow
    family: FamilyRow
    liveness: Liveness
    expires_at: int  # when it dies unless used first


def load_refresh_state(
    store: ClientStore, token: str, idle_s: int, now: float
) -> RefreshState | None:
    """A refresh token of this shard and its grant; None when either is not on record."""
    row = store.load_refresh(token)
    family = store.load_family(row.family_id) if row else None
    if row is None or family is None:
        return None
    liveness = refresh_token_liveness(
        issued_at=row.issued_at,
        rotated_at=row.rotated_at,
        grant_expires_at=family.expires_at,
        grant_revoked_at=family.revoked_at,
        idle_s=idle_s,
        now=now,
    )
    expires_at = refresh_token_expires_at(
        issued_at=row.issued_at, grant_expires_at=family.expires_at, idle_s=idle_s
    )
    return RefreshState(row, family, liveness, expires_at)


def is_access_token_live(store: ClientStore, jti: str, now: float) -> bool:
    """An access token this shard issued (its jti on record), not revoked, not expired."""
    row = store.load_access_token(jti)
    if row is None:
        return False
    liveness = access_token_liveness(expires_at=row.expires_at, revoked_at=row.revoked_at, now=now)
    return liveness is Liveness.LIVE
