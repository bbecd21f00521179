"""A sample protected Quart-Trio API that uses `oauthd.resource` against a real `oauthd serve`:
RFC 9728 metadata and challenges, RFC 6750 errors, RFC 9068 §4 local validation, RFC 7662
introspection. The sample is driven through its ASGI interface (httpx.ASGITransport)."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from quart import request
from quart_trio import QuartTrio

from oauthd.resource import (
    SCOPE_KEY,
    AccessTokenClaims,
    BearerMiddleware,
    Mode,
    ResourceConfig,
    ResourceGuard,
    require_token,
)
from oauthd.settings import ClientSettings, ResourceSettings, Settings
from tests.conftest import ManualClock, Server, running_server
from tests.flow import RESOURCE, Authorization, register, tokens_for
from tests.interop.test_cli import free_port

API_ORIGIN = "https://api.example.test"
API = API_ORIGIN + "/v1"  # the sample's resource identifier (RFC 8707 §2)
PRM_URL = API_ORIGIN + "/.well-known/oauth-protected-resource/v1"  # RFC 9728 §3.1
SCOPES = ("notes:read", "notes:write")
AT_TTL_S = 3600  # TokenSettings.access_token_ttl_s default
REFETCH_S = 10.0  # the guard refetches the JWKS at most once per this
RS_CLIENT_ID = "sample-api"
RS_SECRET_ENV = "OAUTHD_TEST_SAMPLE_API_SECRET"
RS_SECRET = "sample-api-secret-0123456789abcdef"


def sample_app(guard: ResourceGuard) -> QuartTrio:
    """Every /v1 route needs notes:read (config); POST /v1/notes also needs notes:write."""
    app = QuartTrio("sample_api")

    @app.get("/v1/whoami")
    async def whoami() -> dict[str, Any]:
        claims: AccessTokenClaims = request.scope[SCOPE_KEY]  # type: ignore[literal-required]
        return {"sub": claims.sub, "client_id": claims.client_id, "scope": list(claims.scope)}

    @app.post("/v1/notes")
    @require_token(guard, "notes:write")
    async def add_note() -> tuple[dict[str, bool], int]:
        return {"created": True}, 201

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    app.asgi_app = BearerMiddleware(app.asgi_app, guard)  # type: ignore[method-assign]
    return app


@dataclass
class Stack:
    oauthd: Server
    api: httpx.AsyncClient  # the sample app, in-process
    clock: ManualClock
    guard: ResourceGuard
    fetched: list[str]  # every URL the guard asked oauthd for


def oauthd_settings(make_settings: Callable[..., Settings], port: int) -> Settings:
    """oauthd knows the sample API as an audience and, when the introspection work has landed,
    as the resource its `sample-api` client may introspect tokens for."""
    registered_for: dict[str, str] = (
        {"client_id": RS_CLIENT_ID}
        if "client_id" in {f.name for f in dataclasses.fields(ResourceSettings)}
        else {}
    )
    issuer = f"http://127.0.0.1:{port}"
    return make_settings(
        issuer=issuer,
        listen=f"127.0.0.1:{port}",
        resources=(
            ResourceSettings(API, SCOPES, **registered_for),
            ResourceSettings(RESOURCE, ("mcp:tools",)),
        ),
        clients=(
            ClientSettings(
                client_id=RS_CLIENT_ID,
                token_endpoint_auth_method="client_secret_basic",
                client_secret_env=RS_SECRET_ENV,
            ),
        ),
    )


@asynccontextmanager
async def stack(
    make_settings: Callable[..., Settings],
    clock: ManualClock,
    mode: Mode,
    *,
    require_user: bool = False,
) -> AsyncIterator[Stack]:
    settings = oauthd_settings(make_settings, free_port())
    fetched: list[str] = []

    async def record(outgoing: httpx.Request) -> None:
        fetched.append(str(outgoing.url))

    config = ResourceConfig(
        issuer=settings.issuer,
        resource=API,
        mode=mode,
        scopes={"/v1": ("notes:read",)},
        public_paths=("/health",),
        scopes_supported=(*SCOPES, "offline_access"),
        client_id=RS_CLIENT_ID,
        client_secret=RS_SECRET,
        jwks_refetch_interval_s=REFETCH_S,
        now=clock.now,
        require_user=require_user,
    )
    async with (
        running_server(settings, clock) as server,
        httpx.AsyncClient(event_hooks={"request": [record]}) as outbound,
        ResourceGuard(config, http=outbound) as guard,
    ):
        transport = httpx.ASGITransport(app=sample_app(guard))
        async with httpx.AsyncClient(transport=transport, base_url=API_ORIGIN) as api:
            yield Stack(server, api, clock, guard, fetched)


@pytest.fixture
async def local(
    make_settings: Callable[..., Settings], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    monkeypatch.setenv(RS_SECRET_ENV, RS_SECRET)
    async with stack(make_settings, clock, "local") as s:
        yield s


@pytest.fixture
async def introspecting(
    make_settings: Callable[..., Settings], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    monkeypatch.setenv(RS_SECRET_ENV, RS_SECRET)
    async with stack(make_settings, clock, "introspection") as s:
        for path in ("/introspect", "/revoke"):
            if (await s.oauthd.http.post(path)).status_code == 404:
                pytest.skip(f"oauthd has no POST {path} yet (RFC 7662/7009 work in progress)")
        yield s


async def token_for(s: Stack, scope: str = "notes:read notes:write", resource: str = API) -> str:
    """An access token for alice from oauthd, for `resource`; and the client that holds it."""
    client = await register(s.oauthd.http)
    auth = Authorization(client["client_id"], scope=scope, resource=resource)
    token: str = (await tokens_for(s.oauthd.http, auth))["access_token"]
    return token


async def whoami(s: Stack, token: str) -> httpx.Response:
    return await s.api.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})


def challenge(response: httpx.Response) -> dict[str, str]:
    """The attributes of a `WWW-Authenticate: Bearer ...` challenge."""
    scheme, _, rest = response.headers["www-authenticate"].partition(" ")
    assert scheme == "Bearer", response.headers["www-authenticate"]
    return dict(re.findall(r'([a-z_]+)="([^"]*)"', rest))


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert challenge(response)["error"] == "invalid_token"
    assert challenge(response)["resource_metadata"] == PRM_URL


def with_header(token: str, **changes: Any) -> str:
    """The token with its JOSE header edited and its signature kept."""
    header, payload, signature = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    edited = base64.urlsafe_b64encode(json.dumps({**fields, **changes}).encode())
    return f"{edited.rstrip(b'=').decode()}.{payload}.{signature}"


def with_claims(token: str, **changes: Any) -> str:
    """The token with its claims edited and its old signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edited = base64.urlsafe_b64encode(json.dumps({**claims, **changes}).encode())
    return f"{header}.{edited.rstrip(b'=').decode()}.{signature}"


async def test_rfc9728_s3_2_metadata_names_the_configured_resource(local: Stack) -> None:
    """RFC 9728 §3.3: `resource` MUST be the identifier the metadata URL was derived from."""
    response = await local.api.get(PRM_URL)
    assert response.status_code == 200
    assert response.json() == {
        "resource": API,
        "authorization_servers": [local.oauthd.settings.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(SCOPES),  # offline_access is never advertised (MCP)
    }
    assert response.headers["access-control-allow-origin"] == "*"


async def test_rfc9728_s5_1_no_token_is_401_with_resource_metadata_and_no_error(
    local: Stack,
) -> None:
    """OAuth 2.1 §5.3.2: no error attribute when the request carried no credentials."""
    response = await local.api.get("/v1/whoami")
    assert response.status_code == 401
    attributes = challenge(response)
    assert "error" not in attributes
    assert attributes["resource_metadata"] == PRM_URL
    assert response.headers["x-content-type-options"] == "nosniff"
    metadata = await local.api.get(attributes["resource_metadata"])
    assert metadata.status_code == 200
    assert metadata.headers["x-content-type-options"] == "nosniff"
    assert metadata.json()["resource"] == API


async def test_rfc9068_s4_token_for_this_resource_is_accepted(local: Stack) -> None:
    """RFC 9068 §4: a valid token whose aud names this resource reaches the app with its claims."""
    token = await token_for(local)
    response = await whoami(local, token)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == list(SCOPES)
    assert response.json()["sub"]
    created = await local.api.post("/v1/notes", headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.text
    assert (await local.api.get("/health")).status_code == 200


async def test_rfc9068_s4_token_for_another_audience_is_invalid_token(local: Stack) -> None:
    """RFC 9068 §4: the resource MUST reject a token whose aud does not name it."""
    token = await token_for(local, scope="mcp:tools", resource=RESOURCE)
    assert_invalid_token(await whoami(local, token))


async def test_rfc9068_s4_expired_token_is_invalid_token(local: Stack) -> None:
    """RFC 9068 §4: a token past its exp MUST be rejected (clock moved on both servers)."""
    token = await token_for(local)
    assert (await whoami(local, token)).status_code == 200
    local.clock.advance(AT_TTL_S + 1)
    assert_invalid_token(await whoami(local, token))


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: "garbage", id="garbage"),
        pytest.param(lambda t: with_header(t, alg="none"), id="alg-none"),
        pytest.param(lambda t: with_header(t, typ="JWT"), id="not-at+jwt"),
        pytest.param(lambda t: with_claims(t, scope="notes:read admin"), id="edited-claims"),
        pytest.param(lambda t: t[:-4], id="truncated-signature"),
        # RFC 7515 §2: base64url is its alphabet only; skipping other characters reads the
        # same signature out of a different token.
        pytest.param(lambda t: t[:-8] + "!!~~" + t[-8:], id="junk-in-signature"),
        # RFC 8259 §9: nesting past the parser's limit is a malformed token, not a crash.
        pytest.param(lambda t: "W1tb" * 2000 + t[t.index(".") :], id="nested-header"),
    ],
)
async def test_rfc9068_s4_forged_token_is_invalid_token(
    local: Stack, mangle: Callable[[str], str]
) -> None:
    """RFC 9068 §4: the signature and typ MUST be checked; any edit makes the token invalid,
    and a malformed one is invalid_token too."""
    assert_invalid_token(await whoami(local, mangle(await token_for(local))))


async def test_rfc6750_s3_1_missing_scope_is_403_insufficient_scope(local: Stack) -> None:
    """RFC 6750 §3.1: insufficient_scope is 403 and names the scope the request needs."""
    token = await token_for(local, scope="notes:read")
    assert (await whoami(local, token)).status_code == 200
    response = await local.api.post("/v1/notes", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403, response.text
    attributes = challenge(response)
    assert attributes["error"] == "insufficient_scope"
    assert attributes["scope"] == "notes:read notes:write"
    assert attributes["resource_metadata"] == PRM_URL
    assert response.json()["error"] == "insufficient_scope"


async def test_oauth21_s5_1_token_in_query_is_refused(local: Stack) -> None:
    """OAuth 2.1 §5.1: a token in the query string is not a credential; with a header too it is
    a malformed request (RFC 6750 §2)."""
    token = await token_for(local)
    response = await local.api.get("/v1/whoami", params={"access_token": token})
    assert response.status_code == 401
    assert "error" not in challenge(response)
    both = await local.api.get(
        "/v1/whoami", params={"access_token": token}, headers={"Authorization": f"Bearer {token}"}
    )
    assert both.status_code == 400
    assert challenge(both)["error"] == "invalid_request"


async def test_rfc6750_s2_1_plain_asgi_app_gets_the_claims_in_its_scope(local: Stack) -> None:
    """RFC 6750 §2.1: any ASGI app behind the middleware sees only requests with a valid token."""
    seen: list[AccessTokenClaims] = []

    async def plain(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope[SCOPE_KEY])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = httpx.ASGITransport(app=BearerMiddleware(plain, local.guard))
    async with httpx.AsyncClient(transport=transport, base_url=API_ORIGIN) as api:
        assert (await api.get("/anything")).status_code == 401
        assert not seen
        token = await token_for(local)
        response = await api.get("/anything", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 204
        assert seen[0].aud == (API,)


async def test_rfc6750_s3_quart_decorator_alone_guards_a_route(local: Stack) -> None:
    """RFC 6750 §3: without the middleware, `require_token` validates and challenges itself."""
    app = QuartTrio("decorated")

    @app.get("/v1/notes")
    @require_token(local.guard)
    async def notes() -> dict[str, str]:
        claims: AccessTokenClaims = request.scope[SCOPE_KEY]  # type: ignore[literal-required]
        return {"sub": claims.sub}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=API_ORIGIN) as api:
        bare = await api.get("/v1/notes")
        assert bare.status_code == 401
        assert challenge(bare) == {"realm": API, "resource_metadata": PRM_URL}
        token = await token_for(local, scope="notes:write")
        lacking = await api.get("/v1/notes", headers={"Authorization": f"Bearer {token}"})
        assert lacking.status_code == 403  # /v1 needs notes:read (config.scopes)
        assert challenge(lacking)["scope"] == "notes:read"
        token = await token_for(local)
        ok = await api.get("/v1/notes", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200, ok.text


async def test_rfc8725_s3_1_unknown_kids_refetch_the_jwks_at_most_once_per_interval(
    local: Stack,
) -> None:
    """A flood of tokens naming unknown keys costs oauthd at most one JWKS fetch per interval."""
    token = await token_for(local)
    assert (await whoami(local, token)).status_code == 200

    def jwks_fetches() -> int:
        return sum(url.endswith("/.well-known/jwks.json") for url in local.fetched)

    assert jwks_fetches() == 1
    for i in range(20):
        assert_invalid_token(await whoami(local, with_header(token, kid=f"made-up-{i}")))
    assert jwks_fetches() == 1
    local.clock.advance(REFETCH_S + 1)
    for i in range(20):
        assert_invalid_token(await whoami(local, with_header(token, kid=f"again-{i}")))
    assert jwks_fetches() == 2
    assert (await whoami(local, token)).status_code == 200


async def test_rfc7662_s2_2_introspection_accepts_then_refuses_after_revocation(
    introspecting: Stack,
) -> None:
    """RFC 7662 §2.2 / RFC 7009 §2: active tokens pass; once revoked the resource refuses it."""
    s = introspecting
    client = await register(s.oauthd.http)
    auth = Authorization(client["client_id"], scope="notes:read notes:write", resource=API)
    token: str = (await tokens_for(s.oauthd.http, auth))["access_token"]
    response = await whoami(s, token)
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == client["client_id"]
    revoked = await s.oauthd.http.post(
        "/revoke", data={"token": token, "client_id": client["client_id"]}
    )
    assert revoked.status_code == 200, revoked.text
    assert_invalid_token(await whoami(s, token))


async def test_rfc7662_s2_2_introspection_refuses_another_audience(introspecting: Stack) -> None:
    """RFC 9700 §2.3: a token for another resource is not accepted through introspection."""
    token = await token_for(introspecting, scope="mcp:tools", resource=RESOURCE)
    assert_invalid_token(await whoami(introspecting, token))


async def test_rfc7662_s2_2_introspection_refuses_garbage(introspecting: Stack) -> None:
    """RFC 7662 §2.2: anything oauthd does not know is inactive, hence invalid_token."""
    assert_invalid_token(await whoami(introspecting, "not-a-token"))


# --- RFC 9068 §2.2: a client's own token (client_credentials) or a person's --------------------


async def machine_token(s: Stack) -> tuple[str, str]:
    """A client_credentials token for the sample API; (token, the machine's client_id)."""
    registered = await s.oauthd.http.post(
        "/register",
        json={
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
            "scope": "notes:read",
        },
    )
    assert registered.status_code == 201, registered.text
    machine = registered.json()
    response = await s.oauthd.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": API},
        auth=(machine["client_id"], machine["client_secret"]),
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"], machine["client_id"]


@pytest.mark.parametrize("mode", ["local", "introspection"])
async def test_rfc9068_s2_2_client_token_has_the_client_as_subject(
    make_settings: Callable[..., Settings],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    mode: Mode,
) -> None:
    """RFC 9068 §2.2: with no person involved, `sub` is the client's id: that is how an app
    tells a client's own token from a person's (a person's `sub` is never a client id)."""
    monkeypatch.setenv(RS_SECRET_ENV, RS_SECRET)
    async with stack(make_settings, clock, mode) as s:
        token, machine_id = await machine_token(s)
        response = await whoami(s, token)
        assert response.status_code == 200, response.text
        assert response.json()["sub"] == response.json()["client_id"] == machine_id
        person = (await whoami(s, await token_for(s))).json()
        assert person["sub"] != person["client_id"]


@pytest.mark.parametrize("mode", ["local", "introspection"])
async def test_rfc9068_s2_2_require_user_refuses_client_tokens(
    make_settings: Callable[..., Settings],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    mode: Mode,
) -> None:
    """RFC 6750 §3.1 invalid_token: with `require_user`, a token with no person behind it
    (client_credentials) is refused; a person's token still passes."""
    monkeypatch.setenv(RS_SECRET_ENV, RS_SECRET)
    async with stack(make_settings, clock, mode, require_user=True) as s:
        token, _ = await machine_token(s)
        assert_invalid_token(await whoami(s, token))
        assert (await whoami(s, await token_for(s))).status_code == 200
