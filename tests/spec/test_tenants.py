"""Path tenants over HTTP against a real running oauthd (docs/architecture.md "Tenants"): each
tenant is its own issuer (RFC 8414 §2, §3.3: the issuer in metadata is the one it was fetched
for) with its own keys, clients, users and sessions, and nothing one tenant issued works at
another."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

from oauthd.actors import Env, kinds
from oauthd.actors.registry import (
    REGISTRY_POLL_S,
    AddTenant,
    DeleteTenant,
    SetTenantState,
    registry_address,
)
from oauthd.keys import KeyringHolder
from oauthd.runtime import ActorSystem, Command, SystemClock
from oauthd.server import open_backend
from oauthd.settings import Settings
from oauthd.storage.registry import remove_tenant_dir
from tests.conftest import ISSUER, Server, running_server
from tests.flow import ALICE, RESOURCE, Authorization, form_field, query_of, redeem

SETTINGS = f'[[resources]]\nuri = "{RESOURCE}"\nscopes = ["mcp:tools"]\n'
WAIT_S = REGISTRY_POLL_S * 2.5  # every process sees a registry change within REGISTRY_POLL_S
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


@asynccontextmanager
async def registry(settings: Settings) -> AsyncIterator[Callable[[Command[Any]], Any]]:
    """The Registry as another process (the CLI) reaches it: its own actors, the same
    storage (file or database)."""
    async with open_backend(settings, os.environ) as backend, trio.open_nursery() as nursery:
        env = Env(settings, SystemClock(), KeyringHolder(), None, backend=backend)
        system = ActorSystem(settings.actors, kinds(env))
        await nursery.start(system.run)

        async def ask(message: Command[Any]) -> Any:
            return await system.ask(registry_address(), message)

        yield ask
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def two_tenants(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[Server, Callable[[Command[Any]], Any]]]:
    settings = make_settings()
    async with running_server(settings) as server, registry(settings) as ask:
        await ask(AddTenant("a", "", SETTINGS))
        await ask(AddTenant("b", "", SETTINGS))
        yield server, ask


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def prefix_of(tenant: str) -> str:
    """Where a tenant's endpoints are on the client's host: `/t/<id>`, or "" for the tenant
    whose host it is (the root, or a host tenant)."""
    return f"/t/{tenant}" if tenant else ""


async def register(http: httpx.AsyncClient, tenant: str, **metadata: Any) -> dict[str, Any]:
    body = {
        "redirect_uris": ["http://127.0.0.1:5555/cb"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        **metadata,
    }
    response = await http.post(f"{prefix_of(tenant)}/register", json=body)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


async def code_at(http: httpx.AsyncClient, tenant: str, auth: Authorization) -> dict[str, str]:
    """/authorize at a tenant through its own login and consent pages."""
    prefix = prefix_of(tenant)
    response = await http.get(f"{prefix}/authorize", params=auth.params)
    for _ in range(4):
        assert response.status_code in (302, 303), response.text
        location: str = response.headers["location"]
        page_path = urlsplit(location).path
        if page_path in (f"{prefix}/login", f"{prefix}/consent"):
            page = await http.get(location)
            assert page.status_code == 200, page.text
            form = {
                "request": form_field(page.text, "request"),
                "csrf": form_field(page.text, "csrf"),
            }
            if page_path.endswith("/login"):
                form |= {"email": ALICE[0], "password": ALICE[1]}
            else:
                form["decision"] = "allow"
            response = await http.post(page_path, data=form)
        else:
            return query_of(location)
    raise AssertionError("the flow did not reach the client")


async def test_each_tenant_has_its_own_issuer_metadata_and_jwks(
    make_settings: Callable[..., Settings],
) -> None:
    """RFC 8414 §3.3: the metadata's issuer is the tenant's; its endpoints live under it; the
    JWKS of the root, A and B share no key."""
    async with two_tenants(make_settings) as (server, _ask):
        http = server.http
        kids: list[set[str]] = []
        for tenant in ("a", "b"):
            issuer = f"{ISSUER}/t/{tenant}"
            for path in (
                f"/.well-known/oauth-authorization-server/t/{tenant}",
                f"/.well-known/openid-configuration/t/{tenant}",
                f"/t/{tenant}/.well-known/openid-configuration",
            ):
                response = await http.get(path)
                assert response.status_code == 200, path
                assert response.json()["issuer"] == issuer
                assert response.json()["token_endpoint"] == f"{issuer}/token"
            prm = await http.get(f"/.well-known/oauth-protected-resource/t/{tenant}")
            assert prm.json()["authorization_servers"] == [issuer]
            jwks = await http.get(f"/t/{tenant}/.well-known/jwks.json")
            kids.append({k["kid"] for k in jwks.json()["keys"]})
        root = await http.get("/.well-known/jwks.json")
        kids.append({k["kid"] for k in root.json()["keys"]})
        assert all(kids)
        assert not kids[0] & kids[1]
        assert not kids[0] & kids[2]
        assert not kids[1] & kids[2]
        metadata = await http.get("/.well-known/oauth-authorization-server")
        assert metadata.json()["issuer"] == ISSUER  # the default tenant is unchanged
        # one metric series per route template, not per tenant
        metrics = (await http.get("/metrics")).text
        assert "/t/{tenant}/.well-known/jwks.json" in metrics
        assert "/t/a/" not in metrics
        assert "/t/b/" not in metrics


async def test_nothing_tenant_a_issued_works_at_tenant_b(
    make_settings: Callable[..., Settings],
) -> None:
    """A code flow with refresh at A; A's client, code, access token, refresh token, session
    cookie, device code and registration access token are refused at B."""
    async with two_tenants(make_settings) as (server, _ask):
        http = server.http
        client = await register(http, "a")
        client_id = client["client_id"]
        auth = Authorization(client_id, redirect_uri="http://127.0.0.1:5555/cb")
        # the session cookie lives under A's path only
        result = await code_at(http, "a", auth)
        assert result["iss"] == f"{ISSUER}/t/a"
        session = [c for c in http.cookies.jar if "session" in c.name]
        assert session
        assert {c.path for c in session} == {"/t/a/"}
        # A's code is unknown at B (the client is unknown there too)
        at_b = await redeem(http, auth, result["code"], "/t/b/token", resource=RESOURCE)
        assert at_b.status_code in (400, 401)
        assert at_b.json()["error"] in ("invalid_client", "invalid_grant")
        tokens = await redeem(http, auth, result["code"], "/t/a/token", resource=RESOURCE)
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        # A's access token at B's userinfo: another issuer, other keys
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await http.get("/t/b/userinfo", headers=bearer)).status_code == 401
        header, claims = (
            json.loads(b64decode(part)) for part in body["access_token"].split(".")[:2]
        )
        assert claims["iss"] == f"{ISSUER}/t/a"
        b_keys = (await http.get("/t/b/.well-known/jwks.json")).json()["keys"]
        assert header["kid"] not in {k["kid"] for k in b_keys}
        # A's refresh token at B, then at A (rotation)
        refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
        refused = await http.post("/t/b/token", data={**refresh, "client_id": client_id})
        assert refused.status_code in (400, 401)
        rotated = await http.post("/t/a/token", data={**refresh, "client_id": client_id})
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["refresh_token"] != body["refresh_token"]
        # A's client is unknown at B's /authorize: the error stays on B's page
        at_b_authorize = await http.get("/t/b/authorize", params=auth.params)
        assert at_b_authorize.status_code == 400
        # A's session does not sign anyone in at B: B's own client is sent to B's login
        b_client = await register(http, "b")
        b_auth = Authorization(b_client["client_id"], redirect_uri="http://127.0.0.1:5555/cb")
        b_start = await http.get("/t/b/authorize", params=b_auth.params)
        assert b_start.status_code in (302, 303)
        assert urlsplit(b_start.headers["location"]).path == "/t/b/login"
        # A's registration access token manages nothing at B
        manage = {"Authorization": f"Bearer {client['registration_access_token']}"}
        assert (await http.get(f"/t/b/register/{client_id}", headers=manage)).status_code == 401
        assert (await http.get(f"/t/a/register/{client_id}", headers=manage)).status_code == 200
        # A's device code is unknown at B
        device_client = await register(
            http, "a", grant_types=[DEVICE], redirect_uris=[], token_endpoint_auth_method="none"
        )
        started = await http.post(
            "/t/a/device_authorization", data={"client_id": device_client["client_id"]}
        )
        assert started.status_code == 200, started.text
        poll = {"grant_type": DEVICE, "device_code": started.json()["device_code"]}
        at_b_device = await http.post(
            "/t/b/token", data={**poll, "client_id": device_client["client_id"]}
        )
        assert at_b_device.status_code in (400, 401)
        assert at_b_device.json()["error"] in ("invalid_client", "invalid_grant")
        at_a_device = await http.post(
            "/t/a/token", data={**poll, "client_id": device_client["client_id"]}
        )
        assert at_a_device.json()["error"] == "authorization_pending"


async def test_an_unknown_tenant_is_a_404_that_spawns_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    """No actor, no directory, for a tenant the registry does not hold or an id no tenant
    can have."""
    settings = make_settings()
    async with running_server(settings) as server:
        for path in (
            "/t/nope/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server/t/nope",
            "/t/nope/token",
            "/t/NOPE/authorize",
            "/t/../default/token",
        ):
            response = await server.http.get(path)
            assert response.status_code == 404, path
        assert not (settings.data_dir / "nope").exists()
        assert sorted(p.name for p in settings.data_dir.iterdir()) == ["default"]


async def test_an_unknown_tenants_404_is_readable_where_a_browser_client_asks(
    make_settings: Callable[..., Settings],
) -> None:
    """CORS-1, CORS-2, CORS-4: the router's 404 for a tenant that does not exist carries the
    CORS headers of the path: the documents' at its well-known URLs, the API's at its token
    endpoint, none at its pages."""
    async with running_server(make_settings()) as server:
        origin = {"Origin": "https://inspector.example"}
        expected = {
            "/.well-known/oauth-authorization-server/t/nope": "GET, OPTIONS",
            "/t/nope/.well-known/openid-configuration": "GET, OPTIONS",
            "/t/nope/token": "GET, POST, PUT, DELETE, OPTIONS",
            "/t/nope/authorize": None,
        }
        for path, methods in expected.items():
            response = await server.http.get(path, headers=origin)
            assert response.status_code == 404, path
            assert response.headers.get("access-control-allow-methods") == methods, path
            assert "access-control-allow-credentials" not in response.headers


async def test_disable_answers_403_and_enable_serves_the_kept_data(
    make_settings: Callable[..., Settings],
) -> None:
    """A disabled tenant answers 403 temporarily_unavailable everywhere, keeping its data; once
    enabled, its clients work again."""
    async with two_tenants(make_settings) as (server, ask):
        http = server.http
        client = await register(http, "a")
        await ask(SetTenantState("a", "disabled"))
        await trio.sleep(WAIT_S)
        for path in ("/t/a/.well-known/jwks.json", "/.well-known/oauth-authorization-server/t/a"):
            response = await http.get(path)
            assert response.status_code == 403
            assert response.json()["error"] == "temporarily_unavailable"
        page = await http.get("/t/a/authorize", headers={"Accept": "text/html"})
        assert page.status_code == 403
        assert page.headers["content-type"].startswith("text/html")
        assert (await http.get("/t/b/.well-known/jwks.json")).status_code == 200
        await ask(SetTenantState("a", "active"))
        await trio.sleep(WAIT_S)
        auth = Authorization(client["client_id"], redirect_uri="http://127.0.0.1:5555/cb")
        response = await http.get("/t/a/authorize", params=auth.params)
        assert response.status_code in (302, 303), response.text


async def test_remove_stops_the_tenant_and_its_directory_goes(
    make_settings: Callable[..., Settings],
) -> None:
    """Removed: the server stops its actors and answers 404; its directory is deleted and no
    request brings it back."""
    settings = make_settings()
    async with two_tenants(make_settings) as (server, ask):
        http = server.http
        await register(http, "a")
        directory = settings.data_dir / "a"
        assert directory.is_dir()
        await ask(SetTenantState("a", "removing"))  # as `oauthd tenants remove` does
        await trio.sleep(WAIT_S)
        assert (await http.get("/t/a/.well-known/jwks.json")).status_code == 404
        remove_tenant_dir(directory)
        await ask(DeleteTenant("a"))
        assert (await http.get("/t/a/token")).status_code == 404
        assert not directory.exists()
        assert (await http.get("/t/b/.well-known/jwks.json")).status_code == 200


async def test_a_tenant_whose_secret_is_not_set_is_unavailable_not_an_error(
    make_settings: Callable[..., Settings],
) -> None:
    """Settings naming a variable this process lacks: 403 temporarily_unavailable (and a log
    line), never a 500; other tenants are served."""
    settings = make_settings()
    text = (
        '[[clients]]\nclient_id = "svc"\nclient_secret_env = "TEST_UNSET_TENANT_SECRET"\n'
        'grant_types = ["client_credentials"]\n'
    )
    async with running_server(settings) as server, registry(settings) as ask:
        await ask(AddTenant("a", "", text))
        await ask(AddTenant("b", "", SETTINGS))
        response = await server.http.get("/t/a/.well-known/jwks.json")
        assert response.status_code == 403
        assert response.json()["error"] == "temporarily_unavailable"
        assert (await server.http.get("/t/b/.well-known/jwks.json")).status_code == 200
