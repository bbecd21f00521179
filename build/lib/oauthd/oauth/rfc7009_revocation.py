"""Token revocation (RFC 7009) and the request shape it shares with introspection (RFC 7662).

What revoking does, decided here once and carried out in the client's actor:

- a refresh token ends its whole grant: the family, every refresh token in it and every access
  token issued from it (RFC 7009 §2.1 SHOULD, REVOKE-6);
- an access token ends that token alone. RFC 7009 §2.1 lets the server revoke the refresh token
  as well (MAY); oauthd leaves it alive, so a client that drops one access token (a signed-out
  tab, a token it suspects leaked from a log) keeps its grant and can refresh;
- anything else (unknown, garbage, expired, already revoked, or another client's token)
  changes nothing and is still answered 200 (§2.2), so a client learns nothing about tokens
  that are not its own (REVOKE-3, REVOKE-4).

`token_type_hint` is read and never trusted (§2.1): the two kinds of token oauthd issues have
disjoint shapes (an `rt_` handle, a JWT), so every request is searched by shape, and a hint
oauthd does not know is ignored (§2.2.1 keeps `unsupported_token_type` for token kinds it
cannot revoke, and it can revoke every kind it issues).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from oauthd.errors import InvalidRequest
from oauthd.oauth.params import Params

__all__ = ["TokenRequest", "looks_like_jwt", "parse_token_request"]

# OAuth 2.1 §2.4.1: credentials, and here the token itself, never travel in the URI.
NOT_IN_QUERY = ("token", "client_secret", "client_assertion")
# RFC 7009 §2.1, RFC 7662 §2.1, OAuth 2.1 §3.2: a defined parameter is sent at most once.
SINGLE_VALUED = (
    "token",
    "token_type_hint",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
)
MAX_TOKEN_CHARS = 8192


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A /revoke or /introspect request: the token, and the hint it came with (unused)."""

    token: str
    hint: str | None


def check_not_in_query(query_names: Iterable[str]) -> None:
    # OAuth 2.1 §2.4.1; RFC 7009 §2.1 and RFC 7662 §2.1 define a POST form body.
    if any(name in NOT_IN_QUERY for name in query_names):
        raise InvalidRequest("the token and credentials must not be sent in the URI")


def check_single_valued(params: Params) -> None:
    repeated = params.repeated(SINGLE_VALUED)
    if repeated is not None:
        raise InvalidRequest(f"parameter {repeated} is repeated")


def parse_token_request(params: Params, query_names: Iterable[str]) -> TokenRequest:
    """RFC 7009 §2.1 / RFC 7662 §2.1: `token` is REQUIRED, `token_type_hint` OPTIONAL."""
    check_not_in_query(query_names)
    check_single_valued(params)
    token = params.get("token")
    if token is None:
        raise InvalidRequest("token is required")
    return TokenRequest(token, params.get("token_type_hint"))


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts of a bounded size: worth a signature check, nothing more."""
    return token.count(".") == 2 and len(token) <= MAX_TOKEN_CHARS
