"""Decoding untrusted text before any rule reads it: strict base64url (RFC 7515 §2), JSON with
bounded nesting (RFC 8259 §9), and the JSON segments of a compact JWS made of both.

Every path that reads a JWT part (oauthd's own access tokens, client assertions, ID tokens from
an upstream provider, the resource-server helper) decodes it here, so that a lenient decoder or
a parser's recursion limit cannot differ from one path to the next. Every failure is ValueError.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

__all__ = [
    "MAX_COMPACT",
    "MAX_DEPTH",
    "b64url_decode",
    "loads_bounded",
    "parse_json_segment",
    "split_compact",
]

MAX_DEPTH = 32  # JSON nesting accepted; oauthd's own documents nest 4 deep at most
MAX_COMPACT = 16_000  # characters in a compact JWS; oauthd's own access tokens are under 1,000

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# RFC 4648 §3.5: the bits past the last whole byte are zero, so each value has one encoding.
_LAST_CHAR = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def b64url_decode(segment: str) -> bytes:
    """Base64url without padding (RFC 7515 §2): the URL-safe alphabet only, no `=`, no
    whitespace, no non-zero trailing bits. ValueError for anything else."""
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not base64url")
    tail = len(segment) % 4
    if tail and segment[-1] not in _LAST_CHAR[tail]:
        raise ValueError("not canonical base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def loads_bounded(text: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """JSON text (RFC 8259) in UTF-8 (§8.1), nested at most `max_depth` deep (§9 lets a parser
    limit nesting; deeper input would exhaust the parser's stack), without NaN or Infinity
    (not JSON, §6). ValueError otherwise."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if text.count("[") + text.count("{") > max_depth and _depth(text) > max_depth:
        raise ValueError("JSON nested too deeply")
    return json.loads(text, parse_constant=_refuse_constant)


def split_compact(token: str) -> tuple[str, str, str]:
    """The header, payload and signature segments of a compact JWS (RFC 7515 §7.1)."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_COMPACT:
        raise ValueError("not a compact JWS")
    return parts[0], parts[1], parts[2]


def parse_json_segment(segment: str) -> dict[str, Any]:
    """A JWS header or JWT claims segment (RFC 7515 §7.1, RFC 7519 §7.2): a JSON object."""
    value = loads_bounded(b64url_decode(segment))
    if not isinstance(value, dict):
        raise ValueError("a JOSE header or claims set is a JSON object")  # noqa: TRY004 (bad input)
    return value


def _depth(text: str) -> int:
    """The deepest bracket nesting outside strings (an over-estimate for invalid JSON)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
