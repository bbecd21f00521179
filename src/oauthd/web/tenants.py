"""Path tenants at the ASGI level (docs/architecture.md "Tenants").

A request under `<root path>/t/<id>/...`, or for a well-known document of the issuer
`<root issuer>/t/<id>` (RFC 8414 §3.1 inserts the well-known segment before the issuer's
path, RFC 9728 §3.1 likewise), goes to that tenant's own app: the same routes, built over the
tenant's settings and keyring, whose endpoints already live under its issuer's path. Every
other request goes to the root (`default`) app.

Apps are built on a tenant's first request by `activate` (which also makes its first key)
and kept in an LRU of at most `max_apps`, dropped after `idle_s` without a request; a dropped
or changed tenant is handed to `drop` so its actors stop too. An unknown tenant is a 404 that
spawns nothing; a disabled one a 403 `temporarily_unavailable`, its data kept."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Literal

import trio

from oauthd.web.access_log import ASGIApp, Receive, Scope, Send
from oauthd.web.security_headers import SecurityHeaders

__all__ = ["TenantRouter", "tenant_of_path"]

WELL_KNOWN = (
    "/.well-known/oauth-authorization-server",  # RFC 8414 §3.1
    "/.well-known/openid-configuration",  # MCP clients also try the inserted form
    "/.well-known/oauth-protected-resource",  # RFC 9728 §3.1
)
Activation = ASGIApp | Literal["disabled"] | None


@lru_cache(maxsize=4)
def _prefixes(root_path: str) -> tuple[str, ...]:
    """The path prefixes that name a tenant, built once (every request is matched)."""
    return (f"{root_path}/t/", *(f"{w}{root_path}/t/" for w in WELL_KNOWN))


def tenant_of_path(path: str, root_path: str) -> str | None:
    """The tenant a path belongs to, or None for the root app's paths."""
    for prefix in _prefixes(root_path):
        if path.startswith(prefix):
            return path[len(prefix) :].partition("/")[0]
    return None


def _body(error: str, description: str) -> bytes:
    return json.dumps({"error": error, "error_description": description}).encode()


PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Unavailable</title>"
    "<p>This sign-in service is temporarily unavailable. Please try again later.</p></html>"
)


async def _answer(scope: Scope, send: Send, status: int, error: str, description: str) -> None:
    html = "text/html" in dict(scope.get("headers", ())).get(b"accept", b"").decode("latin-1")
    if html and status == 403:
        body, kind = PAGE.encode(), b"text/html; charset=utf-8"
    else:
        body, kind = _body(error, description), b"application/json"
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class TenantRouter:
    def __init__(
        self,
        root: ASGIApp,
        root_path: str,
        activate: Callable[[str], Awaitable[Activation]],
        drop: Callable[[str], None],
        *,
        max_apps: int = 100,
        idle_s: float = 600.0,
        before: Callable[[], None] = lambda: None,
    ) -> None:
        self.root = root
        self.before = before  # each tenant request: bring the view of the registry up to date
        self.root_path = root_path
        self.activate = activate
        self.drop = drop
        self.max_apps = max_apps
        self.idle_s = idle_s
        self.apps: OrderedDict[str, tuple[ASGIApp, float]] = OrderedDict()
        self._building: dict[str, trio.Event] = {}

    def forget(self, tenant: str) -> None:
        """The tenant changed (settings, state) or is gone: its app is built afresh (the
        caller stops its actors)."""
        self.apps.pop(tenant, None)

    def _sweep(self, now: float) -> None:
        while self.apps:
            tenant, (_app, used) = next(iter(self.apps.items()))
            if len(self.apps) <= self.max_apps and now - used < self.idle_s:
                return
            del self.apps[tenant]
            self.drop(tenant)

    async def app_of(self, tenant: str) -> Activation:
        now = trio.current_time()
        self._sweep(now)
        found = self.apps.get(tenant)
        if found is not None:
            self.apps[tenant] = (found[0], now)
            self.apps.move_to_end(tenant)
            return found[0]
        building = self._building.get(tenant)
        if building is not None:  # another request is activating it: use what it built
            await building.wait()
            return await self.app_of(tenant)
        self._building[tenant] = done = trio.Event()
        try:
            made = await self.activate(tenant)
            if made is None or made == "disabled":
                return made
            app: ASGIApp = made
            self.apps[tenant] = (app, trio.current_time())
            self._sweep(trio.current_time())
            return app
        finally:
            del self._building[tenant]
            done.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tenant = None
        if scope["type"] == "http":
            tenant = tenant_of_path(scope["path"], self.root_path)
        if tenant is None:
            await self.root(scope, receive, send)
            return
        self.before()
        app = await self.app_of(tenant)
        if app is None:
            await SecurityHeaders(_not_found)(scope, receive, send)
        elif app == "disabled":
            await SecurityHeaders(_disabled)(scope, receive, send)
        else:
            await app(scope, receive, send)


async def _not_found(scope: Scope, _receive: Receive, send: Send) -> None:
    await _answer(scope, send, 404, "not_found", "no such tenant")


async def _disabled(scope: Scope, _receive: Receive, send: Send) -> None:
    await _answer(scope, send, 403, "temporarily_unavailable", "this tenant is disabled")
