"""Responses: JSON bodies, errors, and the header sets every response of a kind carries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from quart import Response

from oauthd.errors import OAuthError

__all__ = [
    "API_CORS",
    "API_PATHS",
    "CORS",
    "JSON",
    "NO_STORE",
    "asgi_headers",
    "cors_of",
    "error_body",
    "error_headers",
    "error_response",
    "json_bytes",
    "json_response",
]


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Public documents (metadata, JWKS) may be read by browser-based clients (CORS-1, RFC 9700 §2.6);
# never with credentials.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "authorization, content-type, mcp-protocol-version",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Max-Age": "86400",
}
API_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "authorization, content-type, mcp-protocol-version",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Expose-Headers": "WWW-Authenticate",
    "Access-Control-Max-Age": "86400",
}
JSON = "application/json"
# The JSON API: CORS for browser-based clients (RFC 9700 §2.6, CORS-2), and errors always as
# JSON whatever Accept prefers (ERR-1). Everything else that a browser sees is HTML.
API_PATHS = (
    "/token",
    "/register",
    "/userinfo",
    "/revoke",
    "/introspect",
    "/device_authorization",
)


def cors_of(path: str, base: str) -> Mapping[str, str]:
    """The CORS headers of every answer at `path`, errors and 404s included (CORS-1, CORS-2):
    the JSON API's at the API paths under `base` (the issuer's path), the public documents' at
    any /.well-known/ URL, served or not (an MCP client probing them in turn must be able to
    read a 404); none elsewhere, the pages and /authorize above all (CORS-4)."""
    if path.startswith(base) and path[len(base) :].startswith(API_PATHS):
        return API_CORS
    return CORS if "/.well-known/" in path else {}


def asgi_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as an ASGI message carries them: lower-case names, bytes."""
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


def json_bytes(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def json_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(body, status=status, headers=dict(headers or {}), content_type=JSON)


def error_body(exc: OAuthError) -> bytes:
    """The one place any OAuth error becomes a JSON body."""
    body: dict[str, str] = {"error": exc.code}
    if exc.description:
        body["error_description"] = exc.description
    return json_bytes(body)


def error_headers(exc: OAuthError) -> dict[str, str]:
    return {**NO_STORE, **exc.headers()}


def error_response(exc: OAuthError) -> Response:
    """Any OAuth error as an HTTP response (JSON, no-store)."""
    return json_response(error_body(exc), exc.status, error_headers(exc))
