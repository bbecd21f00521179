"""Resource indicators (RFC 8707): which audiences a token may be issued for.

A requested resource matches a configured one exactly, up to the case of scheme and host, or
when the two differ only by the lone "/" path of a root URL (`https://mcp.example` and
`https://mcp.example/`): MCP clients send `URL.href`, which always has that slash. The token
carries the configured spelling.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from oauthd.errors import InvalidTarget

__all__ = ["requested_audience", "resolve_resources", "token_audience", "userinfo_audience"]


def _root_normalised(uri: str) -> str:
    """Scheme and host compare case-insensitively (RFC 3986 §6.2.2.1); a root URL's lone "/"
    path is dropped."""
    parts = urlsplit(uri)
    path = "" if parts.path == "/" and not parts.query else parts.path
    rest = path + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{rest}"


def resolve_resources(requested: Iterable[str], configured: Iterable[str]) -> tuple[str, ...]:
    """The configured resources named by `requested`, in request order; InvalidTarget if any
    is not an absolute URI without fragment (RFC 8707 §2) or not served by this server."""
    by_key = {_root_normalised(uri): uri for uri in configured}
    resolved: list[str] = []
    for uri in requested:
        try:
            parts = urlsplit(uri)
        except ValueError:  # e.g. an unclosed IPv6 bracket: garbage, not a server fault
            raise InvalidTarget("resource must be an absolute URI without a fragment") from None
        if not parts.scheme or not parts.netloc or "#" in uri:
            raise InvalidTarget("resource must be an absolute URI without a fragment")
        match = by_key.get(_root_normalised(uri))
        if match is None:
            raise InvalidTarget("resource is not served by this authorization server")
        if match not in resolved:
            resolved.append(match)
    return tuple(resolved)


def userinfo_audience(issuer: str) -> str:
    """oauthd's own protected resource, /userinfo: its RFC 9728 `resource` is the issuer, and
    a token is accepted there only if its `aud` names it (RFC 9700 §2.3, USERINFO-6)."""
    return issuer


def requested_audience(requested: tuple[str, ...], allowed: Iterable[str]) -> tuple[str, ...]:
    """RFC 8707 §2.2: the one resource named at the token endpoint, among `allowed`
    (invalid_target otherwise). One token names one requested audience, so an MCP server
    cannot replay it at another."""
    if len(requested) > 1:
        raise InvalidTarget("request one resource per token")
    return resolve_resources(requested, allowed)


def token_audience(
    requested: tuple[str, ...], granted: tuple[str, ...], issuer: str, scope: Iterable[str]
) -> tuple[str, ...]:
    """The `aud` of a token issued from a grant (the table in README "Policies: Audience"):

    - `resource` named at the token endpoint: that resource only (MCP audience binding);
    - none named: every resource the grant holds (RFC 8707 §2.2 lets the server use those of
      the authorization request), plus /userinfo's audience when the token's `scope`
      includes `openid` (the person approved the client reading their claims), or when the
      grant holds no resource at all (never an audience-less token, RFC 9700 §2.3).

    So a client that refreshes without `resource` (requests-oauthlib, openid-client) keeps a
    token that works at /userinfo and at the grant's resources."""
    if requested:
        return requested_audience(requested, granted)
    own = (userinfo_audience(issuer),) if "openid" in scope or not granted else ()
    return tuple(dict.fromkeys(granted + own))
