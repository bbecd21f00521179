"""A tenant's request quota (`limits.tenant_requests`): every request to the tenant, whoever
sends it, counted in one GCRA budget (runtime.ratelimit) in this process.

It is the outermost layer of the tenant's app, so the TenantRouter reaches it first: no
routing, no Quart, no actor before it. A request past the budget waits for its turn, in the
order requests came, if that turn is at most `limits.tenant_queue_s` away (nginx's limit_req
with a delay); else it is refused once `tenant_queue_s` has passed (a tarpit), or at once when
it is 0. Waiting is what protects the other tenants: a flooding client that waits for each
answer before sending the next (most do) is slowed to the quota, or to one refusal per
`tenant_queue_s` per connection, where answering it at once would let it send again at once,
and every request it sends costs the server its HTTP parsing, however quickly it is refused.
A waiting request holds only a sleeping task: at most `requests * tenant_queue_s / window_s`
of them wait for their turn, and at most one per open connection (`[server]
max_connections`) for its refusal.

The refusal is the one every rate limit gives (RFC 6585 §4): 429, `Retry-After`, and the JSON
error body `{"error": "temporarily_unavailable", ...}` with `Cache-Control: no-store`, and the
CORS headers the path's answers carry (the JSON API's, or the public documents'), so that a
browser-based client can read the refusal and its Retry-After; counted in
`oauthd_rate_limited_total` and `oauthd_http_requests_total` under the endpoint `*` (no route
was looked at) and the tenant's label. The access log does not see a refusal: a flood that the
quota holds off writes no lines.

The default tenant's quota (from the file) spares `/healthz` and `/metrics`: they are the
whole server's, and a load balancer or scraper refused under a flood would see every tenant
down.

The budget lives with the app: a tenant whose settings change, or whose app is dropped after
`idle_s`, starts with a full one. With N worker processes a tenant is admitted N times the
rate, like every other limit."""

from __future__ import annotations

import time

import trio

from oauthd.errors import TooManyRequests
from oauthd.metrics import DEFAULT_TENANT, Metrics
from oauthd.runtime import Limiter
from oauthd.settings import Rate
from oauthd.web.access_log import ASGIApp, Receive, Scope, Send
from oauthd.web.responses import asgi_headers, cors_of, error_body, error_headers
from oauthd.web.routes import health, metrics
from oauthd.web.security_headers import EVERY_RESPONSE
from oauthd.web.state import AppState

__all__ = ["QUOTA_ENDPOINT", "RequestQuota", "with_request_quota"]

QUOTA_ENDPOINT = "*"  # the metrics endpoint label of a refusal: no route was matched
REFUSAL = TooManyRequests("this service is receiving too many requests; try again later")
BODY = error_body(REFUSAL)

HEADERS = [h for h in asgi_headers(error_headers(REFUSAL)) if h[0] != b"retry-after"]


class RequestQuota:
    def __init__(
        self,
        app: ASGIApp,
        limit: Limiter,
        metrics: Metrics,
        tenant: str,
        queue_s: float = 0.0,
        spared: frozenset[str] = frozenset(),
        base: str = "",
    ) -> None:
        self.app = app
        self.base = base  # the issuer's path, under which the JSON API's paths are
        self.limit = limit
        self.queue_s = queue_s
        self.metrics = metrics
        self.tenant = tenant
        self.spared = spared  # paths the quota never refuses
        self._length = str(len(BODY)).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.spared:
            await self.app(scope, receive, send)
            return
        turn = self.limit.schedule("", self.queue_s)
        if turn is not None:
            if turn:
                await trio.sleep(turn)
            await self.app(scope, receive, send)
            return
        await trio.sleep(self.queue_s)
        await self.refuse(scope["path"], send)

    async def refuse(self, path: str, send: Send) -> None:
        start = time.perf_counter()
        wait = self.limit.blocked("") or 1
        headers = [
            *HEADERS,
            (b"retry-after", str(wait).encode()),
            (b"content-type", b"application/json"),
            (b"content-length", self._length),
            *EVERY_RESPONSE,
            *asgi_headers(cors_of(path, self.base)),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})
        seconds = time.perf_counter() - start
        self.metrics.request(QUOTA_ENDPOINT, 429, seconds, self.tenant)
        self.metrics.rate_limited(QUOTA_ENDPOINT, self.tenant)


def with_request_quota(app: ASGIApp, state: AppState) -> ASGIApp:
    """`app` behind its tenant's request quota, or `app` itself when the quota is off."""
    rate: Rate = state.settings.limits.tenant_requests
    if rate.requests == 0:
        return app
    limit = Limiter(rate.requests, rate.window_s, state.clock, max_keys=1)
    spared: frozenset[str] = frozenset()
    if state.tenant == DEFAULT_TENANT:
        spared = frozenset((health.PATH, state.path(metrics.PATH)))
    queue_s = state.settings.limits.tenant_queue_s
    base = state.path("")
    return RequestQuota(app, limit, state.metrics, state.tenant, queue_s, spared, base)
