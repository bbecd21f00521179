"""Tenants at the ASGI level (docs/architecture.md "Tenants").

A request whose host is a host tenant's origin (its issuer is `https://login.acme.example`)
goes, whatever its path, to that tenant's app. The host is the `Host` header; behind one of
`limits.trusted_proxies` (the peer, as `throttle.trusted_peer` judges it for X-Forwarded-For)
the last X-Forwarded-Host instead, the one that proxy wrote. Otherwise a request under
`<root path>/t/<id>/...`, or for a well-known document of the issuer `<root issuer>/t/<id>`
(RFC 8414 §3.1 inserts the well-known segment before the issuer's path, RFC 9728 §3.1
likewise), goes to that path tenant's app; a host tenant is never reached by a path. Each
tenant's app has the same routes, built over its settings and keyring, its endpoints under its
issuer's path. Every other request goes to the root (`default`) app.

Apps are built on a tenant's first request by `activate` (which also makes its first key)
and kept in an LRU of at most `max_apps`, dropped after `idle_s` without a request; a dropped
or changed tenant is handed to `drop` so its actors stop too. A tenant pushed out by another's
activation is let go once the request that activated that one has been answered. An unknown
tenant is a 404 that spawns nothing; a disabled one a 403 `temporarily_unavailable`, its data
kept."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from functools import lru_cache
from typing import Literal

import trio

from oauthd.web.access_log import ASGIApp, Receive, Scope, Send
from oauthd.web.responses import asgi_headers, cors_of
from oauthd.web.security_headers import SecurityHeaders
from oauthd.web.throttle import trusted_peer

__all__ = ["TenantRouter", "request_host", "tenant_of_path"]

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


def request_host(scope: Scope, trusted: tuple[str, ...]) -> str:
    """The host (and port) the client asked for, in lower case: `Host`, or behind a trusted
    proxy the last X-Forwarded-Host value (any before it was written by the client)."""
    host = forwarded = b""
    for name, value in scope["headers"]:
        if name == b"host" and not host:
            host = value
        elif name == b"x-forwarded-host":
            forwarded = value
    if forwarded and trusted:
        peer = scope.get("client")
        if peer and trusted_peer(peer[0], trusted):
            host = forwarded.rpartition(b",")[2]
    return host.decode("latin-1").strip().lower()


def _body(error: str, description: str) -> bytes:
    return json.dumps({"error": error, "error_description": description}).encode()


PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Unavailable</title>"
    "<p>This sign-in service is temporarily unavailable. Please try again later.</p></html>"
)


async def _answer(
    scope: Scope, send: Send, status: int, error: str, description: str, base: str
) -> None:
    html = "text/html" in dict(scope.get("headers", ())).get(b"accept", b"").decode("latin-1")
    if html and status == 403:
        body, kind = PAGE.encode(), b"text/html; charset=utf-8"
    else:
        body, kind = _body(error, description), b"application/json"
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *asgi_headers(cors_of(scope["path"], base)),
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
        hosts: Mapping[str, str] | None = None,
        hosted: Collection[str] = (),
        trusted_proxies: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.before = before  # each request: bring the view of the registry up to date
        self.hosts = {} if hosts is None else hosts  # host -> tenant, kept by the registry reader
        self.hosted = hosted  # the host tenants, which no path reaches
        self.trusted_proxies = trusted_proxies
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
            return app  # one past max_apps until its request is answered (`__call__`)
        finally:
            del self._building[tenant]
            done.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.root(scope, receive, send)
            return
        self.before()
        tenant = self.hosts.get(request_host(scope, self.trusted_proxies)) if self.hosts else None
        base = ""  # the tenant's issuer path: a host tenant's issuer is an origin alone
        if tenant is None:
            tenant = tenant_of_path(scope["path"], self.root_path)
            if tenant is None:
                await self.root(scope, receive, send)
                return
            base = f"{self.root_path}/t/{tenant}"
            if tenant in self.hosted:  # reached at its own host only: no such path tenant
                await _refusal(base, 404, "not_found", "no such tenant")(scope, receive, send)
                return
        app = await self.app_of(tenant)
        if app is None:
            await _refusal(base, 404, "not_found", "no such tenant")(scope, receive, send)
        elif app == "disabled":
            why = "this tenant is disabled"
            await _refusal(base, 403, "temporarily_unavailable", why)(scope, receive, send)
        else:
            try:
                await app(scope, receive, send)
            finally:
                # An activation may have taken the apps past max_apps: the least recently
                # used is let go (its shards closed, its key schedule stopped) once this
                # request is answered, not within the cold request's own latency.
                self._sweep(trio.current_time())


def _refusal(base: str, status: int, error: str, description: str) -> ASGIApp:
    """The router's own answer for a tenant it cannot serve, with the headers every response
    carries and the CORS headers of the path (`responses.cors_of`)."""

    async def answer(scope: Scope, _receive: Receive, send: Send) -> None:
        await _answer(scope, send, status, error, description, base)

    return SecurityHeaders(answer)
