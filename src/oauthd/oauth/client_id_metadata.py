"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, "CIMD"; the
MCP authorization spec 2025-11-25 makes it the preferred way for a client to identify itself).

A `client_id` that is an https URL names a JSON document the client publishes; the document
is its registration. This module holds the rules, without I/O: which URLs are identifiers
(§3), what a fetched response must be (CIMD-01 §4: 200 and a JSON media type), what the
document must say (§4.1: its own `client_id`, no shared secret), and how long it may be
cached (§4.4). The Fetcher actor does the fetching.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from urllib.parse import urlsplit

from oauthd.errors import InvalidClient, OAuthError
from oauthd.oauth.rfc7591_registration import ClientMetadata, parse_metadata

__all__ = [
    "DOCUMENT_AUTH_METHODS",
    "cache_lifetime_s",
    "is_metadata_client_id",
    "parse_metadata_document",
]

# CIMD-00 §4.1: no shared secrets; a client proves itself with keys it publishes, or not at all.
DOCUMENT_AUTH_METHODS = ("none", "private_key_jwt")
SECRET_MEMBERS = ("client_secret", "client_secret_expires_at")
MAX_CLIENT_ID = 2000
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|=|$)", re.IGNORECASE)


def is_metadata_client_id(client_id: str) -> bool:
    """CIMD-00 §3: an https URL with a path, and no dot segments, fragment or userinfo. A query
    is allowed by the draft (SHOULD NOT); it is refused here, so one document has one name.
    Anything else is an ordinary client id, and is never fetched."""
    if len(client_id) > MAX_CLIENT_ID or not client_id.startswith("https://"):
        return False
    if any(ord(ch) <= 0x20 or ord(ch) >= 0x7F or ch == "\\" for ch in client_id):
        return False
    try:
        parts = urlsplit(client_id)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return False
    if not parts.hostname or port == 0 or "@" in parts.netloc:
        return False
    if "#" in client_id or "?" in client_id:
        return False
    path = parts.path
    if not path or path == "/":
        return False
    segments = path.split("/")[1:]
    return not any(
        s in (".", "..") or s.lower() in ("%2e", "%2e%2e", ".%2e", "%2e.") for s in segments
    )


def is_json_media_type(content_type: str | None) -> bool:
    """CIMD-01 §4: application/json or application/<something>+json."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def parse_metadata_document(
    client_id: str,
    status: int,
    content_type: str | None,
    body: bytes,
    allowed_scope: Callable[[tuple[str, ...]], bool],
    id_token_algorithms: Collection[str],
) -> ClientMetadata:
    """The client's registration from the fetched response, or InvalidClient naming what is
    wrong with it. Each check is one clause of the draft."""
    # CIMD-01 §4: a successful fetch is a 200 (redirects are not followed) with a JSON type.
    if status != 200:
        raise InvalidClient(f"the client's metadata document answered HTTP {status}")
    if not is_json_media_type(content_type):
        raise InvalidClient("the client's metadata document is not served as JSON")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidClient("the client's metadata document is not valid JSON") from None
    if not isinstance(document, dict):
        raise InvalidClient("the client's metadata document must be a JSON object")
    # CIMD-00 §4.1: the document names itself, compared as strings.
    if document.get("client_id") != client_id:
        raise InvalidClient("the client's metadata document names another client_id")
    # CIMD-00 §4.1: no shared secret, and no method that would need one.
    if any(name in document for name in SECRET_MEMBERS):
        raise InvalidClient("a client metadata document must not contain a client_secret")
    method = document.get("token_endpoint_auth_method", "none")  # none: there is no secret
    if method not in DOCUMENT_AUTH_METHODS:
        raise InvalidClient(
            "a client metadata document must use auth method none or private_key_jwt"
        )
    if "redirect_uris" not in document:
        raise InvalidClient("the client's metadata document has no redirect_uris")
    try:
        return parse_metadata(
            {**document, "token_endpoint_auth_method": method}, allowed_scope, id_token_algorithms
        )
    except OAuthError as exc:
        raise InvalidClient(
            f"the client's metadata document is invalid: {exc.description}"
        ) from None


def cache_lifetime_s(
    cache_control: str | None, *, default_s: float, min_s: float, max_s: float
) -> float:
    """CIMD-00 §4.4: how long a valid document is reused. `no-store` and `no-cache` are
    honoured (0: fetched again next time); a `max-age` is kept within
    [min_s, max_s], so a document is neither fetched on every request nor trusted forever."""
    if not cache_control:
        return default_s
    if _NO_CACHE.search(cache_control):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return default_s
    return min(max(float(match.group(1)), min_s), max_s)
