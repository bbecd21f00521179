"""ASGI middleware: serves the RFC 9728 document, and lets a request through to the wrapped app
only with a valid token, whose claims it puts in `scope["oauthd.token"]`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from oauthd.resource._guard import JSON, NOSNIFF, SCOPE_KEY, Reply, ResourceGuard

__all__ = ["ASGIApp", "BearerMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

POLICY_VIOLATION = 1008  # RFC 6455 §7.4.1; before accept, servers answer HTTP 403


class BearerMiddleware:
    """Wraps any ASGI app (a Quart app: `app.asgi_app = BearerMiddleware(app.asgi_app, guard)`).

    Lifespan events pass through; HTTP and WebSocket requests need a token unless their path is
    in `config.public_paths`."""

    __slots__ = ("app", "guard")

    def __init__(self, app: ASGIApp, guard: ResourceGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind, path = scope["type"], scope.get("path", "")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        config = self.guard.config
        if kind == "http" and path == config.metadata_path:
            await _send_metadata(self.guard, scope["method"], send)
            return
        if config.is_public(path):
            await self.app(scope, receive, send)
            return
        result = await self.guard.check(_header(scope, b"authorization"), _query_token(scope), path)
        if isinstance(result, Reply):
            if kind == "websocket":
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
            else:
                await send_reply(send, result)
            return
        await self.app({**scope, SCOPE_KEY: result}, receive, send)


async def send_reply(send: Send, reply: Reply, *, body: bool = True) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body if body else b""})


async def _send_metadata(guard: ResourceGuard, method: str, send: Send) -> None:
    if method in ("GET", "HEAD"):
        await send_reply(send, guard.metadata(), body=method == "GET")
    else:
        allow = (("allow", "GET, HEAD"), JSON, NOSNIFF)
        await send_reply(send, Reply(405, allow, b'{"error":"method_not_allowed"}'))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _query_token(scope: Scope) -> str | None:
    query = scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(query, keep_blank_values=True)
    return next((value for name, value in pairs if name == "access_token"), None)
