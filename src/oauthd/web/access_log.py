"""One log line per request (method, path, status, duration and the actor that served it), and
the request metrics (route template, status, latency), from one timing of each request.

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
from oauthd.metrics import UNMATCHED, Metrics

__all__ = ["CURRENT_SCOPE", "ROUTE", "RequestLog", "note_actor"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The metrics label of a request: the template of the route that matched (`/register/<client_id>`),
# noted in the scope by the app, or `other` when none did, so garbage paths add no label values.
ROUTE = "oauthd.route"
TOO_MANY_REQUESTS = 429

# The scope of the request being logged, for `note_actor` (Quart routes and the fast path
# alike; tasks a request starts inherit it).
CURRENT_SCOPE: ContextVar[Scope | None] = ContextVar("oauthd_scope", default=None)


def note_actor(name: str) -> None:
    """Name the actor that served the current request in its access-log line."""
    scope = CURRENT_SCOPE.get()
    if scope is not None:
        scope["oauthd.actor"] = name


class RequestLog:
    """Notes each request once it is answered, for two readers: the access log (a line per
    request, when `enabled`) and the request metrics (route template and status)."""

    def __init__(
        self,
        metrics: Metrics,
        enabled: bool = True,
        label: tuple[str, str] = ("", ""),
        tenant: str = "default",
    ) -> None:
        self.metrics = metrics
        self.enabled = enabled
        # (prefix, template): a path tenant's routes are labelled /t/{tenant}/..., so the
        # number of metric series does not grow with the number of tenants.
        self.label = label
        self.tenant = tenant  # the `tenant` label (bounded by the metrics themselves)

    def begin(self, scope: Scope) -> float:
        """The request's start, for `done`; `note_actor` writes into `scope` from now on."""
        CURRENT_SCOPE.set(scope)
        return time.perf_counter()

    def done(self, scope: Scope, status: int, start: float) -> None:
        seconds = time.perf_counter() - start
        endpoint = scope.get(ROUTE, UNMATCHED)
        prefix, template = self.label
        if prefix and endpoint.startswith(prefix):
            endpoint = template + endpoint[len(prefix) :]
        elif prefix and prefix in endpoint:  # a well-known document with the path inserted
            endpoint = endpoint.replace(prefix, template, 1)
        self.metrics.request(endpoint, status, seconds, self.tenant)
        if status == TOO_MANY_REQUESTS:  # only rate limits answer 429: one count for all
            self.metrics.rate_limited(endpoint, self.tenant)
        if self.enabled:
            path = scope["path"].encode("unicode_escape").decode("ascii")
            actor = scope.get("oauthd.actor", "-")
            log_access(f"{scope['method']} {path} {status} {seconds * 1000:.2f}ms {actor}")
