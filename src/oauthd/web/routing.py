"""What the endpoint modules register into, and the Quart app made from it only when needed.

Each endpoint's `register(app, state)` adds to a `RouteTable`: fast endpoints (`web/fast.py`:
/token, /introspect, /userinfo, the JWKS and the metadata documents), the objects its routes
share (`extensions`), and a function that makes its Quart views (pages, forms, /register,
/revoke ...: `add_views`), run only when the Quart app is built. So a tenant that is only asked
for tokens holds its fast routes alone: the views' closures, limiters and cookie settings are
some 250 objects a tenant, which every pass of the garbage collector would walk (bench/README.md
"Tenants"). Filling a table is cheap. Making a Quart app of it is not:
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
    views: list[Callable[[RouteTable], None]] = field(default_factory=list)  # not made yet

    def add_views(self, make: Callable[[RouteTable], None]) -> None:
        """`make(table)` adds Quart rules when the Quart app is built (`quart_rules`). It is
        handed the table then rather than holding it: a `make` that held its table would be a
        reference cycle, and a tenant let go would wait, with its keys, limiters and routes,
        for the collector's next full pass (some 140 objects a tenant, passes of 100 ms)."""
        self.views.append(make)

    def quart_rules(self) -> list[Rule]:
        """Every Quart rule, the views made first (once)."""
        while self.views:
            self.views.pop(0)(self)
        return self.rules

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
