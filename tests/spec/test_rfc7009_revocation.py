"""Token revocation (RFC 7009) at POST /revoke: client authentication as at /token, only the
client's own tokens, a privacy-preserving 200 for everything else, and what each kind of token
takes with it."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from oauthd.settings import ClientSettings, ResourceSettings, Settings
from tests.conftest import ManualClock, Server, running_server
from tests.flow import LOOPBACK, RESOURCE, Authorization, authorize_code, register, tokens_for

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

OTHER_RESOURCE = "https://other.example.com/mcp"
CONF_ID, CONF_ENV, CONF_SECRET = "conf", "OAUTHD_TEST_CONF_SECRET", "conf-secret-0123456789"
RS_ID, RS_ENV, RS_SECRET = "mcp-rs", "OAUTHD_TEST_RS_SECRET", "rs-secret-0123456789"
TTL_S = 3600


def lifecycle_settings(make_settings: Callable[..., Settings]) -> Settings:
    """Two resources, the first with RS_ID as its resource server; CONF_ID is a confidential
    client (client_secret_basic) and RS_ID one with no grants of its own."""
    clients = (
        ClientSettings(
            CONF_ID,
            (LOOPBACK,),
            "client_secret_basic",
            first_party=True,
            client_secret_env=CONF_ENV,
        ),
        ClientSettings(RS_ID, (), "client_secret_basic", grant_types=(), client_secret_env=RS_ENV),
    )
    return make_settings(
        resources=(
            ResourceSettings(RESOURCE, ("mcp:tools",), client_id=RS_ID),
            ResourceSettings(OTHER_RESOURCE, ("mcp:tools",)),
        ),
        clients=clients,
    )


@pytest.fixture
async def server(
    make_settings: Callable[..., Settings], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Server]:
    monkeypatch.setenv(CONF_ENV, CONF_SECRET)
    monkeypatch.setenv(RS_ENV, RS_SECRET)
    async with running_server(lifecycle_settings(make_settings), clock) as s:
        yield s


# --- helpers shared with test_rfc7662_introspection -------------------------------------------


@dataclass(frozen=True)
class Caller:
    """A client as it presents itself at /token, /revoke and /introspect: `client_id` alone
    (a public client, auth method none) or client_secret_basic."""

    client_id: str
    secret: str | None = None

    def post(self, http: httpx.AsyncClient, path: str, data: dict[str, Any]) -> Any:
        if self.secret is None:
            return http.post(path, data={**data, "client_id": self.client_id})
        return http.post(path, data=data, auth=(self.client_id, self.secret))


CONF = Caller(CONF_ID, CONF_SECRET)


def as_caller(client: str | Caller) -> Caller:
    return client if isinstance(client, Caller) else Caller(client)


async def public_tokens(server: Server, **fields: Any) -> tuple[str, dict[str, Any]]:
    """A freshly registered public client and a token response for it."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], **fields)
    return auth.client_id, await tokens_for(server.http, auth)


async def secret_tokens(server: Server, **fields: Any) -> tuple[Caller, dict[str, Any]]:
    """A freshly registered confidential client (client_secret_basic) and a token response."""
    client = await register(server.http, token_endpoint_auth_method="client_secret_basic")
    caller = Caller(client["client_id"], client["client_secret"])
    return caller, await code_tokens(server, caller, Authorization(caller.client_id, **fields))


async def confidential_tokens(server: Server, **fields: Any) -> dict[str, Any]:
    return await code_tokens(server, CONF, Authorization(CONF_ID, **fields))


async def code_tokens(server: Server, caller: Caller, auth: Authorization) -> dict[str, Any]:
    """The code flow for `auth`, the code redeemed by an authenticating `caller`."""
    code = (await authorize_code(server.http, auth))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": auth.verifier,
        "redirect_uri": auth.redirect_uri,
    }
    if auth.resource:
        form["resource"] = auth.resource
    response = await caller.post(server.http, "/token", form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def revoke(
    http: httpx.AsyncClient, client: str | Caller, token: str, **extra: Any
) -> httpx.Response:
    response: httpx.Response = await as_caller(client).post(
        http, "/revoke", {"token": token, **extra}
    )
    return response


async def introspect(http: httpx.AsyncClient, caller: Caller, token: str, **extra: Any) -> Any:
    """The introspection answer for an authenticated caller."""
    response = await caller.post(http, "/introspect", {"token": token, **extra})
    assert response.status_code == 200, response.text
    return response.json()


async def refresh(http: httpx.AsyncClient, client: str | Caller, token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    response: httpx.Response = await as_caller(client).post(http, "/token", data)
    return response


async def userinfo_status(http: httpx.AsyncClient, access_token: str) -> int:
    response = await http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code


def assert_error(response: httpx.Response, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == code


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def other_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key the server has never seen."""
    return ec.generate_private_key(ec.SECP256R1())


def server_key(settings: Settings, token: str) -> tuple[str, Any]:
    """The server's own private key that signed `token` (read from its storage): to mint
    tokens that are validly signed but otherwise wrong."""
    kid = jwt.get_unverified_header(token)["kid"]
    if settings.storage.backend == "postgres":
        with psycopg.connect(os.environ[settings.storage.dsn_env]) as pg:
            found = pg.execute(
                "SELECT private_jwk FROM keys WHERE tenant = 'default' AND kid = %s", (kid,)
            ).fetchone()
    else:
        with closing(sqlite3.connect(settings.data_dir / "default" / "keys.sqlite")) as conn:
            found = conn.execute("SELECT private_jwk FROM keys WHERE kid = ?", (kid,)).fetchone()
    assert found is not None
    return kid, jwt.PyJWK.from_json(found[0]).key


# --- §2.1: revoking a refresh token ends the grant ----------------------------------------------


async def test_s2_1_revoked_refresh_token_and_its_grant_are_dead(server: Server) -> None:
    """REVOKE-1, REVOKE-6, REFRESH-8: revoking an RT answers 200; it no longer refreshes or
    introspects, and the access tokens of its grant are inactive and refused by /userinfo."""
    client, tokens = await secret_tokens(server, resource=None)
    response = await revoke(
        server.http, client, tokens["refresh_token"], token_type_hint="refresh_token"
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert_error(await refresh(server.http, client, tokens["refresh_token"]), "invalid_grant")
    assert await introspect(server.http, client, tokens["refresh_token"]) == {"active": False}
    assert await introspect(server.http, client, tokens["access_token"]) == {"active": False}
    assert await userinfo_status(server.http, tokens["access_token"]) == 401


async def test_s2_1_revoking_a_rotated_refresh_token_ends_the_whole_family(server: Server) -> None:
    """REVOKE-6: every refresh token of the grant, and every access token issued from it."""
    client, first = await secret_tokens(server)
    response = await refresh(server.http, client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert (await revoke(server.http, client, second["refresh_token"])).status_code == 200
    for token in (first["access_token"], second["access_token"], second["refresh_token"]):
        assert await introspect(server.http, client, token) == {"active": False}


@pytest.mark.parametrize("hint", ["access_token", "foo", "refresh_token", None])
async def test_s2_1_hint_is_not_trusted(server: Server, hint: str | None) -> None:
    """REVOKE-5: an RT sent with the wrong hint, or an unknown one, is still found and revoked."""
    client_id, tokens = await public_tokens(server)
    extra = {} if hint is None else {"token_type_hint": hint}
    response = await revoke(server.http, client_id, tokens["refresh_token"], **extra)
    assert response.status_code == 200, response.text
    assert_error(await refresh(server.http, client_id, tokens["refresh_token"]), "invalid_grant")


# --- §2.1: revoking an access token -------------------------------------------------------------


async def test_s2_1_revoked_access_token_is_inactive_and_its_refresh_token_survives(
    server: Server,
) -> None:
    """REVOKE-6: a revoked JWT access token introspects inactive and /userinfo refuses it at
    once; the refresh token is left alive (RFC 7009 §2.1 MAY, documented in rfc7009_revocation)."""
    client, tokens = await secret_tokens(server, resource=None)
    assert await userinfo_status(server.http, tokens["access_token"]) == 200
    response = await revoke(
        server.http, client, tokens["access_token"], token_type_hint="access_token"
    )
    assert response.status_code == 200
    assert await introspect(server.http, client, tokens["access_token"]) == {"active": False}
    assert await userinfo_status(server.http, tokens["access_token"]) == 401
    assert (await refresh(server.http, client, tokens["refresh_token"])).status_code == 200


async def test_s2_1_refresh_token_sent_with_access_token_hint_for_an_access_token(
    server: Server,
) -> None:
    """REVOKE-5: an access token sent with hint refresh_token is still found and revoked."""
    client, tokens = await secret_tokens(server)
    extra = {"token_type_hint": "refresh_token"}
    assert (await revoke(server.http, client, tokens["access_token"], **extra)).status_code == 200
    assert await introspect(server.http, client, tokens["access_token"]) == {"active": False}


# --- §2.1: client authentication --------------------------------------------------------------


async def test_s2_1_confidential_client_revokes_with_its_secret(server: Server) -> None:
    """REVOKE-2: a confidential client authenticates as at /token (client_secret_basic)."""
    tokens = await confidential_tokens(server)
    response = await server.http.post(
        "/revoke", data={"token": tokens["refresh_token"]}, auth=(CONF_ID, CONF_SECRET)
    )
    assert response.status_code == 200, response.text
    active = await server.http.post(
        "/introspect", data={"token": tokens["access_token"]}, auth=(CONF_ID, CONF_SECRET)
    )
    assert active.json() == {"active": False}


@pytest.mark.parametrize(
    ("auth", "data"),
    [
        ((CONF_ID, "wrong-secret"), {}),
        (None, {"client_id": CONF_ID}),
        (None, {}),
        (None, {"client_id": CONF_ID, "client_secret": CONF_SECRET}),  # not its method
        (("nobody", "secret"), {}),
    ],
)
async def test_s2_2_1_bad_client_credentials_are_invalid_client(
    server: Server, auth: tuple[str, str] | None, data: dict[str, str]
) -> None:
    """REVOKE-2: wrong, missing or wrongly presented credentials -> 401 invalid_client, with
    WWW-Authenticate; the token is not revoked."""
    tokens = await confidential_tokens(server)
    response = await server.http.post(
        "/revoke", data={"token": tokens["refresh_token"], **data}, auth=auth
    )
    assert_error(response, "invalid_client", 401)
    assert response.headers["www-authenticate"].startswith("Basic ")
    still = await server.http.post(
        "/introspect", data={"token": tokens["refresh_token"]}, auth=(CONF_ID, CONF_SECRET)
    )
    assert still.json()["active"] is True


async def test_s2_1_public_client_authenticates_by_client_id(server: Server) -> None:
    """REVOKE-2: a public client identifies itself with client_id alone -> 200."""
    client_id, tokens = await public_tokens(server)
    assert (await revoke(server.http, client_id, tokens["access_token"])).status_code == 200


# --- §2.2: invalid and foreign tokens answer 200 and change nothing ------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "rt_0123456789abcdef0123_" + "A" * 43,  # well-formed handle, no such shard
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "x" * 5000,
    ],
)
async def test_s2_2_unknown_or_garbage_token_answers_200(server: Server, token: str) -> None:
    """REVOKE-3: an invalid token -> 200, so the endpoint cannot be used to probe tokens."""
    client_id, tokens = await public_tokens(server)
    assert (await revoke(server.http, client_id, token)).status_code == 200
    assert (await refresh(server.http, client_id, tokens["refresh_token"])).status_code == 200


async def test_s2_2_already_revoked_token_answers_200(server: Server) -> None:
    """REVOKE-3: revoking twice -> 200 both times."""
    client_id, tokens = await public_tokens(server)
    for _ in range(2):
        assert (await revoke(server.http, client_id, tokens["refresh_token"])).status_code == 200
        assert (await revoke(server.http, client_id, tokens["access_token"])).status_code == 200


async def test_s2_2_expired_access_token_answers_200(server: Server, clock: ManualClock) -> None:
    """REVOKE-3: an expired access token -> 200; the refresh token is untouched."""
    client_id, tokens = await public_tokens(server)
    clock.advance(TTL_S + 1)
    assert (await revoke(server.http, client_id, tokens["access_token"])).status_code == 200
    assert (await refresh(server.http, client_id, tokens["refresh_token"])).status_code == 200


async def test_s2_1_another_clients_tokens_are_not_revoked(server: Server) -> None:
    """REVOKE-4: client B submitting client A's RT or AT gets the privacy-preserving 200 and
    revokes nothing: A's tokens still introspect active and still refresh."""
    a, a_tokens = await secret_tokens(server)
    b_id, _ = await public_tokens(server)  # a public client may revoke, its own tokens only
    for token in (a_tokens["refresh_token"], a_tokens["access_token"]):
        assert (await revoke(server.http, b_id, token)).status_code == 200
    assert (await introspect(server.http, a, a_tokens["access_token"]))["active"] is True
    assert (await introspect(server.http, a, a_tokens["refresh_token"]))["active"] is True
    assert (await refresh(server.http, a, a_tokens["refresh_token"])).status_code == 200


async def test_s2_1_forged_access_token_revokes_nothing(server: Server) -> None:
    """REVOKE-4: a JWT naming A's jti and client_id but signed by another key is not A's
    token: 200, and the real one stays active."""
    client, tokens = await secret_tokens(server)
    claims = claims_of(tokens["access_token"])
    header = jwt.get_unverified_header(tokens["access_token"])
    forged = jwt.encode(claims, other_key(), algorithm="ES256", headers=header)
    assert (await revoke(server.http, client, forged)).status_code == 200
    assert (await introspect(server.http, client, tokens["access_token"]))["active"] is True


# --- §2.1: request errors ----------------------------------------------------------------------


async def test_s2_1_missing_token_is_invalid_request(server: Server) -> None:
    """REVOKE-7: no token parameter -> 400 invalid_request."""
    client_id, _ = await public_tokens(server)
    response = await server.http.post("/revoke", data={"client_id": client_id})
    assert_error(response, "invalid_request")


async def test_s2_1_repeated_token_is_invalid_request(server: Server) -> None:
    """REVOKE-7: token sent twice -> 400 invalid_request."""
    client_id, tokens = await public_tokens(server)
    body = [("token", tokens["refresh_token"]), ("token", "x"), ("client_id", client_id)]
    response = await server.http.post(
        "/revoke",
        content=httpx.QueryParams(body).__str__(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(response, "invalid_request")
    assert (await refresh(server.http, client_id, tokens["refresh_token"])).status_code == 200


async def test_s2_1_json_body_is_invalid_request(server: Server) -> None:
    """REVOKE-7: a JSON body -> 400 invalid_request (the request is a form, §2.1)."""
    client_id, tokens = await public_tokens(server)
    response = await server.http.post(
        "/revoke", json={"token": tokens["refresh_token"], "client_id": client_id}
    )
    assert_error(response, "invalid_request")


async def test_s2_1_token_in_the_query_is_invalid_request(server: Server) -> None:
    """REVOKE-7 (OAuth 2.1 §2.4.1): the token in the URI -> 400 invalid_request."""
    client_id, tokens = await public_tokens(server)
    response = await server.http.post(
        "/revoke", params={"token": tokens["refresh_token"]}, data={"client_id": client_id}
    )
    assert_error(response, "invalid_request")


async def test_s2_1_get_is_method_not_allowed(server: Server) -> None:
    """REVOKE-7: GET /revoke -> 405 with Allow."""
    response = await server.http.get("/revoke")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    assert response.headers["content-type"].startswith("application/json")


# --- RFC 8414 §2 and CORS ----------------------------------------------------------------------


async def test_rfc8414_s2_metadata_advertises_revocation(server: Server) -> None:
    """DISC-9: revocation_endpoint and its auth methods, the same as the token endpoint's."""
    doc = (await server.http.get("/.well-known/oauth-authorization-server")).json()
    assert doc["revocation_endpoint"] == server.settings.issuer + "/revoke"
    assert (
        doc["revocation_endpoint_auth_methods_supported"]
        == doc["token_endpoint_auth_methods_supported"]
    )


async def test_s5_cors_preflight_and_response_without_credentials(server: Server) -> None:
    """CORS-2, CORS-3: preflight allows POST with authorization and content-type; the POST
    carries Access-Control-Allow-Origin and never Allow-Credentials."""
    preflight = await server.http.options(
        "/revoke",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert 200 <= preflight.status_code < 300
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in preflight.headers
    client_id, tokens = await public_tokens(server)
    response = await server.http.post(
        "/revoke",
        data={"token": tokens["access_token"], "client_id": client_id},
        headers={"Origin": "https://app.example"},
    )
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
