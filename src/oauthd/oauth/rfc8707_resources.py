"""Resource indicators (RFC 8707): which audiences a token may be issued for. One rule, used
by /authorize, /device_authorization and every grant at /token (README "Audience").

Two kinds of resource are served:

- the configured `[[resources]]` (MCP servers, APIs). A requested resource matches one
  exactly, up to the case of scheme and host, or when the two differ only by the lone "/" path
  of a root URL (`https://mcp.example` and `https://mcp.example/`): MCP clients send
  `URL.href`, which always has that slash. The token carries the configured spelling.
- oauthd's own protected resource, /userinfo. Its two RFC 9728 documents name it by the
  identifier each was derived from (§3.3): the issuer, and the userinfo URL (§3.1). A client
  may name either, matched the same way, when the scope includes `openid`: /userinfo answers
  nothing else (USERINFO-4), so without it the resource is `invalid_target` (RFC 9728 §3.3). Tokens
  spell it as the issuer, the one audience /userinfo accepts. `openid` already grants it, so
  a grant records only configured resources (and consent shows only those).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from oauthd.errors import InvalidTarget
from oauthd.oauth.scopes import OIDC_SCOPES

__all__ = [
    "USERINFO_PATH",
    "TokenTarget",
    "requested_audience",
    "resolve_resources",
    "token_target",
    "userinfo_audience",
    "userinfo_resources",
]

USERINFO_PATH = "/userinfo"


def userinfo_audience(issuer: str) -> str:
    """The `aud` of tokens for /userinfo, whichever identifier was asked for: a token is
    accepted there only if its `aud` names it (RFC 9700 §2.3, USERINFO-6)."""
    return issuer


def userinfo_resources(issuer: str) -> tuple[str, str]:
    """/userinfo's resource identifiers, as its RFC 9728 documents advertise them: the issuer
    (/.well-known/oauth-protected-resource) and the userinfo URL (the path-suffixed one)."""
    return (issuer, issuer + USERINFO_PATH)


def _root_normalised(uri: str) -> str:
    """Scheme and host compare case-insensitively (RFC 3986 §6.2.2.1); a root URL's lone "/"
    path is dropped."""
    parts = urlsplit(uri)
    path = "" if parts.path == "/" and not parts.query else parts.path
    rest = path + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{rest}"


def _key(uri: str) -> str:
    """RFC 8707 §2: an absolute URI without a fragment (invalid_target otherwise), normalised."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unclosed IPv6 bracket: garbage, not a server fault
        raise InvalidTarget("resource must be an absolute URI without a fragment") from None
    if not parts.scheme or not parts.netloc or "#" in uri:
        raise InvalidTarget("resource must be an absolute URI without a fragment")
    return _root_normalised(uri)


def _named(
    requested: Iterable[str], served: Iterable[str], issuer: str, scope: Collection[str]
) -> tuple[str, ...]:
    """The audiences `requested` names, in request order, as tokens spell them: a resource of
    `served` in its configured spelling, /userinfo as the issuer (only with `openid`)."""
    own = {_root_normalised(uri) for uri in userinfo_resources(issuer)}
    by_key = {_root_normalised(uri): uri for uri in served}
    named: list[str] = []
    for uri in requested:
        key = _key(uri)
        if key in own:
            if "openid" not in scope:
                raise InvalidTarget("the userinfo resource is only for the openid scope")
            match: str | None = userinfo_audience(issuer)
        else:
            match = by_key.get(key)
        if match is None:
            raise InvalidTarget("resource is not served by this authorization server")
        if match not in named:
            named.append(match)
    return tuple(named)


def resolve_resources(
    requested: Iterable[str], configured: Iterable[str], issuer: str, scope: Collection[str]
) -> tuple[str, ...]:
    """RFC 8707 §2 at /authorize and /device_authorization: the configured resources named by
    `requested`, for the grant to record; InvalidTarget for anything else but /userinfo's
    identifiers with `openid`, which are accepted and not recorded (`openid` grants them)."""
    own = userinfo_audience(issuer)
    return tuple(r for r in _named(requested, configured, issuer, scope) if r != own)


def requested_audience(
    requested: tuple[str, ...], allowed: Iterable[str], issuer: str, scope: Collection[str]
) -> tuple[str, ...]:
    """RFC 8707 §2.2: the one resource named at the token endpoint, among `allowed` or, with
    `openid` in the token's scope, /userinfo (invalid_target otherwise). One token names one
    requested audience, so an MCP server cannot replay it at another."""
    if len(requested) > 1:
        raise InvalidTarget("request one resource per token")
    return _named(requested, allowed, issuer, scope)


@dataclass(frozen=True, slots=True)
class TokenTarget:
    """Whom a token is for, and what it may do there."""

    audience: tuple[str, ...]
    scope: tuple[str, ...]


def token_target(
    requested: tuple[str, ...], granted: tuple[str, ...], issuer: str, scope: tuple[str, ...]
) -> TokenTarget:
    """The `aud` and `scope` of a token issued from a grant (the table in README "Policies:
    Audience"), `scope` being what the token is asked for (the grant's, or narrower):

    - `resource` named at the token endpoint: that resource only (MCP audience binding), one
      the grant holds, or /userinfo when `scope` includes `openid`. A token for /userinfo
      carries only the OIDC scopes, all it can process (RFC 8707 §2.2: the server should
      downscope a token to its resource); the refresh token keeps the whole grant;
    - none named: every resource the grant holds (RFC 8707 §2.2 lets the server use those of
      the authorization request), plus /userinfo's audience when `scope` includes `openid`
      (the person approved the client reading their claims), or when the grant holds no
      resource at all (never an audience-less token, RFC 9700 §2.3).

    So a client that refreshes without `resource` (requests-oauthlib, openid-client) keeps a
    token that works at /userinfo and at the grant's resources."""
    own = userinfo_audience(issuer)
    if requested:
        audience = requested_audience(requested, granted, issuer, scope)
        if audience == (own,):
            scope = tuple(s for s in scope if s in OIDC_SCOPES)
        return TokenTarget(audience, scope)
    default = (own,) if "openid" in scope or not granted else ()
    return TokenTarget(tuple(dict.fromkeys(granted + default)), scope)
