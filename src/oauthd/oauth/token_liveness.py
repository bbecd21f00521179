"""Whether an issued token is still good: one rule and one boundary for every endpoint that
asks (/token, /introspect, /userinfo, /revoke).

The boundary is RFC 7519 §4.1.4's: a token MUST NOT be accepted on or after its expiration
time, so it is live while `now < expires_at` and dead from that second on. A refresh token
expires at the earlier of its grant's absolute end (`tokens.refresh_token_ttl_s`) and its own
idle end (`tokens.refresh_token_idle_s` after it was issued; OAuth 2.1 §4.3.3, REFRESH-9).

What each endpoint does with a token that is not live differs (the refresh_token grant treats
a rotated token as a possible replay; introspection just says inactive), so the answer names
why, and the endpoints decide what to say."""

from __future__ import annotations

import enum

__all__ = [
    "Liveness",
    "access_token_liveness",
    "has_expired",
    "refresh_token_expires_at",
    "refresh_token_liveness",
]


class Liveness(enum.Enum):
    LIVE = "live"
    REVOKED = "revoked"  # the token, or the grant it belongs to, was revoked
    EXPIRED = "expired"
    ROTATED = "rotated"  # a refresh token already exchanged for its successor


def has_expired(expires_at: int, now: float) -> bool:
    """RFC 7519 §4.1.4: not accepted on or after the expiration time."""
    return now >= expires_at


def access_token_liveness(*, expires_at: int, revoked_at: int | None, now: float) -> Liveness:
    """An access token on record: revoked (alone, or with its grant) or past its `exp`."""
    if revoked_at is not None:
        return Liveness.REVOKED
    return Liveness.EXPIRED if has_expired(expires_at, now) else Liveness.LIVE


def refresh_token_expires_at(*, issued_at: int, grant_expires_at: int, idle_s: int) -> int:
    """The second a refresh token dies unless used first (its introspection `exp`)."""
    return min(grant_expires_at, issued_at + idle_s)


def refresh_token_liveness(
    *,
    issued_at: int,
    rotated_at: int | None,
    grant_expires_at: int,
    grant_revoked_at: int | None,
    idle_s: int,
    now: float,
) -> Liveness:
    """A refresh token on record. The grant's state comes first: a revoked or ended grant ends
    every token in it. A rotated token is ROTATED whatever its age, so that presenting it
    again is still seen as a replay (OAuth 2.1 §4.3.1) rather than as an expired token."""
    if grant_revoked_at is not None:
        return Liveness.REVOKED
    if has_expired(grant_expires_at, now):
        return Liveness.EXPIRED
    if rotated_at is not None:
        return Liveness.ROTATED
    expires_at = refresh_token_expires_at(
        issued_at=issued_at, grant_expires_at=grant_expires_at, idle_s=idle_s
    )
    return Liveness.EXPIRED if has_expired(expires_at, now) else Liveness.LIVE
