"""Request-line and header size limits (ERR-3), enforced before the framework parses
anything: a URL over `MAX_URL` answers 414 and headers over `MAX_HEADERS` answer 431. h11
accepts longer ones, so the check is made on the ASGI scope, by the layer in front of every
tenant's app (`web/front.py`). (The rate limits of `[limits]` are in `web/throttle.py`.)

A response sent before the request body was read (a 404, 405 or 413 on a POST) carries
`Connection: close`: the unread body would otherwise be left on a keep-alive connection,
which Hypercorn under Quart-Trio then never recycles, and the client's next request hangs."""

from __future__ import annotations

import json

from oauthd.web.access_log import Scope, Send

__all__ = ["MAX_HEADERS", "MAX_URL", "UNREAD", "has_body", "oversized", "refuse"]

MAX_URL = 8 * 1024
MAX_HEADERS = 16 * 1024
UNREAD = (b"connection", b"close")  # on a response sent before its request's body was read


def oversized(scope: Scope) -> tuple[int, str] | None:
    """The refusal of a request line or headers over the limits (ERR-3), or None."""
    url = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    if url > MAX_URL:
        return 414, "the request URI is too long"
    if sum(len(k) + len(v) for k, v in scope.get("headers") or ()) > MAX_HEADERS:
        return 431, "the request headers are too large"
    return None


def has_body(scope: Scope) -> bool:
    """Whether the request declares a body (whose end the app may not read: then UNREAD)."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            return bool(value != b"0")
        if name == b"transfer-encoding":
            return True
    return False


async def refuse(send: Send, status: int, description: str) -> None:
    body = json.dumps({"error": "invalid_request", "error_description": description}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
