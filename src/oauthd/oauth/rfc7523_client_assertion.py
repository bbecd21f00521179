"""JWT client assertions (RFC 7523 §2.2, §3; OIDC Core §9 `private_key_jwt`).

`peek_client_id` reads who an assertion claims to come from, unverified, so the front door can
route it to the client's shard; `check_assertion_claims` holds the verified claims to RFC 7523
§3 as an ordered list of checks. The signature is checked in `oauthd.keys.client_assertion`.
Every failure is `invalid_client` (RFC 7523 §3.2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oauthd.decoding import parse_json_segment, split_compact
from oauthd.errors import InvalidClient

__all__ = [
    "ASSERTION_TYPE",
    "MAX_LIFETIME_S",
    "AssertionClaims",
    "check_assertion_claims",
    "peek_client_id",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2
MAX_LIFETIME_S = 600  # an assertion valid for longer than this is refused
LEEWAY_S = 60  # clock skew tolerated on iat and nbf
MAX_JTI = 256


@dataclass(frozen=True, slots=True)
class AssertionClaims:
    """What replay protection needs from a checked assertion."""

    jti: str
    exp: int


@dataclass(frozen=True, slots=True)
class _Context:
    client_id: str
    audiences: tuple[str, ...]
    now: int


def _segment(assertion: str, index: int) -> dict[str, Any]:
    try:
        return parse_json_segment(split_compact(assertion)[index])
    except ValueError:
        raise InvalidClient("client_assertion is not a compact JWS") from None


def peek_client_id(assertion: str) -> str:
    """The client an assertion names (`sub`, RFC 7523 §3 item 2), before any verification:
    used only to find the shard whose keys will verify it."""
    subject = _segment(assertion, 1).get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidClient("client_assertion has no sub")
    return subject


def check_issuer(claims: Mapping[str, Any], ctx: _Context) -> None:
    # RFC 7523 §3 items 1, 2; OIDC Core §9: iss and sub are both the client_id.
    if claims.get("iss") != ctx.client_id or claims.get("sub") != ctx.client_id:
        raise InvalidClient("client_assertion iss and sub must be the client_id")


def check_audience(claims: Mapping[str, Any], ctx: _Context) -> None:
    # RFC 7523 §3 item 3; rfc7523bis: a single audience, the issuer (or, for compatibility,
    # the token endpoint URL). A list is refused even when it holds one right value.
    aud = claims.get("aud")
    if not isinstance(aud, str) or aud not in ctx.audiences:
        raise InvalidClient("client_assertion aud must be this authorization server")


def check_expiry(claims: Mapping[str, Any], ctx: _Context) -> None:
    # RFC 7523 §3 item 4: exp in the future; and not so far that replay protection must keep
    # the jti for long.
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= ctx.now:
        raise InvalidClient("client_assertion has expired")
    if exp > ctx.now + MAX_LIFETIME_S:
        raise InvalidClient("client_assertion lives too long")


def check_not_before(claims: Mapping[str, Any], ctx: _Context) -> None:
    # RFC 7523 §3 items 5, 6: nbf and iat, when present, are not in the future.
    for name in ("nbf", "iat"):
        if name in claims and (not _is_time(claims[name]) or claims[name] > ctx.now + LEEWAY_S):
            raise InvalidClient(f"client_assertion {name} is in the future")


def check_jti(claims: Mapping[str, Any], _ctx: _Context) -> None:
    # RFC 7523 §3 item 7; OIDC Core §9: jti is REQUIRED, so a reuse can be spotted.
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI:
        raise InvalidClient("client_assertion needs a jti")


CHECKS = (check_issuer, check_audience, check_expiry, check_not_before, check_jti)


def check_assertion_claims(
    claims: Mapping[str, Any], *, client_id: str, audiences: tuple[str, ...], now: int
) -> AssertionClaims:
    """RFC 7523 §3 for verified claims; `audiences` are the issuer and the token endpoint."""
    ctx = _Context(client_id, audiences, now)
    for check in CHECKS:
        check(claims, ctx)
    return AssertionClaims(jti=claims["jti"], exp=int(claims["exp"]))


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
