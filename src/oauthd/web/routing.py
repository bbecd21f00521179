"""What the endpoint modules register into, and the Quart app made from it only when needed.

Each endpoint's `register(app, state)` adds to a `RouteTable`: Quart rules (pages, forms,
/register, /revoke ...), fast endpoints (`web/fast.py`: /token, /introspect, /userinfo, the
JWKS and the metadata documents) and the objects its routes share (`extensions`). Filling a
table is cheap: closures, limiters, the metadata bytes. Making a Quart app of it is not:
werkzeug compiles every rule and the pages compile their templates, some 15-20 ms per app on
this project's VM, which every path tenant paid on its first request (docs/architecture.md
"Tenants"). The machine-facing endpoints never need it, so `DeferredApp` makes the Quart app on
the first request that the fast path does not answer: a tenant that is only asked for tokens
and its metadata never has one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from oauthd.web.access_log import ASGIApp, Receive, Scope, Send
from oauthd.web.fast import FastRoutes

__all__ = ["DeferredApp", "RouteTable", "Rule"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A Quart URL rule, as `Quart.add_url_rule` takes it."""

    path: str
    endpoint: str
    view: Callable[..., Any]
    methods: tuple[str, ...]


@dataclass(slots=True)
class RouteTable:
    rules: list[Rule] = field(default_factory=list)
    fast: FastRoutes = field(default_factory=FastRoutes)
    extensions: dict[str, Any] = field(default_factory=dict)  # shared by the app's routes

    def add_url_rule(
        self, path: str, endpoint: str, view: Callable[..., Any], *, methods: list[str]
    ) -> None:
        self.rules.append(Rule(path, endpoint, view, tuple(methods)))


class DeferredApp:
    """An ASGI app made by `build` on its first call (Hypercorn's lifespan startup, for the
    root app; a page request, for a tenant's)."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None

    @property
    def built(self) -> bool:
        return self._app is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)
