"""Counts and times every HTTP request by route template and status, for /metrics.

The endpoint label is the template of the route that matched (`/register/<client_id>`), noted
in the ASGI scope by the app (`scope["oauthd.route"]`), or `other` when none did: a scan of
garbage paths adds no label values. Requests refused before routing (414, 431) are `other`.
"""

from __future__ import annotations

import time

from oauthd.metrics import UNMATCHED, Metrics
from oauthd.web.access_log import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ROUTE", "RequestMetrics"]

ROUTE = "oauthd.route"
TOO_MANY_REQUESTS = 429


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            endpoint = scope.get(ROUTE, UNMATCHED)
            self.metrics.request(endpoint, status, time.perf_counter() - start)
            if status == TOO_MANY_REQUESTS:  # only rate limits answer 429: one count for all
                self.metrics.rate_limited(endpoint)
