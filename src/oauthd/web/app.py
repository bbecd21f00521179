"""The application: the routes of one tenant (web/routing.py), the fast path in front of a
Quart-Trio app made when first needed, error mapping, body limits, and in front of it all the
one layer every request crosses (web/front.py: head limits, security headers, the access log
and request metrics by route template)."""

from __future__ import annotations

from functools import partial

from quart import Response, request
from quart_trio import QuartTrio

from oauthd.errors import RequestTooLarge
from oauthd.metrics import UNMATCHED
from oauthd.web.access_log import ROUTE, ASGIApp, RequestLog
from oauthd.web.errors import install_error_handlers
from oauthd.web.fast import FastPath
from oauthd.web.front import Front
from oauthd.web.pages import install_pages
from oauthd.web.quota import with_request_quota
from oauthd.web.responses import API_PATHS, cors_of
from oauthd.web.routes import (
    authorize,
    consent,
    device,
    device_authorization,
    discovery,
    federation,
    health,
    introspect,
    jwks,
    login,
    logout,
    metrics,
    register,
    revoke,
    token,
    userinfo,
)
from oauthd.web.routing import DeferredApp, RouteTable
from oauthd.web.state import AppState

__all__ = ["AppState", "create_app"]

ENDPOINTS = (
    jwks,
    health,
    authorize,
    login,
    federation,
    consent,
    logout,
    token,
    userinfo,
    register,
    revoke,
    introspect,
    device_authorization,
    device,
    metrics,
)


def create_app(state: AppState) -> ASGIApp:
    """The routes of `state`'s tenant: the fast endpoints answered at once, the Quart app
    built on the first request that needs it (web/routing.py)."""
    table = RouteTable()
    contributions = [endpoint.register(table, state) for endpoint in ENDPOINTS]
    discovery.register(table, state, contributions)
    quart = DeferredApp(partial(build_quart_app, state, table))
    fast = FastPath(quart, table.fast, state.settings.limits.max_body_bytes)
    label = ("", "")
    if state.tenant != "default":  # a path tenant: /t/<id> becomes /t/{tenant} in metrics
        label = (state.path(""), state.path("").rpartition("/")[0] + "/{tenant}")
    log = RequestLog(
        state.metrics, enabled=state.settings.log.access_log, label=label, tenant=state.tenant
    )
    return with_request_quota(Front(fast, log), state)


def build_quart_app(state: AppState, table: RouteTable) -> ASGIApp:
    app = QuartTrio("oauthd")
    app.config["MAX_CONTENT_LENGTH"] = state.settings.limits.max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    base = state.path("")
    api = tuple(base + p for p in API_PATHS)
    install_pages(app, state.settings.branding)
    install_error_handlers(app, api)
    for rule in table.quart_rules():
        app.add_url_rule(rule.path, rule.endpoint, rule.view, methods=list(rule.methods))

    @app.before_request
    async def note_route() -> None:
        # The route template labels the request's metrics; unmatched paths share one label.
        rule = request.url_rule
        request.scope[ROUTE] = rule.rule if rule is not None else UNMATCHED  # type: ignore[literal-required]  # Quart types the ASGI scope as a closed TypedDict

    @app.before_request
    async def check_body_size() -> None:
        # ERR-3: a declared body over the limit answers 413 before routing, unread. Quart's own
        # MAX_CONTENT_LENGTH check fires only when a route reads the body (and for chunked ones).
        length = request.content_length
        if length is not None and length > state.settings.limits.max_body_bytes:
            raise RequestTooLarge("request body too large")

    @app.after_request
    async def cors(response: Response) -> Response:
        # Automatic OPTIONS answers preflights; public documents and the API allow any origin.
        response.headers.update(cors_of(request.path, base))
        return response

    asgi: ASGIApp = app  # type: ignore[assignment]  # Quart types ASGI scopes as TypedDicts
    return asgi
