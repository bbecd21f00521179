"""GET /metrics: Prometheus text exposition of this server's metrics (oauthd.metrics).

Server-wide, so served by the root (`default`) app only: the numbers of every tenant, labelled
by tenant, are the operator's. A path tenant has no /metrics (404): its callers never see
another tenant's traffic.

Not public (settings.MetricsSettings): loopback peers only, or any peer with the configured
bearer token. The actor system's numbers and the signing keys' states are read now, at the
scrape: the KeyManager is asked for its key list, so a scrape also proves it answers."""

from __future__ import annotations

import hmac
from collections import Counter
from functools import partial

from quart import Response, request

from oauthd.actors import ListKeys, keys_address
from oauthd.metrics import CONTENT_TYPE, DEFAULT_TENANT
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.settings import is_loopback_host
from oauthd.web.asks import ask
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState
from oauthd.web.throttle import client_ip

__all__ = ["PATH", "register"]

PATH = "/metrics"


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    return Contribution()


def views(app: RouteTable, state: AppState) -> None:
    if not state.settings.metrics.enabled or state.tenant != DEFAULT_TENANT:
        return  # 404
    token = state.metrics_token.encode()

    def refusal() -> Response | None:
        if token:
            given = request.headers.get("Authorization", "").encode()
            if hmac.compare_digest(given, b"Bearer " + token):
                return None
            return Response(
                "a bearer token is required\n",
                401,
                {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain"},
            )
        # Behind a trusted reverse proxy on this host every peer is loopback: the client is
        # who the proxy says it is (the same rule as the rate limits).
        forwarded = ",".join(request.headers.getlist("X-Forwarded-For"))
        peer = client_ip(request.remote_addr, forwarded, state.settings.limits.trusted_proxies)
        if is_loopback_host(peer):
            return None
        return Response("metrics are served to loopback peers only\n", 403)

    async def metrics() -> Response:
        refused = refusal()
        if refused is not None:
            return refused
        keys = await ask(state, keys_address(state.tenant), ListKeys())
        body = state.metrics.render(state.system.stats(), Counter(k.state for k in keys))
        return Response(body, 200, {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})

    app.add_url_rule(state.path(PATH), "metrics", metrics, methods=["GET"])
