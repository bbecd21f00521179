"""Request parameters as OAuth reads them, for Quart routes and the fast path alike."""

from __future__ import annotations

from urllib.parse import parse_qsl

from oauthd.errors import InvalidRequest
from oauthd.oauth.params import Params

__all__ = ["FORM", "parse_form", "parse_query"]

FORM = "application/x-www-form-urlencoded"


def parse_form(mimetype: str, raw: bytes) -> Params:
    """A form body (OAuth 2.1 App. B, App. C.2): form-encoded UTF-8 only, no NUL."""
    if mimetype != FORM:
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the body is not UTF-8 form-encoded") from None
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise InvalidRequest("the body contains NUL characters")
    return Params.of(pairs)


def parse_query(query_string: bytes) -> Params:
    """The query string, decoded as Quart decodes `request.args` (UTF-8, bad bytes replaced)."""
    if not query_string:
        return Params(())
    text = query_string.decode("latin-1")
    return Params.of(parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace"))
