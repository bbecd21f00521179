"""One log line per request: method, path, status, duration and the actor that served it.

The query string is never logged: authorization responses and some clients carry codes and
tokens there. The path is logged with control and non-ASCII characters escaped, so a request
for `/x%0aforged` cannot write a second log line. Routes name their actor by setting
`scope["oauthd.actor"]`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

from oauthd.logs import log_access

__all__ = ["CURRENT_SCOPE", "AccessLog", "note_actor"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The scope of the request being logged, for `note_actor` (Quart routes and the fast path
# alike; tasks a request starts inherit it).
CURRENT_SCOPE: ContextVar[Scope | None] = ContextVar("oauthd_scope", default=None)


def note_actor(name: str) -> None:
    """Name the actor that served the current request in its access-log line."""
    scope = CURRENT_SCOPE.get()
    if scope is not None:
        scope["oauthd.actor"] = name


class AccessLog:
    def __init__(self, app: ASGIApp, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        CURRENT_SCOPE.set(scope)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = scope["path"].encode("unicode_escape").decode("ascii")
            millis = (time.perf_counter() - start) * 1000
            actor = scope.get("oauthd.actor", "-")
            log_access(f"{scope['method']} {path} {status} {millis:.2f}ms {actor}")
