"""The client credentials grant (OAuth 2.1 §4.2): who may use it, and what a client may ask for
on its own behalf.

No person is involved, so the OIDC scopes (which name a person's data) are never granted here;
a client gets at most the scopes it registered, and those the server knows. The token's `sub`
is the client's id (RFC 9068 §2.2), which is how a resource server tells it from a person's.

With open registration anyone can become a client, so a client that registered itself or is
described by its own metadata document uses this grant only if the operator allows it
(`registration.allow_client_credentials`)."""

from __future__ import annotations

from collections.abc import Iterable

from oauthd.errors import InvalidClientMetadata, InvalidScope, UnauthorizedClient
from oauthd.oauth.rfc8707_resources import requested_audience
from oauthd.oauth.scopes import OIDC_SCOPES, check_scopes_allowed, parse_scope

__all__ = [
    "check_client_may_use_grant",
    "check_self_registered_grants",
    "client_credentials_audience",
    "client_credentials_scope",
]

GRANT = "client_credentials"
NOT_ALLOWED = "client_credentials is not allowed for self-registered clients here"
HOW_TO_ALLOW = " (registration.allow_client_credentials)"


def check_self_registered_grants(grant_types: Iterable[str], *, allowed: bool) -> None:
    """RFC 7591 §2: the server may refuse a grant type it will not let this client use."""
    if GRANT in grant_types and not allowed:
        raise InvalidClientMetadata(NOT_ALLOWED + HOW_TO_ALLOW)


def check_client_may_use_grant(*, auth_method: str, self_asserted: bool, allowed: bool) -> None:
    """At the token endpoint, whatever a registration says: confidential clients only (OAuth
    2.1 §4.2), and self-registered ones only when allowed (a registration from before the
    operator turned it off). OAuth 2.1 §3.2.4 unauthorized_client."""
    if auth_method == "none":
        raise UnauthorizedClient("client_credentials is for confidential clients")
    if self_asserted and not allowed:
        raise UnauthorizedClient(NOT_ALLOWED)


def client_credentials_scope(
    requested: str | None, registered: str, known: frozenset[str]
) -> tuple[str, ...]:
    """OAuth 2.1 §3.2.2.1: the requested scope within the client's registered one; without a
    request, the registered scope (RFC 6749 §3.3 lets the server apply a default)."""
    asked = parse_scope(requested)
    allowed = tuple(s for s in parse_scope(registered) if s not in OIDC_SCOPES)
    if any(s in OIDC_SCOPES for s in asked):
        raise InvalidScope("scopes about a person cannot be granted to a client alone")
    check_scopes_allowed(asked, known, allowed)
    if asked and not allowed:
        # A client that registered no scope gets none by asking: scope is what it registered.
        raise InvalidScope("the client registered no scope")
    return asked or allowed


def client_credentials_audience(
    requested: tuple[str, ...], configured: tuple[str, ...], issuer: str, scope: tuple[str, ...]
) -> tuple[str, ...]:
    """RFC 8707 §2: one requested resource served here (invalid_target otherwise), or the
    issuer itself when none is requested. /userinfo's identifiers are refused by the same rule
    as elsewhere: it serves the `openid` scope, which no client alone is granted."""
    if not requested:
        return (issuer,)
    return requested_audience(requested, configured, issuer, scope)
