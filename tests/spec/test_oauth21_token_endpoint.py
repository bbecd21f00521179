"""OAuth 2.1 §3.2: the token endpoint's transport, client authentication and error rules
(TOKEN-1..13, 16, 17; ERR-1/2/3/5; CORS-2/3 for /token and /register)."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote_plus, urlencode

import httpx
import pytest
import trio

from oauthd.settings import ClientSettings, Settings
from tests.conftest import Server, running_server
from tests.flow import LOOPBACK, Authorization, authorize_code, redeem, register, tokens_for

# A pre-registered confidential client whose id and secret need form-encoding (TOKEN-7).
BASIC_ID = "app:one"
BASIC_SECRET = "s3:cr+t%2F/x y=é"
BASIC_ENV = "OAUTHD_TEST_TOKEN_BASIC_SECRET"
POST_ID = "post-app"
POST_SECRET = "post:secret+/%"
POST_ENV = "OAUTHD_TEST_TOKEN_POST_SECRET"
ORIGIN = "https://inspector.example"
ERROR_CODES = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
}
# RFC 6749 §5.2: error and error_description use %x20-21 / %x23-5B / %x5D-7E only.
ERROR_CHARS = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


def basic(client_id: str, secret: str, *, encode: bool = True) -> dict[str, str]:
    """OAuth 2.1 §2.4.1: id and secret form-urlencoded, joined by ':', then base64."""
    if encode:
        client_id, secret = quote_plus(client_id), quote_plus(secret)
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_error(response: httpx.Response, code: str, status: int = 400) -> None:
    """TOKEN-6, ERR-1: status, JSON, no-store, a registered code in the allowed characters."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == code, body
    assert body["error"] in ERROR_CODES
    assert ERROR_CHARS.fullmatch(body.get("error_description", ""))
    assert None not in body.values()
    if code == "invalid_client" and status == 401:
        assert response.headers["www-authenticate"].startswith("Basic ")


@pytest.fixture
async def confidential(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Server]:
    """A server with config clients: BASIC_ID (client_secret_basic), POST_ID
    (client_secret_post); their secrets come from the environment."""
    monkeypatch.setenv(BASIC_ENV, BASIC_SECRET)
    monkeypatch.setenv(POST_ENV, POST_SECRET)
    clients = tuple(
        ClientSettings(
            client_id=client_id,
            redirect_uris=(LOOPBACK,),
            token_endpoint_auth_method=method,  # type: ignore[arg-type]  # a Literal
            first_party=True,
            client_secret_env=env,
        )
        for client_id, method, env in (
            (BASIC_ID, "client_secret_basic", BASIC_ENV),
            (POST_ID, "client_secret_post", POST_ENV),
        )
    )
    async with running_server(make_settings(clients=clients)) as s:
        yield s


async def code_for(http: httpx.AsyncClient, client_id: str) -> tuple[Authorization, str]:
    auth = Authorization(client_id)
    return auth, (await authorize_code(http, auth))["code"]


def code_form(auth: Authorization, code: str, **extra: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": auth.verifier,
        "redirect_uri": auth.redirect_uri,
        **extra,
    }
    if auth.resource:
        form["resource"] = auth.resource
    return form


async def public_code(server: Server) -> tuple[Authorization, str]:
    client = await register(server.http)
    return await code_for(server.http, client["client_id"])


# --- §3.2: transport ---------------------------------------------------------------------------


async def test_s3_2_get_is_405_and_does_not_consume_the_code(server: Server) -> None:
    """TOKEN-1: GET /token with the grant in the query -> 405 with Allow: POST; the code
    still redeems afterwards."""
    auth, code = await public_code(server)
    params = code_form(auth, code, client_id=auth.client_id)
    response = await server.http.get("/token", params=params)
    assert response.status_code == 405
    assert "POST" in {m.strip() for m in response.headers["allow"].split(",")}
    assert "access_token" not in response.text
    assert (await redeem(server.http, auth, code)).status_code == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_s3_2_other_methods_are_405(server: Server, method: str) -> None:
    """TOKEN-1, ERR-4: only POST is the token endpoint."""
    response = await server.http.request(method, "/token")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


async def test_s3_2_2_charset_parameter_accepted(server: Server) -> None:
    """TOKEN-2: application/x-www-form-urlencoded; charset=UTF-8 is the form content type."""
    auth, code = await public_code(server)
    response = await server.http.post(
        "/token",
        content=urlencode(code_form(auth, code, client_id=auth.client_id)).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("kind", ["json", "multipart", "text", "none", "form-as-json-type"])
async def test_s3_2_2_body_must_be_form_encoded(server: Server, kind: str) -> None:
    """TOKEN-2: a JSON, multipart or untyped body -> 400 JSON invalid_request, and the code
    is not consumed."""
    auth, code = await public_code(server)
    form = code_form(auth, code, client_id=auth.client_id)
    post = server.http.post
    # Browsers prefer HTML; the token endpoint still answers JSON (ERR-1).
    accept = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    if kind == "json":
        response = await post("/token", json=form, headers=accept)
    elif kind == "multipart":
        response = await post("/token", files={k: (None, v) for k, v in form.items()})
    elif kind == "text":
        response = await post(
            "/token", content=urlencode(form), headers={"Content-Type": "text/plain", **accept}
        )
    elif kind == "none":
        response = await post("/token", content=urlencode(form).encode())
    else:
        response = await post(
            "/token", content=urlencode(form), headers={"Content-Type": "application/json"}
        )
    assert_error(response, "invalid_request")
    assert (await redeem(server.http, auth, code)).status_code == 200


# --- §3.2.4: grant types --------------------------------------------------------------------


@pytest.mark.parametrize("grant_type", [None, ""])
async def test_s3_2_4_missing_grant_type_is_invalid_request(
    server: Server, grant_type: str | None
) -> None:
    """TOKEN-3: no grant_type (or an empty one) -> 400 invalid_request."""
    client = await register(server.http)
    form = {"client_id": client["client_id"], "code": "x"}
    if grant_type is not None:
        form["grant_type"] = grant_type
    assert_error(await server.http.post("/token", data=form), "invalid_request")


@pytest.mark.parametrize(
    "grant_type",
    [
        "password",
        "implicit",
        "foo",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "AUTHORIZATION_CODE",
        'x"\\é',
    ],
)
async def test_s3_2_4_unsupported_grant_type(server: Server, grant_type: str) -> None:
    """TOKEN-3: password, implicit, unknown grants -> 400 unsupported_grant_type."""
    client = await register(server.http)
    form = {
        "grant_type": grant_type,
        "client_id": client["client_id"],
        "username": "alice@example.com",
        "password": "password",
    }
    assert_error(await server.http.post("/token", data=form), "unsupported_grant_type")


async def test_s3_2_4_client_without_refresh_grant_is_unauthorized_client(server: Server) -> None:
    """TOKEN-4: a client registered without refresh_token gets none, and refreshing -> 400
    unauthorized_client."""
    client = await register(server.http, grant_types=["authorization_code"])
    tokens = await tokens_for(server.http, Authorization(client["client_id"]))
    assert "refresh_token" not in tokens
    response = await server.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "rt_0123456789abcdef0123_" + "A" * 43,
            "client_id": client["client_id"],
        },
    )
    assert_error(response, "unauthorized_client")


# --- §3.2.3: the success response ------------------------------------------------------------


async def test_s3_2_3_success_shape(server: Server) -> None:
    """TOKEN-5: 200 JSON no-store, Bearer, numeric expires_in, scope, no null members."""
    auth, code = await public_code(server)
    response = await redeem(server.http, auth, code)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int)
    assert body["expires_in"] > 0
    assert set(body["scope"].split()) == set(auth.scope.split())
    assert isinstance(body["access_token"], str)
    assert isinstance(body["refresh_token"], str)
    assert None not in body.values()
    refreshed = await server.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": auth.client_id,
        },
    )
    assert refreshed.status_code == 200
    assert refreshed.headers["cache-control"] == "no-store"
    assert None not in refreshed.json().values()
    assert refreshed.json()["token_type"] == "Bearer"


# --- §2.4.1: client_secret_basic and client_secret_post ---------------------------------------


async def test_s2_4_1_basic_with_form_encoded_reserved_characters(confidential: Server) -> None:
    """TOKEN-7: id and secret with ':', '+', '%', '/' form-encoded before Base64 -> 200."""
    http = confidential.http
    auth, code = await code_for(http, BASIC_ID)
    response = await http.post(
        "/token", data=code_form(auth, code), headers=basic(BASIC_ID, BASIC_SECRET)
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    refreshed = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": response.json()["refresh_token"]},
        headers=basic(BASIC_ID, BASIC_SECRET),
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_s2_4_1_basic_with_matching_client_id_in_body(confidential: Server) -> None:
    """TOKEN-7: Basic plus the same client_id in the body is one method, accepted."""
    http = confidential.http
    auth, code = await code_for(http, BASIC_ID)
    form = code_form(auth, code, client_id=BASIC_ID)
    response = await http.post("/token", data=form, headers=basic(BASIC_ID, BASIC_SECRET))
    assert response.status_code == 200, response.text


async def test_s2_4_1_basic_with_different_client_id_in_body(confidential: Server) -> None:
    """TOKEN-10: Basic for one client and client_id of another -> 400 invalid_request."""
    http = confidential.http
    auth, code = await code_for(http, BASIC_ID)
    form = code_form(auth, code, client_id=POST_ID)
    response = await http.post("/token", data=form, headers=basic(BASIC_ID, BASIC_SECRET))
    assert_error(response, "invalid_request")


@pytest.mark.parametrize("encode", [True, False])
async def test_s2_4_1_generated_credentials_need_no_encoding(server: Server, encode: bool) -> None:
    """TOKEN-7, §21.5: AS-generated id and secret are unreserved, so Basic with or without
    form-encoding (the MCP TS SDK does not encode) -> 200."""
    client = await register(server.http, token_endpoint_auth_method="client_secret_basic")
    auth, code = await code_for(server.http, client["client_id"])
    headers = basic(client["client_id"], client["client_secret"], encode=encode)
    response = await server.http.post("/token", data=code_form(auth, code), headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "authorization",
    [
        "wrong-password",
        "unknown-client",
        "Basic !!!notbase64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b":secret-without-id").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(),
        "Basic " + base64.b64encode(b"app%3Aone:").decode(),
        "Basic",
        "Basic YXBwOm9uZQ",  # bad padding
        "Bearer some-access-token",
        "Digest username=app",
    ],
)
async def test_s3_2_4_bad_basic_is_401_with_basic_challenge(
    confidential: Server, authorization: str
) -> None:
    """TOKEN-8: a wrong password or malformed Basic header -> 401 invalid_client with
    WWW-Authenticate: Basic."""
    http = confidential.http
    auth, code = await code_for(http, BASIC_ID)
    if authorization == "wrong-password":
        headers = basic(BASIC_ID, BASIC_SECRET + "x")
    elif authorization == "unknown-client":
        headers = basic("nobody", BASIC_SECRET)
    else:
        headers = {"Authorization": authorization}
    response = await http.post("/token", data=code_form(auth, code), headers=headers)
    assert_error(response, "invalid_client", 401)
    assert 'realm="' in response.headers["www-authenticate"]
    # The code was not burnt by the failed attempt.
    good = await http.post(
        "/token", data=code_form(auth, code), headers=basic(BASIC_ID, BASIC_SECRET)
    )
    assert good.status_code == 200, good.text


async def test_s2_4_1_client_secret_post(confidential: Server) -> None:
    """TOKEN-9: client_secret_post, right secret -> 200; wrong one -> 401 invalid_client."""
    http = confidential.http
    auth, code = await code_for(http, POST_ID)
    wrong = code_form(auth, code, client_id=POST_ID, client_secret=POST_SECRET + "x")
    assert_error(await http.post("/token", data=wrong), "invalid_client", 401)
    right = code_form(auth, code, client_id=POST_ID, client_secret=POST_SECRET)
    response = await http.post("/token", data=right)
    assert response.status_code == 200, response.text


async def test_s2_4_1_dynamic_client_secret_post(server: Server) -> None:
    """TOKEN-9: a registered client_secret_post client authenticates in the body."""
    client = await register(server.http, token_endpoint_auth_method="client_secret_post")
    auth, code = await code_for(server.http, client["client_id"])
    form = code_form(
        auth, code, client_id=client["client_id"], client_secret=client["client_secret"]
    )
    response = await server.http.post("/token", data=form)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "extra",
    [
        {"client_secret": BASIC_SECRET},
        {"client_secret": BASIC_SECRET, "client_id": BASIC_ID},
        {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": "eyJhbGciOiJub25lIn0.e30.",
        },
    ],
)
async def test_s2_4_two_authentication_methods_refused(
    confidential: Server, extra: dict[str, str]
) -> None:
    """TOKEN-10: Basic and a body credential together -> 400 invalid_request (or 401)."""
    http = confidential.http
    auth, code = await code_for(http, BASIC_ID)
    form = code_form(auth, code, **extra)
    response = await http.post("/token", data=form, headers=basic(BASIC_ID, BASIC_SECRET))
    assert response.status_code in (400, 401)
    assert_error(
        response,
        "invalid_request" if response.status_code == 400 else "invalid_client",
        response.status_code,
    )


async def test_s3_2_1_confidential_client_without_credentials(confidential: Server) -> None:
    """TOKEN-11: a confidential client sending only client_id -> 401 invalid_client."""
    http = confidential.http
    auth, code = await code_for(http, BASIC_ID)
    response = await http.post("/token", data=code_form(auth, code, client_id=BASIC_ID))
    assert_error(response, "invalid_client", 401)


@pytest.mark.parametrize("client_id", ["unknown-client", "x" * 500, "é\"\\'<>", "\t"])
async def test_s3_2_1_unknown_client_id_is_invalid_client(server: Server, client_id: str) -> None:
    """TOKEN-11, ERR-5: an unknown client_id -> 401 invalid_client, input never echoed."""
    auth, code = await public_code(server)
    response = await server.http.post("/token", data=code_form(auth, code, client_id=client_id))
    assert_error(response, "invalid_client", 401)


async def test_s3_2_1_public_client_without_client_id(server: Server) -> None:
    """TOKEN-11: a public client redeeming with neither client_id nor auth -> 400/401."""
    auth, code = await public_code(server)
    response = await server.http.post("/token", data=code_form(auth, code))
    assert response.status_code in (400, 401)
    assert_error(
        response,
        "invalid_request" if response.status_code == 400 else "invalid_client",
        response.status_code,
    )
    assert (await redeem(server.http, auth, code)).status_code == 200


async def test_s2_4_2_basic_client_using_post_is_invalid_client(confidential: Server) -> None:
    """TOKEN-12: a client_secret_basic client using client_secret_post -> invalid_client."""
    http = confidential.http
    auth, code = await code_for(http, BASIC_ID)
    form = code_form(auth, code, client_id=BASIC_ID, client_secret=BASIC_SECRET)
    assert_error(await http.post("/token", data=form), "invalid_client", 401)


async def test_s2_4_2_post_client_using_basic_is_invalid_client(confidential: Server) -> None:
    """TOKEN-12: a client_secret_post client authenticating with Basic -> invalid_client."""
    http = confidential.http
    auth, code = await code_for(http, POST_ID)
    response = await http.post(
        "/token", data=code_form(auth, code), headers=basic(POST_ID, POST_SECRET)
    )
    assert_error(response, "invalid_client", 401)


@pytest.mark.parametrize("how", ["post", "basic"])
async def test_s2_4_2_public_client_sending_a_secret_is_invalid_client(
    server: Server, how: str
) -> None:
    """TOKEN-12: a public client presenting a client_secret -> invalid_client."""
    auth, code = await public_code(server)
    if how == "post":
        form = code_form(auth, code, client_id=auth.client_id, client_secret="guess")
        response = await server.http.post("/token", data=form)
    else:
        headers = basic(auth.client_id, "guess")
        response = await server.http.post("/token", data=code_form(auth, code), headers=headers)
    assert_error(response, "invalid_client", 401)


@pytest.mark.parametrize("name", ["client_secret", "code", "code_verifier", "refresh_token"])
async def test_s2_4_1_credentials_in_the_query_refused(confidential: Server, name: str) -> None:
    """TOKEN-13: a secret (or grant parameter) in the request URI -> 400 invalid_request."""
    http = confidential.http
    auth, code = await code_for(http, POST_ID)
    form = code_form(auth, code, client_id=POST_ID, client_secret=POST_SECRET)
    value = form.get(name, "rt_0123456789abcdef0123_" + "A" * 43)
    response = await http.post("/token", params={name: value}, data=form)
    assert_error(response, "invalid_request")
    assert (await http.post("/token", data=form)).status_code == 200


# --- §3.2, §3.2.4: parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["code", "grant_type", "client_id", "code_verifier", "redirect_uri"]
)
async def test_s3_2_repeated_parameter_is_invalid_request(server: Server, name: str) -> None:
    """TOKEN-16: a defined parameter sent twice (even the same value) -> 400 invalid_request."""
    auth, code = await public_code(server)
    form = code_form(auth, code, client_id=auth.client_id)
    body = urlencode(form) + "&" + urlencode({name: form[name]})
    response = await server.http.post(
        "/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_error(response, "invalid_request")
    assert (await redeem(server.http, auth, code)).status_code == 200


@pytest.mark.parametrize("name", ["code", "code_verifier"])
async def test_s3_2_empty_parameter_is_missing(server: Server, name: str) -> None:
    """TOKEN-16: a parameter with an empty value is treated as missing -> 400 invalid_request
    (or invalid_grant for a missing verifier, PKCE-3)."""
    auth, code = await public_code(server)
    form = {**code_form(auth, code, client_id=auth.client_id), name: ""}
    response = await server.http.post("/token", data=form)
    assert response.status_code == 400
    assert_error(response, "invalid_request" if name == "code" else response.json()["error"])
    assert response.json()["error"] in ("invalid_request", "invalid_grant")


async def test_s3_2_unknown_parameters_ignored(server: Server) -> None:
    """TOKEN-16: unknown parameters (even repeated or empty) are ignored -> 200."""
    auth, code = await public_code(server)
    form = code_form(auth, code, client_id=auth.client_id)
    body = urlencode(form) + "&x_vendor=1&x_vendor=2&empty=&foo"
    response = await server.http.post(
        "/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200, response.text


# --- §7.7: entropy --------------------------------------------------------------------------


async def test_s7_7_tokens_and_codes_are_long_and_distinct(server: Server) -> None:
    """TOKEN-17: codes, access and refresh tokens >= 128 bits, never repeated."""
    http = server.http
    client = await register(http)
    codes, access, refresh = set(), set(), set()
    for _ in range(3):
        auth, code = await code_for(http, client["client_id"])
        codes.add(code)
        tokens = (await redeem(http, auth, code)).json()
        access.add(tokens["access_token"])
        refresh.add(tokens["refresh_token"])
    current = tokens["refresh_token"]
    for _ in range(60):
        response = await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": current,
                "client_id": client["client_id"],
            },
        )
        current = response.json()["refresh_token"]
        refresh.add(current)
        access.add(response.json()["access_token"])
    assert len(codes) == 3
    assert len(access) == len(refresh) == 63
    for value in codes | refresh:
        # <kind>_<shard key>_<secret>: the secret part alone carries >= 128 bits.
        assert re.fullmatch(r"[a-z]+_[0-9a-f]+_[A-Za-z0-9_-]{22,}", value), value


# --- ERR-1/2/3/5 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"grant_type=authorization_code&code=%zz&client_id=%zz",
        b"grant_type=%zz",
        b"%zz",
        b"grant_type=authorization_code&code=%ff%fe&client_id=%ff%fe",
        b"grant_type=%ff%fe",
        b"%ff%fe=%ff",
        b"grant_type=authorization_code&code=\xff\xfe&client_id=\xc3",
        b"grant_type=authorization_code&code=a%00b&client_id=x",
        b"grant_type=authorization_code\x00&client_id=x",
        b"a=1&&&=",
        b"&&&",
        b"=",
        b"grant_type=refresh_token&refresh_token=" + b"%" * 2000 + b"&client_id=x",
        b"grant_type=authorization_code&client_id=" + b"x" * 60_000,
    ],
)
async def test_err_2_malformed_form_bodies_are_400(server: Server, raw: bytes) -> None:
    """ERR-2: %zz, invalid UTF-8, NUL bytes, empty pairs -> 400 (401 only for an unknown
    client), never 500."""
    response = await server.http.post(
        "/token", content=raw, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code in (400, 401), response.text
    assert_error(response, response.json()["error"], response.status_code)


async def test_err_2_invalid_utf8_is_invalid_request(server: Server) -> None:
    """ERR-2: a form that is not UTF-8 (OAuth 2.1 App. B) -> 400 invalid_request."""
    client = await register(server.http)
    body = urlencode({"grant_type": "authorization_code", "client_id": client["client_id"]})
    response = await server.http.post(
        "/token",
        content=body + "&code=%ff%fe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(response, "invalid_request")


@pytest.mark.parametrize("chunked", [False, True])
async def test_err_3_oversized_token_request_is_413(server: Server, chunked: bool) -> None:
    """ERR-3: a body over the limit -> 413 JSON; the server keeps answering."""
    limit = server.settings.limits.max_body_bytes
    body = b"grant_type=authorization_code&pad=" + b"x" * limit

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    response = await server.http.post(
        "/token",
        content=chunks() if chunked else body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    auth, code = await public_code(server)
    assert (await redeem(server.http, auth, code)).status_code == 200


@pytest.mark.parametrize(
    ("target", "content_type"),
    [
        ("/token", "text/plain"),
        ("/token", "multipart/form-data; boundary=x"),
        ("/token?client_secret=x", "application/x-www-form-urlencoded"),
        ("/register", "text/plain"),
    ],
)
async def test_err_1_refused_body_keeps_the_connection_usable(
    server: Server, target: str, content_type: str
) -> None:
    """ERR-1/3: a request refused while its body is still arriving leaves a keep-alive
    connection that answers the next request (no hung connection)."""
    port = int(server.base_url.rsplit(":", 1)[1])
    body = b"grant_type=authorization_code&" + b"x" * 400
    head = (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(head + body[:100])
        received = b""
        # An early answer, if the server gives one, and time to finish that request.
        with trio.move_on_after(0.1):
            while chunk := await stream.receive_some(65536):
                received += chunk
        await stream.send_all(body[100:])
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with trio.fail_after(2):
            while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b"}"):
                chunk = await stream.receive_some(65536)
                assert chunk, received
                received += chunk
    first, second = received.split(b"HTTP/1.1 ")[1:3]
    assert first.startswith(b"400 ")
    assert second.startswith(b"200 ")


async def test_err_5_error_description_never_echoes_input(server: Server) -> None:
    """ERR-5: client_id=é"\\ and friends never come back raw in error_description."""
    client = await register(server.http)
    bad = 'é"\\'
    for form in (
        {"grant_type": "authorization_code", "client_id": bad},
        {"grant_type": bad, "client_id": client["client_id"]},
        {"grant_type": "authorization_code", "client_id": client["client_id"], "code": bad},
        {"grant_type": "refresh_token", "client_id": client["client_id"], "refresh_token": bad},
        {"grant_type": "authorization_code", "client_id": client["client_id"], bad: bad},
    ):
        response = await server.http.post("/token", data=form)
        assert 400 <= response.status_code < 500
        body = response.json()
        assert ERROR_CHARS.fullmatch(body["error"])
        assert ERROR_CHARS.fullmatch(body.get("error_description", "")), body


# --- CORS-2/3 --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/token", "/register"])
async def test_cors_2_preflight_allows_post_with_authorization(server: Server, path: str) -> None:
    """CORS-2: preflight POST with authorization, content-type -> 2xx allowing both, no
    credentials (CORS-3)."""
    response = await server.http.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert 200 <= response.status_code < 300
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert "POST" in methods
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed
    assert "access-control-allow-credentials" not in response.headers


async def test_cors_2_preflight_for_client_configuration(server: Server) -> None:
    """CORS-2: preflight for PUT/DELETE at registration_client_uri -> 2xx allowing them."""
    client = await register(server.http)
    response = await server.http.options(
        "/register/" + client["client_id"],
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert 200 <= response.status_code < 300
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers


async def test_cors_2_actual_responses_carry_allow_origin(server: Server) -> None:
    """CORS-2/3: POST /register and /token (success and error) carry Allow-Origin, never
    Allow-Credentials, and expose WWW-Authenticate."""
    origin = {"Origin": ORIGIN}
    registered = await server.http.post(
        "/register",
        json={"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"},
        headers=origin,
    )
    client = registered.json()
    auth, code = await code_for(server.http, client["client_id"])
    responses = [
        registered,
        await server.http.post(
            "/token", data=code_form(auth, code, client_id=client["client_id"]), headers=origin
        ),
        await server.http.post("/token", data={"grant_type": "foo"}, headers=origin),
        await server.http.post(
            "/token", data=code_form(auth, code), headers={**origin, **basic("x", "y")}
        ),
        await server.http.post("/register", json=[], headers=origin),
    ]
    assert [r.status_code for r in responses] == [201, 200, 400, 401, 400]
    for response in responses:
        assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
        assert "access-control-allow-credentials" not in response.headers
    assert "www-authenticate" in responses[3].headers["access-control-expose-headers"].lower()


async def test_cors_2_preflight_has_no_side_effects(server: Server) -> None:
    """CORS-2: OPTIONS /token needs no client auth and consumes nothing."""
    auth, code = await public_code(server)
    response = await server.http.request(
        "OPTIONS",
        "/token",
        content=urlencode(code_form(auth, code, client_id=auth.client_id)),
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert 200 <= response.status_code < 300
    assert "access_token" not in response.text
    assert (await redeem(server.http, auth, code)).status_code == 200


def test_basic_helper_encodes_like_s2_4_1() -> None:
    """The Basic helper encodes like OAuth 2.1 §2.4.1 (a guard for the tests above)."""
    header = basic("a:b", "c d+/%")["Authorization"]
    assert base64.b64decode(header.split()[1]) == b"a%3Ab:c+d%2B%2F%25"
