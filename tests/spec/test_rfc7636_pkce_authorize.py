"""PKCE at the authorization endpoint (RFC 7636 §4.3, §4.4.1 as OAuth 2.1 §4.1.1 profiles it:
S256 required for every client), black-box over HTTP. Every failure here comes after the
client and redirect URI were validated, so it is redirected with invalid_request, state and
iss (OAuth 2.1 §4.1.2.1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from oauthd.settings import ClientSettings, Settings
from tests.conftest import ISSUER, Server, running_server
from tests.flow import Authorization, authorize_code, pkce, query_of, redeem, register

CB = "http://127.0.0.1:5555/cb"


async def signed_in_client(server: Server, **metadata: Any) -> dict[str, Any]:
    """A self-registered client the browser has already logged in to and consented to."""
    client = await register(server.http, **metadata)
    await authorize_code(server.http, Authorization(client["client_id"]))
    return client


async def authorize(http: httpx.AsyncClient, params: dict[str, str]) -> dict[str, str]:
    """The query of the redirect to the client that /authorize answers at once."""
    response = await http.get("/authorize", params=params)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(CB + "?"), location
    return query_of(location)


def assert_invalid_request(query: dict[str, str]) -> None:
    assert query["error"] == "invalid_request"
    assert query["state"] == "st-123"
    assert query["iss"] == ISSUER
    assert "code" not in query


async def test_s4_4_1_public_client_without_challenge_is_invalid_request(server: Server) -> None:
    """PKCE-1: a public client without code_challenge is refused with invalid_request."""
    client = await signed_in_client(server)
    params = Authorization(client["client_id"]).params
    del params["code_challenge"]
    del params["code_challenge_method"]
    assert_invalid_request(await authorize(server.http, params))
    params["code_challenge_method"] = "S256"
    assert_invalid_request(await authorize(server.http, params))


async def test_s4_4_1_confidential_client_without_challenge_is_invalid_request(
    server: Server,
) -> None:
    """PKCE-2: PKCE is required of confidential clients too, even OIDC ones sending nonce."""
    client = await signed_in_client(server, token_endpoint_auth_method="client_secret_basic")
    params = Authorization(client["client_id"], extra={"nonce": "n-1"}).params
    del params["code_challenge"]
    del params["code_challenge_method"]
    assert_invalid_request(await authorize(server.http, params))


async def test_s4_4_1_config_client_without_challenge_is_invalid_request(
    make_settings: Callable[..., Settings],
) -> None:
    """PKCE-1: a pre-registered client's PKCE error is redirected without a session."""
    cli = ClientSettings("cli", ("http://127.0.0.1/cb",), "none", first_party=True)
    async with running_server(make_settings(clients=(cli,))) as server:
        params = Authorization("cli").params
        del params["code_challenge"]
        assert_invalid_request(await authorize(server.http, params))


async def test_s4_3_plain_and_unknown_methods_are_invalid_request(server: Server) -> None:
    """PKCE-3: plain is not offered; S512 and lower-case s256 are unknown methods."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    for method in ("plain", "S512", "s256", "S256 ", "sha256"):
        params = {**auth.params, "code_challenge_method": method}
        assert_invalid_request(await authorize(server.http, params))


async def test_s4_3_plain_is_refused_with_a_plain_valid_challenge(server: Server) -> None:
    """PKCE-3: code_challenge_method=plain with a verifier-shaped challenge is still refused."""
    client = await signed_in_client(server)
    verifier, _ = pkce()
    params = {
        **Authorization(client["client_id"]).params,
        "code_challenge": verifier,
        "code_challenge_method": "plain",
    }
    assert_invalid_request(await authorize(server.http, params))


async def test_s4_3_missing_method_is_not_taken_as_s256(server: Server) -> None:
    """PKCE-4: an omitted method means plain, which is unsupported: invalid_request, never a
    code that the S256 verifier could redeem."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    params = auth.params
    del params["code_challenge_method"]
    query = await authorize(server.http, params)
    assert_invalid_request(query)
    params["code_challenge_method"] = ""
    assert_invalid_request(await authorize(server.http, params))


async def test_s4_2_malformed_challenges_are_invalid_request(server: Server) -> None:
    """PKCE-5: an S256 challenge is 43 base64url characters without padding."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    good = auth.challenge
    malformed = [
        good[:42],
        good + "A",
        "A" * 129,
        good[:42] + "+",
        good[:42] + "/",
        good[:42] + "=",
        good[:41] + "==",
        good[:42] + " ",
        good[:42] + "é",
        good[:42] + "\x00",
    ]
    for challenge in malformed:
        params = {**auth.params, "code_challenge": challenge}
        query = await authorize(server.http, params)
        assert query["error"] == "invalid_request", challenge
        assert query["iss"] == ISSUER


async def test_s4_6_s256_challenge_round_trip(server: Server) -> None:
    """RFC 7636 §4.6: the code issued for an S256 challenge redeems with its verifier."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    query = await authorize(server.http, auth.params)
    response = await redeem(server.http, auth, query["code"])
    assert response.status_code == 200, response.text


async def test_s4_4_1_pkce_error_for_unverified_https_redirect_is_a_page(
    server: Server,
) -> None:
    """AUTHZ-17: a self-registered client's PKCE error for an https redirect URI is shown
    here, not redirected (RFC 9700 §4.11.2)."""
    web = "https://app.example/cb"
    client = await register(server.http, redirect_uris=[web])
    params = Authorization(client["client_id"], redirect_uri=web).params
    del params["code_challenge"]
    response = await server.http.get("/authorize", params=params)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "code_challenge" in response.text


async def test_s4_4_1_pkce_error_for_loopback_redirect_is_redirected_without_session(
    server: Server,
) -> None:
    """PKCE-1: with no session, a self-registered native client still learns of its PKCE
    error at its loopback redirect URI (OAuth 2.1 §4.1.2.1)."""
    client = await register(server.http)
    params = Authorization(client["client_id"]).params
    del params["code_challenge"]
    assert_invalid_request(await authorize(server.http, params))
