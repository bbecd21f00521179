"""Redeeming an authorization code at the token endpoint (OAuth 2.1 §4.1.3, §7.5; RFC 7636 §4.6;
RFC 8707 §2.2): single use, binding to client, redirect URI, PKCE verifier and resource."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest

from oauthd.settings import ResourceSettings, Settings
from tests.conftest import ManualClock, Server, running_server
from tests.flow import LOOPBACK, RESOURCE, Authorization, authorize_code, pkce, redeem, register

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

OTHER_RESOURCE = "https://other.example.com/mcp"
CODE_TTL_S = 60  # the default (TokenSettings.code_ttl_s)


@pytest.fixture
async def server(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> AsyncIterator[Server]:
    resources = (
        ResourceSettings(RESOURCE, ("mcp:tools",)),
        ResourceSettings(OTHER_RESOURCE, ("mcp:tools",)),
    )
    async with running_server(make_settings(resources=resources), clock) as s:
        yield s


async def post_token(http: httpx.AsyncClient, **data: Any) -> httpx.Response:
    """A token request with exactly these parameters (None values are left out)."""
    return await http.post("/token", data={k: v for k, v in data.items() if v is not None})


def assert_error(response: httpx.Response, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == code


async def refresh(http: httpx.AsyncClient, client_id: str, token: str) -> httpx.Response:
    return await post_token(
        http, grant_type="refresh_token", refresh_token=token, client_id=client_id
    )


async def userinfo(http: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})


async def code_for(server: Server, **fields: Any) -> tuple[Authorization, str]:
    """A fresh public client and a code issued to it."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], **fields)
    result = await authorize_code(server.http, auth)
    return auth, result["code"]


# --- CODE-1/2/3: single use, and what a replay does ---------------------------------------------


async def test_s4_1_3_code_is_single_use(server: Server) -> None:
    """CODE-1: a code redeems once; the same valid request again is 400 invalid_grant."""
    auth, code = await code_for(server)
    first = await redeem(server.http, auth, code)
    assert first.status_code == 200, first.text
    assert_error(await redeem(server.http, auth, code), "invalid_grant")


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda code: "garbage", id="random-word"),
        pytest.param(lambda code: code[:-1], id="truncated"),
        pytest.param(lambda code: code[:-1] + ("A" if code[-1] != "A" else "B"), id="flipped"),
        pytest.param(
            lambda code: code.rsplit("_", 1)[0] + "_" + secrets.token_urlsafe(32),
            id="other-instance",
        ),
        pytest.param(
            lambda code: "ac_" + "0" * 20 + "_" + secrets.token_urlsafe(32), id="no-shard"
        ),
        pytest.param(lambda code: code * 40, id="huge"),
        pytest.param(lambda code: 'ac_é"\\_' + code, id="non-ascii"),
        pytest.param(lambda code: "eyJhbGciOiJub25lIn0.e30.", id="jwt-shaped"),
    ],
)
async def test_s4_1_3_unknown_code_is_invalid_grant_never_500(
    server: Server, mangle: Callable[[str], str]
) -> None:
    """CODE-1: a random, truncated or other-instance code is 400 invalid_grant, never 500."""
    auth, code = await code_for(server)
    assert_error(await redeem(server.http, auth, mangle(code)), "invalid_grant")
    # The real code was not touched by the failed attempt.
    assert (await redeem(server.http, auth, code)).status_code == 200


async def test_s4_1_3_replay_revokes_tokens_from_first_redemption(server: Server) -> None:
    """CODE-2: after a replayed code, the first redemption's RT and AT are no longer active."""
    auth, code = await code_for(server, resource=None)
    tokens = (await redeem(server.http, auth, code)).json()
    assert (await userinfo(server.http, tokens["access_token"])).status_code == 200
    assert_error(await redeem(server.http, auth, code), "invalid_grant")
    assert_error(
        await refresh(server.http, auth.client_id, tokens["refresh_token"]), "invalid_grant"
    )
    info = await userinfo(server.http, tokens["access_token"])
    assert info.status_code == 401
    assert 'error="invalid_token"' in info.headers["www-authenticate"]


async def test_s4_1_3_replay_revokes_tokens_refreshed_since(server: Server) -> None:
    """CODE-2: the replay revokes the whole grant, including tokens refreshed from it since."""
    auth, code = await code_for(server, resource=None)
    tokens = (await redeem(server.http, auth, code)).json()
    rotated = (await refresh(server.http, auth.client_id, tokens["refresh_token"])).json()
    assert_error(await redeem(server.http, auth, code), "invalid_grant")
    assert_error(
        await refresh(server.http, auth.client_id, rotated["refresh_token"]), "invalid_grant"
    )
    assert (await userinfo(server.http, rotated["access_token"])).status_code == 401


async def test_s7_5_2_replay_with_wrong_verifier_revokes_nothing(server: Server) -> None:
    """CODE-3: a replay without the right code_verifier is refused and revokes nothing."""
    auth, code = await code_for(server, resource=None)
    tokens = (await redeem(server.http, auth, code)).json()
    other_verifier, _ = pkce()
    assert_error(
        await redeem(server.http, auth, code, code_verifier=other_verifier), "invalid_grant"
    )
    assert (await userinfo(server.http, tokens["access_token"])).status_code == 200
    assert (await refresh(server.http, auth.client_id, tokens["refresh_token"])).status_code == 200


async def test_s7_5_2_replay_by_another_client_revokes_nothing(server: Server) -> None:
    """CODE-3: a replay by another client is refused and revokes nothing."""
    auth, code = await code_for(server, resource=None)
    tokens = (await redeem(server.http, auth, code)).json()
    intruder = await register(server.http)
    assert_error(
        await redeem(server.http, auth, code, client_id=intruder["client_id"]), "invalid_grant"
    )
    assert (await userinfo(server.http, tokens["access_token"])).status_code == 200
    assert (await refresh(server.http, auth.client_id, tokens["refresh_token"])).status_code == 200


async def test_s7_5_2_replay_with_wrong_client_secret_revokes_nothing(server: Server) -> None:
    """CODE-3: a replay with wrong client authentication is 401 and revokes nothing."""
    client = await register(server.http, token_endpoint_auth_method="client_secret_basic")
    auth = Authorization(client["client_id"], resource=None)
    code = (await authorize_code(server.http, auth))["code"]
    good = (client["client_id"], client["client_secret"])
    bad = (client["client_id"], client["client_secret"] + "x")
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": auth.verifier,
        "redirect_uri": auth.redirect_uri,
    }
    first = await server.http.post("/token", data=data, auth=good)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert_error(await server.http.post("/token", data=data, auth=bad), "invalid_client", 401)
    assert (await userinfo(server.http, tokens["access_token"])).status_code == 200
    again = await server.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=good,
    )
    assert again.status_code == 200, again.text


# --- CODE-4: expiry --------------------------------------------------------------------------


async def test_s4_1_2_code_redeemed_after_its_lifetime_is_invalid_grant(
    server: Server, clock: ManualClock
) -> None:
    """CODE-4: a code redeemed after its lifetime is 400 invalid_grant."""
    auth, code = await code_for(server)
    clock.advance(CODE_TTL_S + 1)
    assert_error(await redeem(server.http, auth, code), "invalid_grant")


async def test_s4_1_2_code_redeemed_within_its_lifetime_works(
    server: Server, clock: ManualClock
) -> None:
    """CODE-4: the lifetime is the configured one, not shorter."""
    auth, code = await code_for(server)
    clock.advance(CODE_TTL_S - 2)
    assert (await redeem(server.http, auth, code)).status_code == 200


# --- CODE-5: bound to the client -----------------------------------------------------------


async def test_s4_1_3_code_of_client_a_redeemed_by_public_client_b(server: Server) -> None:
    """CODE-5: a code issued to A and redeemed by public B is 400 invalid_grant; A still can."""
    auth, code = await code_for(server)
    other = await register(server.http)
    assert_error(
        await redeem(server.http, auth, code, client_id=other["client_id"]), "invalid_grant"
    )
    assert (await redeem(server.http, auth, code)).status_code == 200


async def test_s4_1_3_code_of_client_a_redeemed_by_authenticated_client_b(server: Server) -> None:
    """CODE-5: a confidential B that authenticates correctly still cannot redeem A's code."""
    auth, code = await code_for(server)
    other = await register(server.http, token_endpoint_auth_method="client_secret_basic")
    response = await server.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri,
            "resource": RESOURCE,
        },
        auth=(other["client_id"], other["client_secret"]),
    )
    assert_error(response, "invalid_grant")
    assert (await redeem(server.http, auth, code)).status_code == 200


# --- CODE-6: redirect_uri ------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    ["http://127.0.0.1:5556/cb", LOOPBACK, "http://127.0.0.1:5555/cb/", "http://localhost:5555/cb"],
)
async def test_s4_1_3_redirect_uri_mismatch_is_invalid_grant(
    server: Server, redirect_uri: str
) -> None:
    """CODE-6: a redirect_uri other than the one at /authorize is 400 invalid_grant."""
    auth, code = await code_for(server)
    assert_error(await redeem(server.http, auth, code, redirect_uri=redirect_uri), "invalid_grant")
    assert (await redeem(server.http, auth, code)).status_code == 200


async def test_s10_2_redirect_uri_may_be_omitted_at_token_even_when_it_was_given(
    server: Server,
) -> None:
    """CODE-6 (OAuth 2.1 §10.2): the token request may omit redirect_uri; PKCE binds the code."""
    auth, code = await code_for(server)
    response = await post_token(
        server.http,
        grant_type="authorization_code",
        code=code,
        code_verifier=auth.verifier,
        client_id=auth.client_id,
        resource=RESOURCE,
    )
    assert response.status_code == 200, response.text
    assert (await redeem(server.http, auth, code)).json()["error"] == "invalid_grant"


class WithoutRedirectUri(Authorization):
    """An authorization request that leaves redirect_uri to the single registered one."""

    @property
    def params(self) -> dict[str, str]:
        params = dict(super().params)
        del params["redirect_uri"]
        return params


async def test_s4_1_3_redirect_uri_may_be_omitted_when_authorize_omitted_it(
    server: Server,
) -> None:
    """CODE-6: without redirect_uri at /authorize, the token request may omit it too."""
    client = await register(server.http)
    auth = WithoutRedirectUri(client["client_id"], redirect_uri=LOOPBACK)
    code = (await authorize_code(server.http, auth))["code"]
    response = await post_token(
        server.http,
        grant_type="authorization_code",
        code=code,
        code_verifier=auth.verifier,
        client_id=auth.client_id,
        resource=RESOURCE,
    )
    assert response.status_code == 200, response.text


# --- CODE-7: resource ----------------------------------------------------------------------


async def test_rfc8707_s2_2_resource_not_requested_at_authorize_is_invalid_target(
    server: Server,
) -> None:
    """CODE-7: a code for R1 redeemed with resource R2 is 400 invalid_target."""
    auth, code = await code_for(server)
    assert_error(await redeem(server.http, auth, code, resource=OTHER_RESOURCE), "invalid_target")
    assert (await redeem(server.http, auth, code)).status_code == 200


async def test_rfc8707_s2_2_resource_without_one_at_authorize_is_invalid_target(
    server: Server,
) -> None:
    """CODE-7: a resource at /token that /authorize did not name is 400 invalid_target."""
    auth, code = await code_for(server, resource=None)
    assert_error(await redeem(server.http, auth, code, resource=RESOURCE), "invalid_target")


async def test_rfc8707_s2_2_two_resources_at_token_is_invalid_target(server: Server) -> None:
    """CODE-7: several resource values in one token request are 400 invalid_target."""
    auth, code = await code_for(server)
    response = await server.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri,
            "client_id": auth.client_id,
            "resource": [RESOURCE, OTHER_RESOURCE],
        },
    )
    assert_error(response, "invalid_target")


@pytest.mark.parametrize(
    "resource",
    [
        "mcp.example.com",
        "/mcp",
        "https://mcp.example.com/mcp#frag",
        "https://[::1/mcp",
        "https://evil.example/",
    ],
)
async def test_rfc8707_s2_malformed_or_unserved_resource_at_token_is_invalid_target(
    server: Server, resource: str
) -> None:
    """RES-2/RES-3: a relative, fragment-bearing, unparsable or unserved resource at /token is
    400 invalid_target, never 500; the code is not spent."""
    auth, code = await code_for(server)
    assert_error(await redeem(server.http, auth, code, resource=resource), "invalid_target")
    assert (await redeem(server.http, auth, code)).status_code == 200


async def test_rfc8707_s2_resource_with_upper_case_scheme_and_host(server: Server) -> None:
    """RES-4: HTTPS://MCP.EXAMPLE.COM/mcp names the same audience as https://mcp.example.com/mcp."""
    auth, code = await code_for(server, resource="HTTPS://MCP.EXAMPLE.COM/mcp")
    response = await redeem(server.http, auth, code, resource=RESOURCE)
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == RESOURCE


async def test_rfc8707_s2_2_resource_omitted_at_token_uses_the_granted_one(server: Server) -> None:
    """RES-1: a token request without resource gets the audience granted at /authorize, and
    /userinfo's (the issuer) since openid is granted (README "Audience")."""
    auth, code = await code_for(server)
    response = await post_token(
        server.http,
        grant_type="authorization_code",
        code=code,
        code_verifier=auth.verifier,
        redirect_uri=auth.redirect_uri,
        client_id=auth.client_id,
    )
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == [RESOURCE, server.settings.issuer]


# --- CODE-8: what was approved, nothing more -------------------------------------------------


async def test_s4_1_2_scope_at_token_endpoint_does_not_widen(server: Server) -> None:
    """CODE-8: an extra scope in the code exchange does not widen the tokens."""
    auth, code = await code_for(server, scope="openid")
    response = await redeem(server.http, auth, code, scope="openid email profile mcp:tools")
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["scope"] == "openid"
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "openid"
    assert claims["client_id"] == auth.client_id


# --- PKCE-6..9 at the token endpoint (RFC 7636 §4.5, §4.6) -----------------------------------


async def test_rfc7636_s4_6_wrong_verifier_is_invalid_grant(server: Server) -> None:
    """PKCE-6: a wrong code_verifier is 400 invalid_grant; never two successes."""
    auth, code = await code_for(server)
    wrong, _ = pkce()
    assert_error(await redeem(server.http, auth, code, code_verifier=wrong), "invalid_grant")
    outcomes = [(await redeem(server.http, auth, code)).status_code for _ in range(2)]
    assert outcomes.count(200) <= 1
    assert outcomes[-1] == 400


async def test_rfc7636_s4_5_missing_verifier_is_invalid_grant(server: Server) -> None:
    """PKCE-7: a code issued with a challenge and redeemed without a verifier is 400."""
    auth, code = await code_for(server)
    response = await post_token(
        server.http,
        grant_type="authorization_code",
        code=code,
        redirect_uri=auth.redirect_uri,
        client_id=auth.client_id,
        resource=RESOURCE,
    )
    assert_error(response, "invalid_grant")
    assert (await redeem(server.http, auth, code)).status_code == 200


@pytest.mark.parametrize(
    "verifier",
    [
        pytest.param("a" * 42, id="42-chars"),
        pytest.param("a" * 129, id="129-chars"),
        pytest.param("a" * 42 + "+", id="plus"),
        pytest.param("a" * 42 + "/", id="slash"),
        pytest.param("a" * 42 + "=", id="equals"),
        pytest.param("a" * 42 + " ", id="space"),
        pytest.param("a" * 42 + "é", id="non-ascii"),
    ],
)
async def test_rfc7636_s4_1_malformed_verifier_is_400_even_if_it_hashes_right(
    server: Server, verifier: str
) -> None:
    """PKCE-9: a verifier outside 43*128unreserved is 400 even when its SHA-256 matches."""
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    client = await register(server.http)
    auth = Authorization(client["client_id"], verifier=verifier, challenge=challenge)
    code = (await authorize_code(server.http, auth))["code"]
    assert_error(await redeem(server.http, auth, code), "invalid_grant")
