"""Token introspection (RFC 7662): who may see a token's state, and the answer they get.

An inactive answer is exactly `{"active": false}`: expired, revoked, malformed, forged and
foreign tokens all look the same, so the answer never says why (§2.2, INTRO-3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from oauthd.errors import InvalidClient
from oauthd.oauth.rfc6749_client_auth import ClientCredentials
from oauthd.oauth.rfc6750_bearer import InvalidToken
from oauthd.oauth.rfc9068_access_token import AccessTokenClaims, check_access_token
from oauthd.settings import ResourceSettings

__all__ = [
    "INACTIVE",
    "Introspection",
    "caller_auth_methods",
    "check_caller_authenticates",
    "check_issued_access_token",
    "may_introspect",
]

UNAUTHENTICATED = "none"  # a public client's method: it names itself and proves nothing


@dataclass(frozen=True, slots=True)
class Introspection:
    """RFC 7662 §2.2. Only `active` is meaningful when it is False."""

    active: bool
    scope: str = ""
    client_id: str = ""
    sub: str = ""
    aud: tuple[str, ...] = ()
    iss: str = ""
    exp: int = 0
    iat: int = 0
    token_type: str = ""

    def to_json(self) -> dict[str, Any]:
        if not self.active:
            return {"active": False}  # §2.2: SHOULD NOT disclose why
        return {
            "active": True,
            "scope": self.scope,
            "client_id": self.client_id,
            "sub": self.sub,
            # As in the JWT (RFC 9068 §2.2): a string when there is one audience.
            "aud": self.aud[0] if len(self.aud) == 1 else list(self.aud),
            "iss": self.iss,
            "exp": self.exp,
            "iat": self.iat,
            "token_type": self.token_type,
        }


INACTIVE = Introspection(active=False)


def check_caller_authenticates(credentials: ClientCredentials) -> None:
    """RFC 7662 §2.1: the endpoint MUST require authentication of its caller, so a public
    client, which only names itself, cannot introspect (INTRO-1). Checked before the caller's
    shard is asked, so it never counts as a failed authentication of that client."""
    if credentials.method == UNAUTHENTICATED:
        raise InvalidClient("introspection requires client authentication")


def caller_auth_methods(token_endpoint_methods: Iterable[str]) -> list[str]:
    """RFC 8414 §2 `introspection_endpoint_auth_methods_supported`: the token endpoint's
    methods that authenticate (DISC-9)."""
    return [m for m in token_endpoint_methods if m != UNAUTHENTICATED]


def check_issued_access_token(
    header: Mapping[str, Any], claims: Mapping[str, Any], *, issuer: str, now: float
) -> AccessTokenClaims:
    """RFC 9068 §4 as the issuer checks its own token after the signature: typ, required
    claims, issuer, expiry. Any audience will do here: whether the caller may see a token for
    that audience is `may_introspect`'s question."""
    aud = claims.get("aud")
    first = aud[0] if isinstance(aud, list) and aud else aud
    if not isinstance(first, str):
        raise InvalidToken("access token without an audience")
    return check_access_token(header, claims, issuer=issuer, audience=first, now=now)


def may_introspect(
    caller_id: str,
    owner_id: str,
    audience: Iterable[str],
    resources: Iterable[ResourceSettings],
) -> bool:
    """RFC 7662 §2.1, §4: the token's own client, or the client registered as the resource
    server of one of its audiences ([[resources]] client_id). Anyone else gets `active: false`
    (§2.2: "not allowed to introspect this particular token", INTRO-4)."""
    if caller_id == owner_id:
        return True
    audiences = set(audience)
    return any(r.client_id == caller_id and r.uri in audiences for r in resources if r.client_id)
