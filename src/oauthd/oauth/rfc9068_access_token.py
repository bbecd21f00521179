"""JWT access tokens (RFC 9068): the claims oauthd issues and the checks a resource makes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oauthd.oauth.rfc6750_bearer import InvalidToken
from oauthd.oauth.token_liveness import has_expired

__all__ = ["TYP", "AccessTokenClaims", "access_token_claims", "check_access_token"]

TYP = "at+jwt"  # RFC 9068 §2.1
REQUIRED = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    sub: str
    client_id: str
    scope: tuple[str, ...]
    aud: tuple[str, ...]
    jti: str
    iat: int
    exp: int

    @property
    def is_client_only(self) -> bool:
        """No person behind the token (the client_credentials grant): RFC 9068 §2.2 makes
        `sub` the client's own id then. A person's `sub` is a random id, never a client's."""
        return self.sub == self.client_id


def access_token_claims(
    *,
    issuer: str,
    subject: str,
    client_id: str,
    audience: tuple[str, ...],
    scope: str,
    now: int,
    ttl_s: int,
    jti: str,
    auth_time: int | None = None,
) -> dict[str, Any]:
    """RFC 9068 §2.2; `aud` is a string when there is one audience."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience[0] if len(audience) == 1 else list(audience),
        "client_id": client_id,
        "scope": scope,
        "iat": now,
        "exp": now + ttl_s,
        "jti": jti,
    }
    if auth_time is not None:
        claims["auth_time"] = auth_time
    return claims


def check_access_token(
    header: Mapping[str, Any], claims: Mapping[str, Any], *, issuer: str, audience: str, now: float
) -> AccessTokenClaims:
    """RFC 9068 §4: typ, issuer, audience, expiry; anything else is `invalid_token`."""
    if str(header.get("typ", "")).lower() not in (TYP, "application/" + TYP):
        raise InvalidToken("not an access token")
    if any(name not in claims for name in REQUIRED):
        raise InvalidToken("access token is missing claims")
    if claims["iss"] != issuer:
        raise InvalidToken("access token from another issuer")
    aud = claims["aud"]
    audiences = tuple(aud) if isinstance(aud, list) else (aud,)
    if audience not in audiences:
        raise InvalidToken("access token is for another audience")
    exp, iat = claims["exp"], claims["iat"]
    if not isinstance(exp, int) or not isinstance(iat, int) or has_expired(exp, now):
        raise InvalidToken("access token expired")
    scope = claims.get("scope", "")
    return AccessTokenClaims(
        sub=str(claims["sub"]),
        client_id=str(claims["client_id"]),
        scope=tuple(scope.split()) if isinstance(scope, str) else (),
        aud=tuple(str(a) for a in audiences),
        jti=str(claims["jti"]),
        iat=iat,
        exp=exp,
    )
