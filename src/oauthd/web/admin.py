"""The tenant admin API (README "The admin API"): `oauthd tenants` and `oauthd keys` over HTTP,
in JSON, with the CLI's `--json` shapes. Each route calls the operation the CLI calls
(`actors.tenant_admin.TenantAdmin`) and renders its answer.

    GET    /tenants                      list
    POST   /tenants                      add      {"id", "issuer"?, "settings"?}  -> 201
    GET    /tenants/<id>                 show
    PATCH  /tenants/<id>                 update   {"issuer"?, "settings"?}
    POST   /tenants/<id>/disable         disable
    POST   /tenants/<id>/enable          enable
    DELETE /tenants/<id>                 remove (returns once its directory is gone)
    GET    /tenants/<id>/keys            keys list --tenant <id>
    POST   /tenants/<id>/keys/rotate     keys rotate --tenant <id>  {"immediate"?}

It is served on its own listener (`[admin] listen`, server.py), never on the public one, whose
app has no route of it. Every request must carry `Authorization: Bearer <token>`, one of the
tokens of `[admin] token_env`; only their SHA-256 digests are kept, compared with
hmac.compare_digest. Nothing a tenant issues can pass: the set of admin tokens is the only
thing a credential is compared with. A missing or wrong credential is a 401 with
`WWW-Authenticate: Bearer` (RFC 6750 §3), answered before routing, so an unauthenticated caller
learns nothing of the API. Failed authentications are reserved per client IP before they are
judged (`runtime.reserve`), 429 past `[admin] auth_failures`, and audited; every change is
audited with its operation and tenant.

Errors are JSON `{"error", "error_description"}` through the app's one funnel
(`errors.public_error`): 400 invalid_request naming the faulty settings key or member, 404 for
an unknown tenant or path, 405 with Allow, 409 for an existing tenant id or issuer, 413, 415
for a body that is not JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from oauthd.actors.tenant_admin import TenantAdmin, key_json, removal_json, tenant_json
from oauthd.audit import audit
from oauthd.errors import InvalidRequest, InvalidToken, TooManyRequests, UnsupportedMediaType
from oauthd.metrics import UNMATCHED, Metrics
from oauthd.oauth.rfc6750_bearer import read_bearer
from oauthd.runtime import Limiter
from oauthd.web.access_log import ROUTE, ASGIApp, RequestLog
from oauthd.web.errors import public_error
from oauthd.web.front import Front
from oauthd.web.responses import NO_STORE, error_response, json_bytes, json_response
from oauthd.web.throttle import client_ip, ip_key

__all__ = ["AdminState", "create_admin_app", "token_digest"]

REALM = "oauthd-admin"


def token_digest(token: str) -> bytes:
    """What is kept of an admin token: its SHA-256 (tokens are long and random)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class AdminState:
    admin: TenantAdmin
    token_digests: tuple[bytes, ...]  # never empty: the settings require a token variable
    auth_failures: Limiter  # per client IP
    trusted_proxies: tuple[str, ...]
    max_body_bytes: int
    metrics: Metrics
    access_log: bool = True

    def accepts(self, token: str | None) -> bool:
        """Is `token` one of the admin tokens? Each digest is compared, in constant time."""
        if not token:
            return False
        given = token_digest(token)
        matches = [hmac.compare_digest(given, digest) for digest in self.token_digests]
        return any(matches)


class AdminUnauthorized(InvalidToken):
    """401 with the challenge of RFC 6750 §3: no error attribute when nothing was presented."""

    def __init__(self, presented: bool) -> None:
        super().__init__("a valid admin token is required" if presented else "admin token missing")
        self.presented = presented

    def headers(self) -> dict[str, str]:
        error = f', error="{self.code}"' if self.presented else ""
        return {"WWW-Authenticate": f'Bearer realm="{REALM}"{error}'}


def request_ip(state: AdminState) -> str:
    forwarded = ",".join(request.headers.getlist("X-Forwarded-For"))
    return client_ip(request.remote_addr, forwarded, state.trusted_proxies)


async def authenticate(state: AdminState) -> None:
    """The bearer token, or 401 (audited); past the failure limit for this IP, 429."""
    ip = request_ip(state)
    attempt = await state.auth_failures.reserve(ip_key(ip))
    if isinstance(attempt, int):
        raise TooManyRequests(
            "too many failed authentications; try again later", retry_after_s=attempt
        )
    with attempt:
        authorization = request.headers.get("Authorization")
        if not state.accepts(read_bearer(authorization, None, None)):
            audit("admin_auth_failed", ip=ip, method=request.method, path=request.path)
            raise AdminUnauthorized(presented=bool(authorization))
        attempt.succeeded()


def check_members(body: dict[str, Any], members: dict[str, type]) -> None:
    for name, value in body.items():
        kind = members.get(name)
        if kind is None:
            raise InvalidRequest(f"unknown member {name!r}; expected {', '.join(members)}")
        if not isinstance(value, kind):
            raise InvalidRequest(f"{name!r} must be a {'boolean' if kind is bool else 'string'}")


async def json_body(members: dict[str, type], required: Iterable[str] = ()) -> dict[str, Any]:
    """The request's JSON object, with only `members` of their types; an empty body is {}."""
    data = await request.get_data(as_text=False)
    if not data and not required:
        return {}
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("the body must be application/json")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    check_members(body, members)
    for name in required:
        if name not in body:
            raise InvalidRequest(f"{name!r} is required")
    return body


def render(document: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_response(json_bytes(document), status, {**NO_STORE, **(headers or {})})


def changed(operation: str, tenant: str, state: AdminState) -> None:
    """The audit line of a change made through the API: what, to which tenant, from where."""
    audit("admin_change", operation=operation, tenant=tenant, ip=request_ip(state))


Route = Callable[..., Awaitable[Response]]


def create_admin_app(state: AdminState) -> ASGIApp:
    app = QuartTrio("oauthd-admin")
    app.config["MAX_CONTENT_LENGTH"] = state.max_body_bytes
    admin = state.admin

    @app.errorhandler(Exception)
    async def respond(error: Exception) -> Response:
        return error_response(public_error(error, request.method, request.path))

    @app.before_request
    async def before() -> None:
        rule = request.url_rule
        request.scope[ROUTE] = f"admin:{rule.rule}" if rule is not None else UNMATCHED  # type: ignore[literal-required]  # Quart types the ASGI scope as a closed TypedDict
        await authenticate(state)

    async def list_tenants() -> Response:
        return render([tenant_json(row) for row in await admin.tenants()])

    async def add_tenant() -> Response:
        body = await json_body({"id": str, "issuer": str, "settings": str}, required=("id",))
        row = await admin.add(body["id"], body.get("issuer", ""), body.get("settings", ""))
        changed("add", row.tenant, state)
        return render(tenant_json(row), 201, {"Location": f"/tenants/{row.tenant}"})

    async def show_tenant(tenant: str) -> Response:
        return render(tenant_json(await admin.show(tenant)))

    async def update_tenant(tenant: str) -> Response:
        body = await json_body({"issuer": str, "settings": str}, required=())
        row = await admin.update(tenant, body.get("issuer"), body.get("settings"))
        changed("update", tenant, state)
        return render(tenant_json(row))

    async def remove_tenant(tenant: str) -> Response:
        directory = await admin.remove(tenant)
        changed("remove", tenant, state)
        return render(removal_json(tenant, directory))

    async def disable_tenant(tenant: str) -> Response:
        await json_body({})
        row = await admin.disable(tenant)
        changed("disable", tenant, state)
        return render(tenant_json(row))

    async def enable_tenant(tenant: str) -> Response:
        await json_body({})
        row = await admin.enable(tenant)
        changed("enable", tenant, state)
        return render(tenant_json(row))

    async def list_keys(tenant: str) -> Response:
        return render([key_json(info) for info in await admin.keys(tenant)])

    async def rotate_keys(tenant: str) -> Response:
        body = await json_body({"immediate": bool})
        infos = await admin.rotate_keys(tenant, immediate=body.get("immediate", False))
        changed("rotate_keys", tenant, state)
        return render([key_json(info) for info in infos])

    routes: tuple[tuple[str, str, Route], ...] = (
        ("/tenants", "GET", list_tenants),
        ("/tenants", "POST", add_tenant),
        ("/tenants/<tenant>", "GET", show_tenant),
        ("/tenants/<tenant>", "PATCH", update_tenant),
        ("/tenants/<tenant>", "DELETE", remove_tenant),
        ("/tenants/<tenant>/disable", "POST", disable_tenant),
        ("/tenants/<tenant>/enable", "POST", enable_tenant),
        ("/tenants/<tenant>/keys", "GET", list_keys),
        ("/tenants/<tenant>/keys/rotate", "POST", rotate_keys),
    )
    for path, method, route in routes:
        app.add_url_rule(path, route.__name__, route, methods=[method])
    asgi: ASGIApp = app  # type: ignore[assignment]  # Quart types ASGI scopes as TypedDicts
    return Front(asgi, RequestLog(state.metrics, enabled=state.access_log))
