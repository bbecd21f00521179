"""Request-line and header size limits (ERR-3), enforced before the framework parses
anything: a URL over `MAX_URL` answers 414 and headers over `MAX_HEADERS` answer 431. h11
accepts longer ones, so the check is made here, on the ASGI scope. (The rate limits of
`[limits]` are in `web/throttle.py`.)

A response sent before the request body was read (a 404, 405 or 413 on a POST) carries
`Connection: close`: the unread body would otherwise be left on a keep-alive connection,
which Hypercorn under Quart-Trio then never recycles, and the client's next request hangs."""

from __future__ import annotations

import json

from oauthd.web.access_log import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_HEADERS", "MAX_URL", "RequestSizeLimits"]

MAX_URL = 8 * 1024
MAX_HEADERS = 16 * 1024


class RequestSizeLimits:
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
            if _has_body(scope):
                await self._guarded(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        read_all = False

        async def tracked_receive() -> Message:
            nonlocal read_all
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                read_all = True
            return message

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not read_all:
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, tracked_receive, guarded_send)


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            return bool(value != b"0")
        if name == b"transfer-encoding":
            return True
    return False


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
