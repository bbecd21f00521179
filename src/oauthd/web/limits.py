"""Request-line and header limits (ERR-3), enforced before the framework parses anything:
a URL over `MAX_URL` answers 414 and headers over `MAX_HEADERS` answer 431. h11 accepts
longer ones, so the check is made here, on the ASGI scope."""

from __future__ import annotations

import json

from oauthd.web.access_log import ASGIApp, Receive, Scope, Send

__all__ = ["MAX_HEADERS", "MAX_URL", "RequestLimits"]

MAX_URL = 8 * 1024
MAX_HEADERS = 16 * 1024


class RequestLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            url = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            headers = sum(len(k) + len(v) for k, v in scope.get("headers") or ())
            if url > MAX_URL:
                await _refuse(send, 414, "the request URI is too long")
                return
            if headers > MAX_HEADERS:
                await _refuse(send, 431, "the request headers are too large")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, description: str) -> None:
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
