"""RFC 7591: dynamic client registration at POST /register, as MCP clients use it (REG-1..16)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.flow import LOOPBACK, Authorization, tokens_for

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

# A public P-256 point (RFC 7518 §6.2.1), for a private_key_jwt registration.
EC_X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
EC_Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
MCP_BODY: dict[str, Any] = {
    "redirect_uris": ["http://127.0.0.1:33418/callback"],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "client_name": "mcp-test",
}
UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")
# RFC 6749 §5.2: error and error_description use %x20-21 / %x23-5B / %x5D-7E only.
ERROR_CHARS = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


async def post(server: Server, body: Any, **kwargs: Any) -> httpx.Response:
    if "content" in kwargs:
        return await server.http.post("/register", **kwargs)
    return await server.http.post("/register", json=body, **kwargs)


def assert_error(response: httpx.Response, *codes: str, status: int = 400) -> None:
    """A JSON error (RFC 7591 §3.2.2) with one of `codes`, never HTML, never a 500."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] in codes, body
    assert ERROR_CHARS.fullmatch(body.get("error_description", ""))


# --- §3.1, §3.2.1: a successful registration --------------------------------------------------


async def test_s3_2_1_mcp_registration_is_201_echoing_metadata(server: Server) -> None:
    """REG-1: open registration -> 201 JSON with client_id and every registered member echoed."""
    response = await post(server, MCP_BODY)
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert isinstance(body["client_id"], str)
    assert body["client_id"]
    for name, value in MCP_BODY.items():
        assert body[name] == value, name
    assert isinstance(body.get("client_id_issued_at", 0), int)
    assert None not in body.values()


async def test_s3_2_1_public_client_gets_no_secret(server: Server) -> None:
    """REG-2: token_endpoint_auth_method none -> no client_secret, no client_secret_expires_at."""
    body = (await post(server, MCP_BODY)).json()
    assert "client_secret" not in body
    assert "client_secret_expires_at" not in body


async def test_s3_2_1_public_client_redeems_with_client_id_only(server: Server) -> None:
    """REG-2: the public client gets tokens at /token with only its client_id."""
    client = (await post(server, {**MCP_BODY, "redirect_uris": [LOOPBACK]})).json()
    tokens = await tokens_for(server.http, Authorization(client["client_id"]))
    assert tokens["token_type"] == "Bearer"


async def test_s2_omitted_auth_method_defaults_to_client_secret_basic(server: Server) -> None:
    """REG-3: method omitted -> client_secret_basic echoed, with a secret that never expires."""
    body = {k: v for k, v in MCP_BODY.items() if k != "token_endpoint_auth_method"}
    response = await post(server, body)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    registered = response.json()
    assert registered["token_endpoint_auth_method"] == "client_secret_basic"
    assert len(registered["client_secret"]) >= 22
    assert registered["client_secret_expires_at"] == 0


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_s3_2_1_secret_methods_get_a_secret(server: Server, method: str) -> None:
    """REG-3: a secret-based method -> client_secret (>= 128 bits) and client_secret_expires_at."""
    registered = (await post(server, {**MCP_BODY, "token_endpoint_auth_method": method})).json()
    assert registered["token_endpoint_auth_method"] == method
    assert UNRESERVED.fullmatch(registered["client_secret"])
    assert len(registered["client_secret"]) >= 22
    assert registered["client_secret_expires_at"] == 0


async def test_s2_only_redirect_uris_gets_the_defaults(server: Server) -> None:
    """REG-9: only redirect_uris -> 201, grant_types authorization_code, response_types code."""
    response = await post(server, {"redirect_uris": ["https://app.example/cb"]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert "authorization_code" in body["grant_types"]
    assert body["response_types"] == ["code"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert "client_name" not in body


# --- §2: redirect URIs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost:8080/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:9/cb",
        "https://app.example/cb",
        "https://app.example/cb?x=1",
    ],
)
async def test_s2_loopback_http_and_https_redirects_accepted(server: Server, uri: str) -> None:
    """REG-4: loopback http (any of localhost, 127.0.0.1, [::1]) and https -> 201."""
    response = await post(server, {**MCP_BODY, "redirect_uris": [uri]})
    assert response.status_code == 201, response.text
    assert response.json()["redirect_uris"] == [uri]


@pytest.mark.parametrize(
    "uri",
    [
        "http://app.example/cb",  # REG-4: http, not loopback
        "http://127.0.0.1.nip.io/cb",
        "javascript:alert(1)",  # REG-5
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "about:blank",
        "https://app.example/cb#frag",  # REG-6
        "https://app.example/cb#",
        "/cb",
        "not a url",
        "",
        " https://app.example/cb",
        "https://app.example/cb ",
        "https://app.example/c\nb",
        "myapp:/cb",  # REG-7: private-use scheme that is not a reverse domain name
        "https://user:pw@app.example/cb",
        "https:///cb",
    ],
)
async def test_s2_bad_redirect_uri_is_invalid_redirect_uri(server: Server, uri: str) -> None:
    """REG-4..7: non-loopback http, bad schemes, fragments, relative -> invalid_redirect_uri."""
    response = await post(server, {**MCP_BODY, "redirect_uris": [uri]})
    assert_error(response, "invalid_redirect_uri")


async def test_s2_one_bad_redirect_among_good_ones_fails(server: Server) -> None:
    """REG-4: every redirect URI is checked, not only the first."""
    uris = ["http://127.0.0.1/cb", "http://evil.example/cb"]
    assert_error(await post(server, {**MCP_BODY, "redirect_uris": uris}), "invalid_redirect_uri")


async def test_s2_reverse_dns_private_use_scheme_for_native_client(server: Server) -> None:
    """REG-7: com.example.app:/oauth2redirect for a public native client -> 201."""
    body = {
        **MCP_BODY,
        "application_type": "native",
        "redirect_uris": ["com.example.app:/oauth2redirect"],
    }
    response = await post(server, body)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "redirect_uris",
    [None, [], "https://app.example/cb", [5], [["https://app.example/cb"]], {"a": 1}],
    ids=["missing", "empty", "string", "number", "nested", "object"],
)
async def test_s2_redirect_uris_missing_or_not_an_array(server: Server, redirect_uris: Any) -> None:
    """REG-8: authorization_code without a redirect_uris array of strings -> 400."""
    body = {k: v for k, v in MCP_BODY.items() if k != "redirect_uris"}
    if redirect_uris is not None:
        body["redirect_uris"] = redirect_uris
    assert_error(await post(server, body), "invalid_redirect_uri", "invalid_client_metadata")


# --- §2, §2.1: grant types, response types, authentication methods ------------------------------


@pytest.mark.parametrize(
    "members",
    [
        {"grant_types": ["implicit"], "response_types": ["token"]},
        {"grant_types": ["authorization_code", "implicit"]},
        {"grant_types": ["authorization_code", "password"]},
        {"grant_types": ["password"], "response_types": []},
        {"response_types": ["token"]},
        {"response_types": ["code", "token"]},
        {"response_types": ["id_token"]},
        {"response_types": ["code id_token"]},
        {"grant_types": ["refresh_token"]},
        {"grant_types": ["refresh_token"], "response_types": []},
        {"grant_types": ["authorization_code"], "response_types": []},
        {"grant_types": []},
        {"grant_types": ["client_credentials"], "response_types": []},
        {"grant_types": ["urn:example:foo"]},
    ],
)
async def test_s2_1_unsafe_or_inconsistent_grants_refused(
    server: Server, members: dict[str, Any]
) -> None:
    """REG-10: implicit, password, token, inconsistent grants -> invalid_client_metadata."""
    response = await post(server, {**MCP_BODY, **members})
    assert_error(response, "invalid_client_metadata")


@pytest.mark.parametrize(
    "method", ["foo", "client_secret_jwt", "private_key_jwt", "tls_client_auth", "NONE", ""]
)
async def test_s2_unknown_auth_method_refused(server: Server, method: str) -> None:
    """REG-11: a method not in token_endpoint_auth_methods_supported -> invalid_client_metadata."""
    response = await post(server, {**MCP_BODY, "token_endpoint_auth_method": method})
    if method == "":
        # An empty string is the member left out: the default applies (RFC 7591 §2).
        assert response.status_code in (201, 400)
        if response.status_code == 400:
            assert_error(response, "invalid_client_metadata")
        return
    assert_error(response, "invalid_client_metadata")


async def test_s2_supported_auth_methods_match_discovery(server: Server) -> None:
    """REG-11: every advertised token_endpoint_auth_method can be registered."""
    meta = (await server.http.get("/.well-known/oauth-authorization-server")).json()
    # private_key_jwt needs the client's keys (REG-11): one public EC key.
    jwk = {"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y}
    keys = {"private_key_jwt": {"jwks": {"keys": [jwk]}}}
    for method in meta["token_endpoint_auth_methods_supported"]:
        body = {**MCP_BODY, "token_endpoint_auth_method": method, **keys.get(method, {})}
        response = await post(server, body)
        assert response.status_code == 201, (method, response.text)


async def test_s2_public_client_credentials_client_refused(server: Server) -> None:
    """REG-10: client_credentials for a public client -> invalid_client_metadata."""
    body = {
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "none",
    }
    assert_error(await post(server, body), "invalid_client_metadata")


# --- §3.1: unknown members, OIDC application_type ------------------------------------------------


async def test_s3_1_unknown_members_are_ignored(server: Server) -> None:
    """REG-12: unknown members (x_vendor, software_statement, jwks_uri-less extras) -> 201."""
    body = {
        **MCP_BODY,
        "x_vendor": 1,
        "software_statement": "eyJhbGciOiJub25lIn0.e30.",
        "post_logout_redirect_uris": ["http://127.0.0.1/out"],
        "nested": {"deep": [1, 2, {"x": None}]},
    }
    response = await post(server, body)
    assert response.status_code == 201, response.text
    assert "x_vendor" not in response.json()


@pytest.mark.parametrize(
    ("application_type", "uri"),
    [
        (None, "http://127.0.0.1:33418/callback"),
        (None, "http://localhost:33418/callback"),
        ("native", "http://127.0.0.1/callback"),
        ("native", "http://localhost/callback"),
        ("web", "https://app.example/cb"),
        ("web", "http://localhost:3000/cb"),
    ],
)
async def test_s3_1_application_type_with_loopback_and_https(
    server: Server, application_type: str | None, uri: str
) -> None:
    """REG-13: application_type omitted/native with loopback, web with https or localhost -> 201."""
    body: dict[str, Any] = {**MCP_BODY, "redirect_uris": [uri]}
    if application_type is not None:
        body["application_type"] = application_type
    response = await post(server, body)
    assert response.status_code == 201, response.text


async def test_s3_1_unknown_application_type_refused(server: Server) -> None:
    """REG-13: application_type other than web or native -> invalid_client_metadata."""
    response = await post(server, {**MCP_BODY, "application_type": "toaster"})
    assert_error(response, "invalid_client_metadata")


# --- §3.2.2: malformed requests are 400 JSON, never 500 --------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"redirect_uris":',
        b"",
        b"null",
        b"[]",
        b'["https://app.example/cb"]',
        b'"https://app.example/cb"',
        b"42",
        b"true",
        b"{'redirect_uris': []}",
        b'{"redirect_uris":["http://127.0.0.1/cb"]}garbage',
        b"\xff\xfe\x00{",
        b'{"client_name":"\xff"}',
        b"\x00",
        b"[" * 50_000,
        b'{"a":' * 10_000,
        b"%zz",
    ],
    ids=[
        "truncated",
        "empty",
        "null",
        "array",
        "array-of-uris",
        "string",
        "number",
        "bool",
        "single-quotes",
        "trailing-garbage",
        "utf16-garbage",
        "invalid-utf8",
        "nul",
        "deep-arrays",
        "deep-objects",
        "percent",
    ],
)
async def test_s3_2_2_malformed_json_is_invalid_client_metadata(server: Server, raw: bytes) -> None:
    """REG-14, ERR-2: malformed JSON or a non-object -> 400 JSON invalid_client_metadata."""
    response = await post(server, None, content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, "invalid_client_metadata")


@pytest.mark.parametrize(
    "members",
    [
        {"client_name": 5},
        {"client_name": ["a"]},
        {"client_name": {"en": "x"}},
        {"scope": ["openid"]},
        {"scope": 1},
        {"token_endpoint_auth_method": ["none"]},
        {"token_endpoint_auth_method": 1},
        {"grant_types": "authorization_code"},
        {"grant_types": [1]},
        {"response_types": "code"},
        {"contacts": "admin@example.com"},
        {"contacts": [1]},
        {"client_uri": 5},
        {"logo_uri": ["https://app.example/logo.png"]},
        {"application_type": 1},
        {"software_id": {}},
        {"software_version": 1.5},
    ],
)
async def test_s3_2_2_wrong_member_types_are_invalid_client_metadata(
    server: Server, members: dict[str, Any]
) -> None:
    """REG-14: members of the wrong JSON type -> 400 invalid_client_metadata."""
    assert_error(await post(server, {**MCP_BODY, **members}), "invalid_client_metadata")


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", None],
)
async def test_s3_1_body_must_be_json(server: Server, content_type: str | None) -> None:
    """REG-14: a non-JSON content type -> 400 JSON invalid_client_metadata, never 415 HTML."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = await post(
        server,
        None,
        content=b"redirect_uris=https%3A%2F%2Fapp.example%2Fcb",
        headers={**headers, "Accept": "text/html,application/json;q=0.9"},
    )
    assert_error(response, "invalid_client_metadata")


async def test_s3_1_json_with_charset_parameter_accepted(server: Server) -> None:
    """REG-14: Content-Type application/json; charset=utf-8 is JSON."""
    response = await post(
        server,
        None,
        content=json.dumps(MCP_BODY).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text


async def test_s3_1_get_register_is_405(server: Server) -> None:
    """ERR-4: GET /register -> 405 with Allow: POST."""
    response = await server.http.get("/register")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


# --- §5, RFC 9700 §4.15: self-asserted metadata ----------------------------------------------


@pytest.mark.parametrize(
    "members",
    [
        {"client_name": "x" * 10_000},
        {"client_name": "bad\x00name"},
        {"client_name": "line\nbreak"},
        {"client_uri": "javascript:alert(1)"},
        {"client_uri": "http://app.example/"},
        {"logo_uri": "data:image/png;base64,AAAA"},
        {"tos_uri": "javascript:alert(1)"},
        {"policy_uri": "file:///etc/passwd"},
        {"client_uri": "https://" + "a" * 5000 + ".example/"},
    ],
)
async def test_s5_unsafe_self_asserted_metadata_refused(
    server: Server, members: dict[str, Any]
) -> None:
    """REG-15: huge or control-character names and non-https links -> invalid_client_metadata."""
    assert_error(await post(server, {**MCP_BODY, **members}), "invalid_client_metadata")


async def test_s5_html_in_client_name_is_stored_verbatim(server: Server) -> None:
    """REG-15: HTML in client_name is data (rendered escaped elsewhere), echoed as sent."""
    name = "<img src=x onerror=alert(1)> Ünïcode"
    response = await post(server, {**MCP_BODY, "client_name": name})
    assert response.status_code == 201
    assert response.json()["client_name"] == name


async def test_s5_https_links_are_echoed(server: Server) -> None:
    """REG-15: https client_uri, logo_uri, tos_uri and policy_uri are registered and echoed."""
    links = {
        "client_uri": "https://app.example/",
        "logo_uri": "https://app.example/logo.png",
        "tos_uri": "https://app.example/tos",
        "policy_uri": "https://app.example/privacy",
    }
    response = await post(server, {**MCP_BODY, **links})
    assert response.status_code == 201
    assert {k: response.json()[k] for k in links} == links


async def test_s3_2_1_client_supplied_client_id_ignored(server: Server) -> None:
    """REG-15: the server chooses client_id; one in the request is ignored."""
    first = (await post(server, {**MCP_BODY, "client_id": "chosen-by-me"})).json()
    second = (await post(server, {**MCP_BODY, "client_id": first["client_id"]})).json()
    assert first["client_id"] != "chosen-by-me"
    assert second["client_id"] != first["client_id"]


async def test_s3_2_1_client_supplied_secret_ignored(server: Server) -> None:
    """REG-15: the server chooses client_secret and its expiry; sent values are ignored."""
    body = {
        **MCP_BODY,
        "token_endpoint_auth_method": "client_secret_post",
        "client_secret": "weak",
        "client_secret_expires_at": 1,
        "registration_access_token": "mine",
    }
    registered = (await post(server, body)).json()
    assert registered["client_secret"] != "weak"
    assert registered["client_secret_expires_at"] == 0
    assert registered["registration_access_token"] != "mine"


# --- §2 scope ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["openid bogus", "bogus", 'openid "quoted"', "openid\\x"])
async def test_s2_scope_with_unknown_values_refused(server: Server, scope: str) -> None:
    """REG-16: a scope naming values this server does not support -> invalid_client_metadata."""
    assert_error(await post(server, {**MCP_BODY, "scope": scope}), "invalid_client_metadata")


async def test_s2_known_scope_registered_and_echoed(server: Server) -> None:
    """REG-16: a scope of known values is registered and echoed."""
    response = await post(server, {**MCP_BODY, "scope": "openid email mcp:tools"})
    assert response.status_code == 201
    assert set(response.json()["scope"].split()) == {"openid", "email", "mcp:tools"}


# --- OAuth 2.1 §7.7, §21.5: identifiers and secrets ------------------------------------------


async def test_s7_7_ids_and_secrets_are_unreserved_and_unguessable(server: Server) -> None:
    """TOKEN-17, REG-3: client_id and secret: unreserved characters, >= 128 bits, distinct."""
    ids, secrets = set(), set()
    for _ in range(24):
        body = (
            await post(server, {**MCP_BODY, "token_endpoint_auth_method": "client_secret_basic"})
        ).json()
        for value in (body["client_id"], body["client_secret"]):
            assert UNRESERVED.fullmatch(value), value
            assert len(value) >= 22  # base64url: 22 characters carry 132 bits
        ids.add(body["client_id"])
        secrets.add(body["client_secret"])
    assert len(ids) == len(secrets) == 24


# --- ERR-1/3/5 ---------------------------------------------------------------------------------


async def test_err_3_oversized_registration_is_413(server: Server) -> None:
    """ERR-3: a body over the limit -> 413 JSON, and the server still answers."""
    limit = server.settings.limits.max_body_bytes
    body = {**MCP_BODY, "x_pad": "x" * (limit + 10)}
    response = await post(server, body)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    assert (await post(server, MCP_BODY)).status_code == 201


async def test_err_3_oversized_chunked_registration_is_413(server: Server) -> None:
    """ERR-3: a chunked body (no Content-Length) over the limit -> 413, not 500."""
    limit = server.settings.limits.max_body_bytes

    async def chunks() -> Any:
        yield b'{"x_pad":"'
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    response = await post(
        server, None, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")


async def test_err_5_error_description_never_echoes_input(server: Server) -> None:
    """ERR-5: error_description keeps to the RFC 6749 §5.2 characters, whatever the input."""
    bad = 'é"\\<x>'
    for members in (
        {"redirect_uris": [bad]},
        {"scope": bad},
        {"client_name": 5, "x": bad},
        {"token_endpoint_auth_method": bad},
        {"grant_types": [bad]},
        {"application_type": bad},
    ):
        response = await post(server, {**MCP_BODY, **members})
        assert response.status_code == 400, members
        assert ERROR_CHARS.fullmatch(response.json().get("error_description", ""))


@pytest.mark.parametrize("member", ["client_uri", "logo_uri", "tos_uri", "policy_uri"])
async def test_s3_2_2_an_unparsable_link_is_invalid_client_metadata(
    server: Server, member: str
) -> None:
    """REG-14: a URL Python cannot even split (an unclosed IPv6 bracket) is a 400, never a 500."""
    response = await server.http.post(
        "/register", json={"redirect_uris": [LOOPBACK], member: "https://[x"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


def client_shard_files(server: Server) -> list[str]:
    return sorted(p.name for p in (server.settings.data_dir / "default").glob("clients/??/*"))


@pytest.mark.parametrize(
    "members",
    [
        {"client_name": "\ud800"},
        {"software_id": "a\udfffb"},
        {"contacts": ["ops\ud800@app.example"]},
        {"redirect_uris": ["http://127.0.0.1/cb\udc00"]},
        {"scope": "openid\ud800"},
    ],
)
async def test_s3_2_2_unencodable_text_is_invalid_client_metadata(
    server: Server, members: dict[str, Any]
) -> None:
    """REG-14, ERR-2: a lone surrogate (JSON "\\ud800") is not text: 400
    invalid_client_metadata, never a 500, and no shard is left on disk."""
    before = client_shard_files(server)
    raw = json.dumps({**MCP_BODY, **members}).encode()  # ensure_ascii: "\ud800" escapes
    response = await post(server, None, content=raw, headers={"content-type": "application/json"})
    assert_error(response, "invalid_client_metadata", "invalid_redirect_uri")
    assert client_shard_files(server) == before
    assert (await post(server, MCP_BODY)).status_code == 201  # the Directory still answers


async def test_s2_1_client_credentials_client_needs_no_response_types(server: Server) -> None:
    """REG-10, RFC 7591 §2.1: grant_types client_credentials alone, response_types omitted ->
    201 with response_types [] (the default code would be inconsistent with the grants)."""
    body = {
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    response = await post(server, body)
    assert response.status_code == 201, response.text
    assert response.json()["response_types"] == []
    assert response.json()["grant_types"] == ["client_credentials"]
