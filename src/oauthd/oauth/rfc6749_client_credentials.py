"""The client credentials grant (OAuth 2.1 §4.2): what a client may ask for on its own behalf.

No person is involved, so the OIDC scopes (which name a person's data) are never granted here;
a client gets at most the scopes it registered, and those the server knows."""

from __future__ import annotations

from oauthd.errors import InvalidScope
from oauthd.oauth.rfc8707_resources import requested_audience
from oauthd.oauth.scopes import OIDC_SCOPES, check_scopes_allowed, parse_scope

__all__ = ["client_credentials_audience", "client_credentials_scope"]


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
    requested: tuple[str, ...], configured: tuple[str, ...], issuer: str
) -> tuple[str, ...]:
    """RFC 8707 §2: one requested resource served here (invalid_target otherwise), or the
    issuer itself when none is requested."""
    if not requested:
        return (issuer,)
    return requested_audience(requested, configured)
