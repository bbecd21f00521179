"""The authorization endpoint (OAuth 2.1 §4.1.1, §4.1.2, §4.1.2.1; RFC 8252 §7.3; RFC 9207;
OIDC Core §3.1.2), black-box over HTTP: which requests are shown an error page, which are
redirected with an error, and what the redirect carries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from oauthd.settings import ClientSettings, ResourceSettings, Settings
from tests.conftest import ISSUER, Server, running_server
from tests.flow import (
    LOOPBACK,
    Authorization,
    authorize_code,
    consent,
    follow,
    form_field,
    login,
    pkce,
    query_of,
    redeem,
    register,
)

CB = "http://127.0.0.1:5555/cb"  # the default request redirect of `Authorization`
WEB = "https://app.example/cb"


# --- helpers ------------------------------------------------------------------------------


async def get_authorize(http: httpx.AsyncClient, params: Any) -> httpx.Response:
    """GET /authorize with `params` as a dict or as (name, value) pairs (to repeat one)."""
    pairs = list(params.items()) if isinstance(params, dict) else list(params)
    return await http.get("/authorize?" + urlencode(pairs))


def assert_error_page(response: httpx.Response) -> None:
    """An error shown by the AS itself: 4xx, HTML, and no Location header at all."""
    assert 400 <= response.status_code < 500, (response.status_code, response.headers)
    assert "location" not in response.headers
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def redirected(response: httpx.Response, redirect_uri: str = CB) -> dict[str, str]:
    """The query of a redirect to the client's `redirect_uri`."""
    assert response.status_code in (302, 303), (response.status_code, response.text)
    location = response.headers["location"]
    assert location.split("?")[0] == redirect_uri, location
    return query_of(location)


def redirected_error(response: httpx.Response, redirect_uri: str = CB) -> dict[str, str]:
    query = redirected(response, redirect_uri)
    assert "code" not in query
    assert query["iss"] == ISSUER
    return query


async def signed_in_client(server: Server, **metadata: Any) -> dict[str, Any]:
    """A dynamically registered client, and a browser that has logged in and consented to it
    once, so that later requests are answered without a page."""
    client = await register(server.http, **metadata)
    redirect = client["redirect_uris"][0].replace("127.0.0.1/", "127.0.0.1:5555/")
    await authorize_code(server.http, Authorization(client["client_id"], redirect_uri=redirect))
    return client


async def assert_shown_for_unverified_https(
    server: Server, error: str, redirect_uri: str = WEB, **params: str
) -> None:
    """A new self-registered client with an https redirect URI sends `params`: `error` is
    shown on a page, never redirected to that URI (AUTHZ-17)."""
    client = await register(server.http, redirect_uris=[redirect_uri])
    auth = Authorization(client["client_id"], redirect_uri=redirect_uri, extra=params)
    response = await get_authorize(server.http, auth.params)
    assert_error_page(response)
    assert response.status_code == 400
    assert error in response.text


# --- AUTHZ-1..3: client and redirect URI problems are shown, never redirected --------------


async def test_s4_1_2_1_missing_client_id_is_an_error_page(server: Server) -> None:
    """AUTHZ-1: without client_id the request is refused on a page, not redirected."""
    params = Authorization("x").params
    del params["client_id"]
    response = await get_authorize(server.http, params)
    assert_error_page(response)
    assert response.status_code == 400


async def test_s4_1_2_1_unknown_client_id_is_an_error_page(server: Server) -> None:
    """AUTHZ-1: an unknown client_id is never redirected to the redirect_uri it names."""
    response = await get_authorize(server.http, Authorization("nobody").params)
    assert_error_page(response)
    assert response.status_code == 400
    assert "invalid_client" in response.text


async def test_s2_3_1_unregistered_redirect_uri_variants_are_error_pages(server: Server) -> None:
    """AUTHZ-2: redirect_uri must equal a registered one by simple string comparison."""
    client = await register(server.http, redirect_uris=[WEB])
    variants = [
        "https://evil.example/cb",
        "https://app.example/cb/x",
        "https://app.example/CB",
        "https://app.example/cb?a=1",
        "https://app.example/cb/",
        "http://app.example/cb",
        "https://app.example@evil.example/cb",
        "https://app.example%2Fcb",
        "https://app.example/%63b",
        "HTTPS://app.example/cb",
        "https://app.example/cb#x",
        "https://app.example/cb#",
        "/cb",
        "cb",
        "//app.example/cb",
    ]
    for variant in variants:
        params = Authorization(client["client_id"], redirect_uri=variant).params
        response = await get_authorize(server.http, params)
        assert response.status_code == 400, variant
        assert "location" not in response.headers, variant


async def test_s2_3_1_fragment_on_a_loopback_redirect_is_an_error_page(server: Server) -> None:
    """AUTHZ-2: a fragment is never allowed, not even where the loopback port may vary."""
    client = await register(server.http)
    for variant in ("http://127.0.0.1:5555/cb#x", "http://127.0.0.1/cb#"):
        params = Authorization(client["client_id"], redirect_uri=variant).params
        response = await get_authorize(server.http, params)
        assert_error_page(response)


async def test_s2_3_2_several_registered_and_none_given_is_an_error_page(server: Server) -> None:
    """AUTHZ-3: with two registered redirect URIs, redirect_uri is required."""
    client = await register(server.http, redirect_uris=[WEB, "https://app.example/other"])
    params = Authorization(client["client_id"]).params
    del params["redirect_uri"]
    response = await get_authorize(server.http, params)
    assert_error_page(response)


async def test_s2_3_2_one_registered_and_none_given_uses_it(server: Server) -> None:
    """AUTHZ-3: with exactly one registered redirect URI, omitting it proceeds with that one."""
    client = await register(server.http, redirect_uris=[WEB])
    auth = Authorization(client["client_id"], redirect_uri=WEB)
    params = auth.params
    del params["redirect_uri"]
    location = await follow(server.http, await get_authorize(server.http, params))
    assert location.startswith(WEB + "?")
    code = query_of(location)["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": auth.verifier,
        "client_id": auth.client_id,
        "resource": auth.resource,
    }
    response = await server.http.post("/token", data=data)
    assert response.status_code == 200, response.text


# --- AUTHZ-4..6: loopback redirects (RFC 8252 §7.3) -----------------------------------------


async def test_rfc8252_s7_3_loopback_port_may_vary(server: Server) -> None:
    """AUTHZ-4/5: 127.0.0.1, [::1] and localhost registrations accept any port, and the code
    goes to the port requested."""
    cases = [
        ("http://127.0.0.1/cb", "http://127.0.0.1:54321/cb"),
        ("http://127.0.0.1:3000/cb", "http://127.0.0.1:54321/cb"),
        ("http://[::1]/cb", "http://[::1]:61023/cb"),
        ("http://localhost:3000/callback", "http://localhost:49152/callback"),
    ]
    for registered, requested in cases:
        client = await register(server.http, redirect_uris=[registered])
        auth = Authorization(client["client_id"], redirect_uri=requested)
        result = await authorize_code(server.http, auth)
        assert "code" in result, requested
        response = await redeem(server.http, auth, result["code"])
        assert response.status_code == 200, (requested, response.text)


async def test_rfc8252_s7_3_code_is_delivered_to_the_requested_port(server: Server) -> None:
    """AUTHZ-4: the Location is the requested loopback URI, port included."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], redirect_uri="http://127.0.0.1:54321/cb")
    location = await follow(server.http, await get_authorize(server.http, auth.params))
    assert location.startswith("http://127.0.0.1:54321/cb?code=")


async def test_rfc8252_s8_3_port_relaxation_widens_nothing_else(server: Server) -> None:
    """AUTHZ-6: only the port of a loopback redirect may differ; anything else is refused."""
    client = await register(server.http, redirect_uris=[LOOPBACK, WEB])
    variants = [
        "http://127.0.0.1:5000/other",
        "http://127.0.0.1:5000/cb/",
        "http://127.0.0.1:5000/CB",
        "http://127.0.0.1:5000/cb?x=1",
        "http://localhost:5000/cb",
        "http://[::1]:5000/cb",
        "https://127.0.0.1:5000/cb",
        "http://127.0.0.1.evil.example:5000/cb",
        "http://127.0.0.1:5000@evil.example/cb",
        "http://evil.example@127.0.0.1:5000/cb",
        "http://127.0.0.2:5000/cb",
        "https://app.example:8443/cb",
        "http://127.0.0.1:5000/c%0Ab",
        " http://127.0.0.1:5000/cb",
        "http://127.0.0.1:5000/c\tb",
        "http://127.0.0.1:5000/c\nb",
    ]
    for variant in variants:
        params = Authorization(client["client_id"], redirect_uri=variant).params
        response = await get_authorize(server.http, params)
        assert response.status_code == 400, variant
        assert "location" not in response.headers, variant


# --- AUTHZ-7: repeated parameters ------------------------------------------------------------


async def test_s3_1_repeated_client_id_or_redirect_uri_is_an_error_page(server: Server) -> None:
    """AUTHZ-7: a repeated client_id or redirect_uri, even with the same value, is not
    redirected (the target itself is ambiguous)."""
    client = await signed_in_client(server)
    params = Authorization(client["client_id"]).params
    for name in ("client_id", "redirect_uri"):
        pairs = [*params.items(), (name, params[name])]
        assert_error_page(await get_authorize(server.http, pairs))


async def test_s3_1_other_repeated_parameters_are_redirected_invalid_request(
    server: Server,
) -> None:
    """AUTHZ-7: any other defined parameter sent twice is invalid_request, redirected."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"], extra={"nonce": "n-1"})
    params = auth.params
    for name in ("state", "scope", "code_challenge", "code_challenge_method", "response_type"):
        response = await get_authorize(server.http, [*params.items(), (name, params[name])])
        query = redirected_error(response)
        assert query["error"] == "invalid_request", name
    response = await get_authorize(server.http, [*params.items(), ("nonce", "n-2")])
    assert redirected_error(response)["error"] == "invalid_request"


async def test_rfc8707_s2_repeated_resource_is_allowed(
    make_settings: Callable[..., Settings],
) -> None:
    """AUTHZ-7: resource is the one parameter that may repeat (RFC 8707 §2)."""
    two = (
        ResourceSettings("https://mcp.example.com/mcp", ("mcp:tools",)),
        ResourceSettings("https://other.example.com/mcp", ("mcp:tools",)),
    )
    async with running_server(make_settings(resources=two)) as server:
        client = await register(server.http)
        auth = Authorization(client["client_id"])
        pairs = [*auth.params.items(), ("resource", "https://other.example.com/mcp")]
        location = await follow(server.http, await get_authorize(server.http, pairs))
        assert location.startswith(CB + "?code=")


# --- AUTHZ-8: response_type -------------------------------------------------------------------


async def test_s4_1_1_response_type_missing_is_invalid_request(server: Server) -> None:
    """AUTHZ-8: response_type is required."""
    client = await signed_in_client(server)
    params = Authorization(client["client_id"]).params
    del params["response_type"]
    query = redirected_error(await get_authorize(server.http, params))
    assert query["error"] == "invalid_request"
    assert query["state"] == "st-123"


async def test_s4_1_1_only_code_is_a_response_type(server: Server) -> None:
    """AUTHZ-8: implicit and hybrid response types are unsupported_response_type."""
    client = await signed_in_client(server)
    for value in ("token", "id_token", "code id_token", "code token", "foo", "CODE"):
        params = Authorization(client["client_id"], extra={"response_type": value}).params
        query = redirected_error(await get_authorize(server.http, params))
        assert query["error"] == "unsupported_response_type", value
        assert "access_token" not in query
        assert "id_token" not in query


# --- AUTHZ-9, 10, 13: what the redirect carries -----------------------------------------------


async def test_s4_1_2_state_is_echoed_byte_exactly(server: Server) -> None:
    """AUTHZ-9: state comes back unchanged on success and on error, whatever it contains."""
    client = await signed_in_client(server)
    for state in ("a b+c/=%26&é?#;,", "x" * 512, "日本語 ~!*'()"):
        auth = Authorization(client["client_id"], state=state)
        result = redirected(await get_authorize(server.http, auth.params))
        assert result["state"] == state
        assert "code" in result
        params = {**auth.params, "response_type": "token"}
        error = redirected_error(await get_authorize(server.http, params))
        assert error["state"] == state


async def test_s3_1_empty_state_is_treated_as_absent(server: Server) -> None:
    """AUTHZ-9: no state (or state=) in the request means no state in the response."""
    client = await signed_in_client(server)
    params = Authorization(client["client_id"]).params
    del params["state"]
    response = await get_authorize(server.http, params)
    assert "state=" not in response.headers["location"]
    assert "code" in redirected(response)
    response = await get_authorize(server.http, {**params, "state": ""})
    assert "state=" not in response.headers["location"]
    response = await get_authorize(server.http, {**params, "state": "", "response_type": "x"})
    assert "state=" not in response.headers["location"]
    assert redirected_error(response)["error"] == "unsupported_response_type"


async def test_s4_1_2_registered_redirect_query_is_preserved(server: Server) -> None:
    """AUTHZ-10: the registered redirect URI's query stays, the response is appended to it,
    never put in a fragment."""
    registered = "https://app.example/cb?tenant=7"
    client = await register(server.http, redirect_uris=[registered])
    auth = Authorization(client["client_id"], redirect_uri=registered)
    location = await follow(server.http, await get_authorize(server.http, auth.params))
    assert location.startswith(registered + "&code=")
    assert "#" not in location
    query = query_of(location)
    assert query["tenant"] == "7"
    assert query["state"] == auth.state
    assert query["iss"] == ISSUER
    # Errors are redirected to a self-registered client's loopback URI only (AUTHZ-17).
    native = "http://127.0.0.1/cb?tenant=7"
    client = await register(server.http, redirect_uris=[native])
    auth = Authorization(client["client_id"], redirect_uri=native, extra={"response_type": "x"})
    error = await get_authorize(server.http, auth.params)
    assert error.headers["location"].startswith(native + "&error=unsupported_response_type")


async def test_rfc9207_s2_iss_is_on_every_redirect(server: Server) -> None:
    """AUTHZ-13: iss is the issuer exactly, on success and on every kind of error."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    assert redirected(await get_authorize(server.http, auth.params))["iss"] == ISSUER
    bad = [
        {"response_type": "token"},
        {"scope": "bogus"},
        {"code_challenge_method": "plain"},
        {"resource": "https://elsewhere.example/"},
        {"prompt": "bogus"},
    ]
    for change in bad:
        query = redirected_error(await get_authorize(server.http, {**auth.params, **change}))
        assert query["iss"] == ISSUER, change
        assert query["state"] == auth.state, change


async def test_s4_1_2_success_redirect_carries_no_tokens(server: Server) -> None:
    """AUTHZ-18: the success redirect has code, state and iss, and no token or challenge."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    response = await get_authorize(server.http, auth.params)
    query = redirected(response)
    assert set(query) == {"code", "state", "iss"}
    assert len(query["code"]) >= 22
    assert auth.challenge not in response.headers["location"]


# --- AUTHZ-11, 12: methods and unknown parameters ---------------------------------------------


async def test_s7_5_3_redirects_after_posts_are_303(server: Server) -> None:
    """AUTHZ-11: after the login and consent POSTs the browser is sent on with 303."""
    client = await register(server.http)
    auth = Authorization(client["client_id"])
    response = await get_authorize(server.http, auth.params)
    assert response.status_code in (302, 303)
    after_login = await login(server.http, response.headers["location"])
    assert after_login.status_code == 303
    after_consent = await consent(server.http, after_login.headers["location"])
    assert after_consent.status_code == 303
    assert "code" in redirected(after_consent)


async def test_s3_1_unknown_parameters_are_ignored(server: Server) -> None:
    """AUTHZ-12: unrecognized parameters do not disturb the flow."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], extra={"foo": "bar", "prompt_x": "1", "": "z"})
    result = await authorize_code(server.http, auth)
    assert "code" in result


async def test_oidc_s3_1_2_1_post_to_authorize_is_the_same_request(server: Server) -> None:
    """AUTHZ-12: POST /authorize with a form body applies the same validation as GET."""
    client = await register(server.http)
    auth = Authorization(client["client_id"])
    response = await server.http.post("/authorize", data=auth.params)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?")
    bad = await server.http.post("/authorize", data={**auth.params, "redirect_uri": "https://x"})
    assert bad.status_code == 400
    assert "location" not in bad.headers
    await authorize_code(server.http, auth)  # signed in: errors now go back to the client
    wrong = dict(auth.params)
    del wrong["code_challenge"]
    refused = await server.http.post("/authorize", data=wrong)
    assert refused.headers["location"].startswith(auth.redirect_uri + "?error=invalid_request")


async def test_oidc_s3_1_2_1_get_and_post_answer_a_live_session_alike(server: Server) -> None:
    """AUTHZ-12: with a session and consent, GET (the fast path) and POST (the Quart route)
    answer with the same 303: a fresh code, state and iss, no-store, and nothing else set."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    got = await get_authorize(server.http, auth.params)
    posted = await server.http.post("/authorize", data=auth.params)
    for response in (got, posted):
        assert response.status_code == 303
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "set-cookie" not in response.headers
        assert response.content == b""
        assert redirected(response)["state"] == auth.state
    assert sorted(got.headers.keys()) == sorted(posted.headers.keys())
    assert redirected(got)["code"] != redirected(posted)["code"]
    assert (await redeem(server.http, auth, redirected(got)["code"])).status_code == 200


async def test_s4_1_1_a_live_session_still_gets_every_check(server: Server) -> None:
    """AUTHZ-12: with a session, a request that needs a page or an error is answered as
    without one on GET: a bad redirect URI shown, a bad request redirected with its error,
    prompt=login sent to log in, a GET with a body validated the same way."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    shown = await get_authorize(server.http, {**auth.params, "redirect_uri": "https://x"})
    assert shown.status_code == 400
    assert "location" not in shown.headers
    refused = await get_authorize(server.http, {**auth.params, "code_challenge_method": "plain"})
    assert redirected_error(refused)["error"] == "invalid_request"
    forced = await get_authorize(server.http, {**auth.params, "prompt": "login"})
    assert forced.headers["location"].startswith("/login?")
    url = "/authorize?" + urlencode(auth.params)
    with_body = await server.http.request("GET", url, content=b"x=1")
    assert "code" in redirected(with_body)


# --- AUTHZ-14, 15: scope -------------------------------------------------------------------


async def test_s1_4_1_unknown_scope_is_invalid_scope(server: Server) -> None:
    """AUTHZ-14: unknown, bad-character and wrong-case scopes are invalid_scope."""
    client = await signed_in_client(server)
    for scope in ("openid bogus", "OPENID", "openid\\x", 'openid "x"', "openid é"):
        params = Authorization(client["client_id"], scope=scope).params
        query = redirected_error(await get_authorize(server.http, params))
        assert query["error"] == "invalid_scope", scope
        assert query["state"] == "st-123"


async def test_s1_4_1_omitted_scope_applies_the_default(server: Server) -> None:
    """AUTHZ-15: without scope the client's registered scope (empty if none) is granted, and
    the token response says which scope it has."""
    http = server.http
    client = await register(http, scope="openid email")
    auth = Authorization(client["client_id"])
    params = auth.params
    del params["scope"]
    location = await follow(http, await get_authorize(http, params))
    response = await redeem(http, auth, query_of(location)["code"])
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "openid email"

    bare = await register(http)
    auth = Authorization(bare["client_id"])
    params = auth.params
    del params["scope"]
    location = await follow(http, await get_authorize(http, params))
    response = await redeem(http, auth, query_of(location)["code"])
    assert response.status_code == 200, response.text
    assert "scope" in response.json()


# --- AUTHZ-16, 17: the person is authenticated first ------------------------------------------


async def test_s3_1_no_session_gets_the_login_page_never_a_code(server: Server) -> None:
    """AUTHZ-16: an unauthenticated browser is sent to the AS's own login page."""
    client = await register(server.http)
    response = await get_authorize(server.http, Authorization(client["client_id"]).params)
    assert response.status_code in (302, 303)
    location = response.headers["location"]
    assert location.startswith("/login?request=")
    assert "code=" not in location
    page = await server.http.get(location)
    assert page.status_code == 200
    assert "password" in page.text


async def test_rfc9700_s4_11_2_error_for_unverified_https_redirect_is_a_page(
    server: Server,
) -> None:
    """AUTHZ-17: no session and scope=bogus for a self-registered client with an https
    redirect URI: the error is shown here, not a redirect to the client."""
    await assert_shown_for_unverified_https(server, "invalid_scope", scope="bogus")


async def test_rfc9700_s4_11_2_error_for_unverified_https_redirect_is_a_page_with_a_session(
    server: Server,
) -> None:
    """AUTHZ-17: an unverified client's https redirect URI is not trusted because the
    browser has a session: its errors are shown here too (RFC 9700 §4.11.2)."""
    await signed_in_client(server)
    await assert_shown_for_unverified_https(server, "invalid_scope", scope="bogus")


async def test_s4_1_2_1_loopback_redirect_errors_are_redirected_without_session(
    server: Server,
) -> None:
    """OAuth 2.1 §4.1.2.1: once client and redirect URI are valid the error MUST be
    redirected; a self-registered native client's loopback URI (RFC 8252 §7.3) is."""
    client = await register(server.http)
    params = Authorization(client["client_id"], scope="bogus").params
    query = redirected_error(await get_authorize(server.http, params))
    assert query["error"] == "invalid_scope"
    assert query["state"] == "st-123"
    assert query["error_description"]


async def test_s4_1_2_1_private_use_scheme_errors_are_redirected_without_session(
    server: Server,
) -> None:
    """OAuth 2.1 §4.1.2.1: a self-registered native client's private-use-scheme redirect
    URI (RFC 8252 §7.1) gets its errors, with state and iss."""
    native = "com.example.app:/oauth2redirect"
    client = await register(server.http, redirect_uris=[native])
    params = Authorization(client["client_id"], redirect_uri=native, scope="bogus").params
    query = redirected_error(await get_authorize(server.http, params), native)
    assert query["error"] == "invalid_scope"
    assert query["state"] == "st-123"


async def test_s4_1_2_1_config_client_errors_are_redirected_without_session(
    make_settings: Callable[..., Settings],
) -> None:
    """AUTHZ-17: a pre-registered client is exempt: its errors are redirected at once."""
    cli = ClientSettings("cli", (LOOPBACK,), "none", first_party=True)
    async with running_server(make_settings(clients=(cli,))) as server:
        params = Authorization("cli", scope="bogus").params
        query = redirected_error(await get_authorize(server.http, params))
        assert query["error"] == "invalid_scope"


# --- AUTHZ-19, 20: Deny and prompt --------------------------------------------------------------


async def test_s4_1_2_1_deny_is_access_denied(server: Server) -> None:
    """AUTHZ-19: Deny answers access_denied with state and iss, and no code."""
    client = await register(server.http)
    auth = Authorization(client["client_id"])
    response = await get_authorize(server.http, auth.params)
    response = await login(server.http, response.headers["location"])
    response = await consent(server.http, response.headers["location"], decision="deny")
    assert response.status_code == 303
    query = redirected_error(response)
    assert query["error"] == "access_denied"
    assert query["state"] == auth.state
    # Nothing was remembered: the next request asks again.
    again = await get_authorize(server.http, auth.params)
    assert again.headers["location"].startswith("/consent?")


async def test_oidc_s3_1_2_1_prompt_none_without_session_is_login_required(
    server: Server,
) -> None:
    """AUTHZ-20: prompt=none never shows a page; no session is login_required."""
    client = await register(server.http)
    params = Authorization(client["client_id"], extra={"prompt": "none"}).params
    query = redirected_error(await get_authorize(server.http, params))
    assert query["error"] == "login_required"
    assert query["state"] == "st-123"


async def test_oidc_s3_1_2_1_prompt_none_without_consent_is_consent_required(
    server: Server,
) -> None:
    """AUTHZ-20: prompt=none with a session but no consent is consent_required."""
    await signed_in_client(server)
    other = await register(server.http)
    params = Authorization(other["client_id"], extra={"prompt": "none"}).params
    query = redirected_error(await get_authorize(server.http, params))
    assert query["error"] == "consent_required"
    assert query["state"] == "st-123"


async def test_rfc9700_s4_11_2_prompt_none_is_no_open_redirect(server: Server) -> None:
    """AUTHZ-17, AUTHZ-20: prompt=none without a session does not send the browser to an
    unverified client's https redirect URI: login_required is shown here (RFC 9700 §4.11.2)."""
    land = "https://evil.example/land"
    await assert_shown_for_unverified_https(server, "login_required", land, prompt="none")


async def test_rfc9700_s4_11_2_prompt_none_consent_required_is_no_open_redirect(
    server: Server,
) -> None:
    """AUTHZ-17, AUTHZ-20: nor does consent_required, with a session."""
    await signed_in_client(server)
    await assert_shown_for_unverified_https(server, "consent_required", prompt="none")


async def test_s4_1_2_1_deny_redirects_to_the_uri_the_consent_page_showed(server: Server) -> None:
    """AUTHZ-19: the person chose Deny on a page naming the destination host, so even an
    unverified client's https redirect URI gets access_denied (RFC 9700 §4.11.2: the user
    was informed)."""
    client = await register(server.http, redirect_uris=[WEB])
    auth = Authorization(client["client_id"], redirect_uri=WEB)
    response = await get_authorize(server.http, auth.params)
    response = await login(server.http, response.headers["location"])
    response = await consent(server.http, response.headers["location"], decision="deny")
    query = redirected_error(response, WEB)
    assert query["error"] == "access_denied"
    assert query["state"] == auth.state


async def test_oidc_s3_1_2_1_prompt_none_with_session_and_consent_issues_a_code(
    server: Server,
) -> None:
    """AUTHZ-20: prompt=none succeeds silently when nothing needs asking."""
    client = await signed_in_client(server)
    params = Authorization(client["client_id"], extra={"prompt": "none"}).params
    assert "code" in redirected(await get_authorize(server.http, params))


async def test_oidc_s3_1_2_1_prompt_login_forces_the_login_page(server: Server) -> None:
    """AUTHZ-20: prompt=login shows the login page although a session exists."""
    client = await signed_in_client(server)
    params = Authorization(client["client_id"], extra={"prompt": "login"}).params
    response = await get_authorize(server.http, params)
    assert response.headers["location"].startswith("/login?")


async def test_oidc_s3_1_2_1_prompt_login_cannot_be_skipped_via_consent(server: Server) -> None:
    """AUTHZ-20: a request that must log in again gets no code by going to /consent with
    the old session."""
    client = await signed_in_client(server)
    params = Authorization(client["client_id"], extra={"prompt": "login consent"}).params
    response = await get_authorize(server.http, params)
    location = response.headers["location"]
    assert location.startswith("/login?")
    shown = await server.http.get(location.replace("/login", "/consent"))
    assert shown.status_code == 303
    assert shown.headers["location"].startswith("/login?")
    page = await server.http.get(location)  # the login form mints the request's CSRF token
    form = {"request": form_field(page.text, "request"), "csrf": form_field(page.text, "csrf")}
    skipped = await server.http.post("/consent", data={**form, "decision": "allow"})
    assert skipped.status_code == 303
    assert skipped.headers["location"].startswith("/login?")
    # A real login then lets the request finish.
    done = await follow(server.http, await login(server.http, location))
    assert "code=" in done


# --- OIDC-3, OIDC-4: nonce and max_age ---------------------------------------------------------


def id_token_of(body: dict[str, Any]) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(body["id_token"], options={"verify_signature": False})
    return claims


async def test_oidc_s3_1_2_1_nonce_round_trips_into_the_id_token(server: Server) -> None:
    """OIDC-3: the ID token's nonce is exactly the request's; no nonce, no claim."""
    http = server.http
    client = await register(http)
    auth = Authorization(client["client_id"], scope="openid", extra={"nonce": "n-0S6_WzA2Mj"})
    result = await authorize_code(http, auth)
    response = await redeem(http, auth, result["code"])
    assert id_token_of(response.json())["nonce"] == "n-0S6_WzA2Mj"
    plain = Authorization(client["client_id"], scope="openid")
    result = await authorize_code(http, plain)
    response = await redeem(http, plain, result["code"])
    assert "nonce" not in id_token_of(response.json())


async def test_oidc_s3_1_2_1_max_age_0_forces_login_and_sets_auth_time(server: Server) -> None:
    """OIDC-4: max_age=0 shows the login page despite a session; auth_time <= iat."""
    http = server.http
    client = await signed_in_client(server, scope="openid email")
    auth = Authorization(client["client_id"], scope="openid", extra={"max_age": "0"})
    response = await get_authorize(http, auth.params)
    assert response.headers["location"].startswith("/login?")
    location = await follow(http, response)
    response = await redeem(http, auth, query_of(location)["code"])
    claims = id_token_of(response.json())
    assert isinstance(claims["auth_time"], int)
    assert claims["auth_time"] <= claims["iat"]


# --- ERR-2: hostile sizes and characters ---------------------------------------------------------


def assert_no_injection(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert "injected" not in {k.lower() for k in response.headers}
    location = response.headers.get("location", "")
    assert not any(ch in location for ch in "\r\n\x00 ")


async def test_s7_12_long_state_and_scope_never_fail(server: Server) -> None:
    """ERR-2: a 16 KB state or an 8 KB scope is a 4xx page or invalid_request redirect."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    for change in ({"state": "s" * 16_384}, {"scope": "openid " * 1_200}):
        response = await get_authorize(server.http, {**auth.params, **change})
        assert_no_injection(response)
        if response.status_code in (302, 303):
            assert redirected_error(response)["error"] in ("invalid_request", "invalid_scope")
        else:
            assert 400 <= response.status_code < 500


async def test_s7_12_over_long_state_is_refused_and_not_echoed(server: Server) -> None:
    """ERR-2: a state too long to echo is invalid_request, and the Location stays short."""
    client = await signed_in_client(server)
    params = Authorization(client["client_id"], state="s" * 3000).params
    response = await get_authorize(server.http, params)
    query = redirected_error(response)
    assert query["error"] == "invalid_request"
    assert "state" not in query
    assert len(response.headers["location"]) < 1024


async def test_s7_12_control_characters_never_reach_a_header(server: Server) -> None:
    """ERR-2: NUL, CR and LF in state or redirect_uri never split a header or cause a 500."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    for bad in ("a\r\nInjected: 1", "a\x00b", "a\nb", "a\rb"):
        response = await get_authorize(server.http, {**auth.params, "state": bad})
        assert_no_injection(response)
        if response.status_code in (302, 303):
            query = redirected(response)
            assert query.get("state") == bad or query.get("error") == "invalid_request"
        response = await get_authorize(server.http, {**auth.params, "redirect_uri": CB + bad})
        assert_no_injection(response)
        assert_error_page(response)


async def test_s7_12_state_cannot_inject_parameters(server: Server) -> None:
    """AUTHZ-9: a state containing &code=...&iss=... stays inside the state value."""
    client = await signed_in_client(server)
    state = "x&code=evil&iss=https://evil.example"
    auth = Authorization(client["client_id"], state=state)
    response = await get_authorize(server.http, auth.params)
    query = redirected(response)
    assert query["state"] == state
    assert query["iss"] == ISSUER
    assert query["code"] != "evil"
    assert response.headers["location"].count("iss=") == 1


async def test_pkce_verifier_from_another_request_does_not_redeem(server: Server) -> None:
    """AUTHZ-18: the code is bound to the challenge of its own request."""
    client = await signed_in_client(server)
    auth = Authorization(client["client_id"])
    query = redirected(await get_authorize(server.http, auth.params))
    other_verifier, _ = pkce()
    response = await redeem(server.http, auth, query["code"], code_verifier=other_verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
