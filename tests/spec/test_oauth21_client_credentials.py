"""OAuth 2.1 §4.2: the client credentials grant, for confidential clients only
(TOKEN-4, TOKEN-18, REG-10; RFC 9068 §2.2; RFC 8707 §2), and for self-registered ones only
when the operator allows it (`registration.allow_client_credentials`)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
import trio

from oauthd.settings import RegistrationSettings, Settings
from tests.conftest import ISSUER, Server, running_server
from tests.flow import RESOURCE, register

ALLOWED = RegistrationSettings(allow_client_credentials=True)  # as in tests/conftest.py
DEFAULT = RegistrationSettings()


def basic(client: dict[str, Any]) -> dict[str, str]:
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def register_machine(http: httpx.AsyncClient, scope: str = "mcp:tools") -> Any:
    """POST /register for a confidential client with client_credentials alone."""
    return http.post(
        "/register",
        json={
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
            "scope": scope,
            "client_name": "a machine",
        },
    )


async def machine(http: httpx.AsyncClient, scope: str = "mcp:tools") -> dict[str, Any]:
    """A confidential client registered for client_credentials alone."""
    response = await register_machine(http, scope)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert "client_secret" in body
    return body


async def grant(
    http: httpx.AsyncClient, client: dict[str, Any], **form: str | list[str]
) -> httpx.Response:
    return await http.post(
        "/token", data={"grant_type": "client_credentials", **form}, headers=basic(client)
    )


async def verified(server: Server, access_token: str, audience: str) -> dict[str, Any]:
    """The token's claims, its signature checked against the published JWKS."""
    jwks = jwt.PyJWKClient(f"{server.base_url}/.well-known/jwks.json")
    key = await trio.to_thread.run_sync(jwks.get_signing_key_from_jwt, access_token)
    assert jwt.get_unverified_header(access_token)["typ"] == "at+jwt"
    claims: dict[str, Any] = jwt.decode(
        access_token,
        key.key,
        algorithms=["ES256", "RS256", "EdDSA"],
        audience=audience,
        issuer=ISSUER,
    )
    return claims


def assert_error(response: httpx.Response, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert response.headers["cache-control"] == "no-store"


async def test_s4_2_confidential_client_gets_a_token_about_itself(server: Server) -> None:
    """TOKEN-18, RFC 9068 §2.2: 200, sub = client_id, no refresh_token, scope and aud right."""
    client = await machine(server.http)
    response = await grant(server.http, client, scope="mcp:tools", resource=RESOURCE)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "mcp:tools"
    assert "refresh_token" not in body
    assert "id_token" not in body
    claims = await verified(server, body["access_token"], RESOURCE)
    assert claims["sub"] == claims["client_id"] == client["client_id"]
    assert claims["aud"] == RESOURCE
    assert claims["scope"] == "mcp:tools"
    assert claims["exp"] - claims["iat"] == body["expires_in"]


async def test_s4_2_defaults_are_registered_scope_and_issuer_audience(server: Server) -> None:
    """TOKEN-18, RFC 8707 §2: without scope or resource: the registered scope, aud = issuer."""
    client = await machine(server.http)
    response = await grant(server.http, client)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "mcp:tools"
    claims = await verified(server, response.json()["access_token"], ISSUER)
    assert claims["aud"] == ISSUER


async def test_s4_2_client_secret_post_works_too(server: Server) -> None:
    """TOKEN-18: a client_secret_post client -> 200."""
    response = await server.http.post(
        "/register",
        json={
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": ["client_credentials"],
            "scope": "mcp:tools",
        },
    )
    client = response.json()
    form = {
        "grant_type": "client_credentials",
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }
    assert (await server.http.post("/token", data=form)).status_code == 200


async def test_s4_2_wrong_secret_is_invalid_client(server: Server) -> None:
    """TOKEN-8: a wrong secret -> 401 invalid_client."""
    client = await machine(server.http)
    response = await grant(server.http, {**client, "client_secret": "wrong"})
    assert_error(response, "invalid_client", 401)


async def test_s4_2_public_client_is_unauthorized_client(server: Server) -> None:
    """TOKEN-4, OAuth 2.1 §4.2: a public client asking client_credentials -> unauthorized_client."""
    client = await register(server.http)
    form = {"grant_type": "client_credentials", "client_id": client["client_id"]}
    assert_error(await server.http.post("/token", data=form), "unauthorized_client")


async def test_s4_2_client_not_registered_for_the_grant_is_unauthorized_client(
    server: Server,
) -> None:
    """TOKEN-4, OAuth 2.1 §3.2.4: grant not in the client's grant_types -> unauthorized_client."""
    response = await server.http.post(
        "/register",
        json={"redirect_uris": ["http://127.0.0.1/cb"], "scope": "mcp:tools"},
    )
    client = response.json()
    assert_error(await grant(server.http, client), "unauthorized_client")


async def test_rfc7591_s2_public_client_cannot_register_client_credentials(
    server: Server,
) -> None:
    """REG-10: client_credentials with auth method none -> invalid_client_metadata."""
    response = await server.http.post(
        "/register",
        json={"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]},
    )
    assert_error(response, "invalid_client_metadata")


async def test_rfc7591_s2_client_credentials_alone_needs_no_redirect(server: Server) -> None:
    """REG-10: a client_credentials-only client registers without redirect_uris or code."""
    client = await machine(server.http)
    assert client["grant_types"] == ["client_credentials"]
    assert client["response_types"] == []


@pytest.mark.parametrize(
    "scope",
    ["mcp:admin", "openid", "mcp:tools unknown-scope"],
)
async def test_s3_2_4_scope_beyond_registration_is_invalid_scope(
    server: Server, scope: str
) -> None:
    """TOKEN-18, OAuth 2.1 §3.2.4: unregistered, unknown or person scopes -> invalid_scope."""
    client = await machine(server.http)
    assert_error(await grant(server.http, client, scope=scope), "invalid_scope")


async def test_s3_2_4_client_without_registered_scope_gets_none_asked(server: Server) -> None:
    """OAuth 2.1 §3.2.4: a client that registered no scope asking one -> invalid_scope."""
    client = await machine(server.http, scope="")
    assert_error(await grant(server.http, client, scope="mcp:tools"), "invalid_scope")
    response = await grant(server.http, client)
    assert response.status_code == 200
    assert response.json()["scope"] == ""


@pytest.mark.parametrize(
    "resource",
    [
        ["https://elsewhere.example/mcp"],
        ["not a uri"],
        [RESOURCE, "https://other.example/"],
        [ISSUER],
        [ISSUER + "/userinfo"],
    ],
)
async def test_rfc8707_s2_bad_resource_is_invalid_target(
    server: Server, resource: list[str]
) -> None:
    """RFC 8707 §2: unknown resource, not a URI, two audiences, or /userinfo's identifiers
    (RFC 9728 §3.3: for openid only, which a client alone never gets) -> invalid_target."""
    client = await machine(server.http)
    assert_error(await grant(server.http, client, resource=resource), "invalid_target")


# --- self-registered clients: only when the operator allows it ---------------------------------


async def test_rfc7591_s2_self_registered_client_credentials_refused_by_default(
    make_settings: Callable[..., Settings],
) -> None:
    """RFC 7591 §2 (the server may refuse grant types), RFC 9068 §2.2: with open registration
    anyone could mint resource tokens with no person behind them, so by default a
    self-registered client cannot register client_credentials -> invalid_client_metadata."""
    async with running_server(make_settings(registration=DEFAULT)) as server:
        response = await register_machine(server.http)
        assert_error(response, "invalid_client_metadata")
        assert "registration.allow_client_credentials" in response.json()["error_description"]


async def test_s3_2_4_self_registered_client_is_unauthorized_client_once_disallowed(
    make_settings: Callable[..., Settings],
) -> None:
    """TOKEN-4 (OAuth 2.1 §3.2.4 unauthorized_client): a client that registered itself while
    it was allowed gets no client_credentials token once the operator turns it off."""
    async with running_server(make_settings(registration=ALLOWED)) as allowed:
        client = await machine(allowed.http)
        assert (await grant(allowed.http, client, scope="mcp:tools")).status_code == 200
    async with running_server(make_settings(registration=DEFAULT)) as server:
        response = await grant(server.http, client, scope="mcp:tools", resource=RESOURCE)
        assert_error(response, "unauthorized_client")


async def test_rfc8414_s2_grant_is_advertised(server: Server) -> None:
    """DISC-10 analogue: grant_types_supported lists client_credentials."""
    metadata = (await server.http.get("/.well-known/oauth-authorization-server")).json()
    assert "client_credentials" in metadata["grant_types_supported"]
