"""The userinfo endpoint (OIDC Core §5.3) as a bearer-protected resource (RFC 6750, RFC 9728
§5.1): methods, challenges, audience, scope and the claims each scope releases."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from oauthd.resource import Reply, ResourceConfig, ResourceGuard
from oauthd.settings import Settings
from tests.conftest import ISSUER, ManualClock, Server, running_server
from tests.flow import (
    RESOURCE,
    Authorization,
    authorize_code,
    follow,
    query_of,
    redeem,
    register,
    tokens_for,
)
from tests.interop.test_cli import free_port

PRM_URL = ISSUER + "/.well-known/oauth-protected-resource"
AT_TTL_S = 3600  # TokenSettings.access_token_ttl_s default


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def server(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> AsyncIterator[Server]:
    async with running_server(make_settings(), clock) as s:
        yield s


async def access_token(
    server: Server, scope: str = "openid email", resource: str | None = None
) -> str:
    """An access token for alice; without `resource` it is for the issuer's own resources."""
    client = await register(server.http)
    tokens = await tokens_for(
        server.http, Authorization(client["client_id"], scope=scope, resource=resource)
    )
    token: str = tokens["access_token"]
    return token


async def get(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})


def challenge(response: httpx.Response) -> dict[str, str]:
    """The attributes of a `WWW-Authenticate: Bearer ...` challenge."""
    header = response.headers["www-authenticate"]
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer", header
    return dict(re.findall(r'([a-z_]+)="([^"]*)"', rest))


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    attributes = challenge(response)
    assert attributes["error"] == "invalid_token"
    assert attributes["resource_metadata"] == PRM_URL
    assert response.json()["error"] == "invalid_token"


# --- USERINFO-1/2 --------------------------------------------------------------------------


async def test_s5_3_1_get_and_post_answer_with_sub(server: Server) -> None:
    """USERINFO-1: GET and POST with a Bearer header both answer 200 JSON with sub, no-store."""
    token = await access_token(server)
    headers = {"Authorization": f"Bearer {token}"}
    for response in (
        await server.http.get("/userinfo", headers=headers),
        await server.http.post("/userinfo", headers=headers),
    ):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["cache-control"] == "no-store"
        assert response.json()["sub"]


async def test_s5_3_2_sub_equals_id_token_sub_across_clients(server: Server) -> None:
    """USERINFO-2: sub equals the ID token sub, and is the same via another client (public)."""
    subs = set()
    for _ in range(2):
        client = await register(server.http)
        tokens = await tokens_for(server.http, Authorization(client["client_id"], resource=None))
        id_token = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        info = (await get(server.http, tokens["access_token"])).json()
        assert info["sub"] == id_token["sub"]
        subs.add(info["sub"])
    assert len(subs) == 1


# --- USERINFO-3 / DISC-20: challenges ------------------------------------------------------


async def test_rfc9728_s5_1_no_token_is_401_with_resource_metadata_and_no_error(
    server: Server,
) -> None:
    """DISC-20/USERINFO-3: no credentials: 401 Bearer with realm and resource_metadata, no error."""
    for response in (await server.http.get("/userinfo"), await server.http.post("/userinfo")):
        assert response.status_code == 401
        attributes = challenge(response)
        assert attributes["resource_metadata"] == PRM_URL
        assert "realm" in attributes
        assert "error" not in attributes
        assert response.headers["cache-control"] == "no-store"


async def test_rfc9728_s3_resource_metadata_url_resolves(server: Server) -> None:
    """DISC-20/DISC-18: the challenge's resource_metadata URL answers with resource == issuer."""
    url = challenge(await server.http.get("/userinfo"))["resource_metadata"]
    response = await server.http.get(urlsplit(url).path)
    assert response.status_code == 200
    document = response.json()
    assert document["resource"] == ISSUER
    assert document["authorization_servers"] == [ISSUER]
    assert document["bearer_methods_supported"] == ["header"]
    assert "offline_access" not in document.get("scopes_supported", [])


def forged(token: str) -> str:
    """The same token with alg none and no signature."""
    _, payload, _ = token.split(".")
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    return header.rstrip(b"=").decode() + "." + payload + "."


def resigned_payload(token: str) -> str:
    """The token with an edited payload (sub changed) and its old signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{edited}.{signature}"


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: "garbage", id="garbage"),
        pytest.param(lambda t: t[:-2], id="truncated-signature"),
        pytest.param(lambda t: forged(t), id="alg-none"),
        pytest.param(lambda t: resigned_payload(t), id="edited-payload"),
        pytest.param(lambda t: "a.b.c", id="three-dots"),
        pytest.param(lambda t: "%%%.@@@.!!!", id="bad-base64"),
        pytest.param(lambda t: "W10.W10.W10", id="json-arrays"),
    ],
)
async def test_rfc6750_s3_1_garbage_token_is_invalid_token(
    server: Server, mangle: Callable[[str], str]
) -> None:
    """USERINFO-3: a garbage or tampered token is 401 error="invalid_token", never 500."""
    token = await access_token(server)
    assert_invalid_token(await get(server.http, mangle(token)))


async def test_rfc6750_s3_1_expired_token_is_invalid_token(
    server: Server, clock: ManualClock
) -> None:
    """USERINFO-3: an expired access token is 401 invalid_token."""
    token = await access_token(server)
    clock.advance(AT_TTL_S - 5)
    assert (await get(server.http, token)).status_code == 200
    clock.advance(10)
    assert_invalid_token(await get(server.http, token))


async def test_rfc6750_s3_1_revoked_token_is_invalid_token(server: Server) -> None:
    """USERINFO-3: an access token revoked by a code replay (CODE-2) is 401 invalid_token."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], resource=None)
    code = (await authorize_code(server.http, auth))["code"]
    tokens = (await redeem(server.http, auth, code)).json()
    assert (await get(server.http, tokens["access_token"])).status_code == 200
    assert (await redeem(server.http, auth, code)).status_code == 400
    assert_invalid_token(await get(server.http, tokens["access_token"]))


async def test_rfc6750_s3_basic_credentials_get_a_bearer_challenge(server: Server) -> None:
    """USERINFO-3: Authorization: Basic is answered 401 with a Bearer challenge."""
    response = await server.http.get("/userinfo", auth=("alice@example.com", "password"))
    assert response.status_code == 401
    assert challenge(response)["resource_metadata"] == PRM_URL


# --- USERINFO-4 ----------------------------------------------------------------------------


async def test_rfc6750_s3_1_token_without_openid_is_insufficient_scope(server: Server) -> None:
    """USERINFO-4: a valid AT without openid is 403 error="insufficient_scope", scope="openid"."""
    token = await access_token(server, scope="email")
    response = await get(server.http, token)
    assert response.status_code == 403
    attributes = challenge(response)
    assert attributes["error"] == "insufficient_scope"
    assert attributes["scope"] == "openid"
    assert attributes["resource_metadata"] == PRM_URL


# --- USERINFO-5 ----------------------------------------------------------------------------


async def test_oauth21_s5_1_token_in_query_is_not_accepted(server: Server) -> None:
    """USERINFO-5: GET /userinfo?access_token=... is 401 (tokens never travel in the URI)."""
    token = await access_token(server)
    response = await server.http.get("/userinfo", params={"access_token": token})
    assert response.status_code == 401
    assert "sub" not in response.json()


async def test_rfc6750_s2_token_in_header_and_body_is_invalid_request(server: Server) -> None:
    """USERINFO-5: a token in both the header and the form body is 400 invalid_request."""
    token = await access_token(server)
    response = await server.http.post(
        "/userinfo",
        headers={"Authorization": f"Bearer {token}"},
        data={"access_token": token},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert challenge(response)["error"] == "invalid_request"


async def test_rfc6750_s2_second_token_in_a_body_that_is_not_utf8_is_still_seen(
    server: Server,
) -> None:
    """USERINFO-5: a body the form parser would drop (invalid UTF-8) cannot hide a second token."""
    token = await access_token(server)
    response = await server.http.post(
        "/userinfo",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        content=b"access_token=%ff%fe&x=\xff",
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_rfc6750_s2_token_in_header_and_query_is_invalid_request(server: Server) -> None:
    """USERINFO-5: a token in both the header and the query is 400 invalid_request."""
    token = await access_token(server)
    response = await server.http.get(
        "/userinfo",
        headers={"Authorization": f"Bearer {token}"},
        params={"access_token": token},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --- USERINFO-6 ----------------------------------------------------------------------------


async def test_rfc9700_s2_3_token_for_another_audience_is_invalid_token(server: Server) -> None:
    """USERINFO-6: an AT whose aud is an MCP server, not the issuer, is 401 invalid_token."""
    token = await access_token(server, resource=RESOURCE)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == RESOURCE
    assert_invalid_token(await get(server.http, token))


async def openid_grant_for_resource(server: Server) -> tuple[Authorization, dict[str, Any]]:
    """A grant with `openid` and RESOURCE, its code redeemed for RESOURCE (aud RESOURCE)."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], scope="openid email", resource=RESOURCE)
    tokens = await tokens_for(server.http, auth)
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["aud"] == (
        RESOURCE
    )
    return auth, tokens


async def refreshed(server: Server, auth: Authorization, token: str, **extra: str) -> str:
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": auth.client_id}
    response = await server.http.post("/token", data={**data, **extra})
    assert response.status_code == 200, response.text
    access: str = response.json()["access_token"]
    return access


async def test_rfc8707_s2_2_refresh_without_resource_works_at_userinfo(server: Server) -> None:
    """USERINFO-6, RES-3: an AT issued without `resource` to a grant that includes `openid`
    (a refresh by requests-oauthlib or openid-client) is accepted at /userinfo, and still at
    the grant's resource."""
    auth, tokens = await openid_grant_for_resource(server)
    token = await refreshed(server, auth, tokens["refresh_token"])
    response = await get(server.http, token)
    assert response.status_code == 200, response.text
    aud = jwt.decode(token, options={"verify_signature": False})["aud"]
    assert set(aud) == {RESOURCE, server.settings.issuer}


async def test_rfc8707_s2_2_token_for_a_named_resource_stays_restricted(server: Server) -> None:
    """USERINFO-6 (MCP audience binding): an AT requested with `resource` on refresh is for
    that resource only, and /userinfo refuses it."""
    auth, tokens = await openid_grant_for_resource(server)
    token = await refreshed(server, auth, tokens["refresh_token"], resource=RESOURCE)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == RESOURCE
    assert_invalid_token(await get(server.http, token))


async def test_rfc8707_s2_2_code_redeemed_without_resource_works_at_userinfo(
    server: Server,
) -> None:
    """USERINFO-6: a code for a grant with a resource, redeemed without `resource`, gives an
    AT for the grant's resources and the issuer, accepted at /userinfo."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], scope="openid", resource=RESOURCE)
    code = (await authorize_code(server.http, auth))["code"]
    auth.resource = None  # not sent at the token endpoint
    response = await redeem(server.http, auth, code)
    assert response.status_code == 200, response.text
    assert (await get(server.http, response.json()["access_token"])).status_code == 200


# --- USERINFO-7 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "present", "absent"),
    [
        ("openid", set(), {"email", "email_verified", "name"}),
        ("openid email", {"email", "email_verified"}, {"name"}),
        ("openid profile", {"name"}, {"email", "email_verified"}),
        ("openid profile email", {"name", "email", "email_verified"}, set()),
    ],
)
async def test_oidc_s5_4_claims_follow_scopes(
    server: Server, scope: str, present: set[str], absent: set[str]
) -> None:
    """USERINFO-7: profile releases name, email releases email and email_verified; no more."""
    info = (await get(server.http, await access_token(server, scope=scope))).json()
    assert present <= info.keys()
    assert not absent & info.keys()
    if "email" in present:
        assert info["email"] == "alice@example.com"
        assert isinstance(info["email_verified"], bool)
    if "name" in present:
        assert info["name"] == "Alice"


async def test_rfc9728_s5_1_challenge_names_the_served_document_for_a_path_issuer(
    make_settings: Callable[..., Settings],
) -> None:
    """RFC 9728 §3.1, §5.1: for issuer https://h/t1 the challenge's resource_metadata is
    https://h/.well-known/oauth-protected-resource/t1, and that document is served there."""
    async with running_server(make_settings(issuer=ISSUER + "/t1")) as s:
        response = await s.http.get("/t1/userinfo")
        assert response.status_code == 401
        found = re.search(r'resource_metadata="([^"]+)"', response.headers["www-authenticate"])
        assert found
        url = found.group(1)
        assert url == ISSUER + "/.well-known/oauth-protected-resource/t1"
        document = await s.http.get(urlsplit(url).path)
        assert document.status_code == 200
        assert document.json()["resource"] == ISSUER + "/t1"


@pytest.mark.parametrize(
    ("issuer", "path"),
    [
        (ISSUER, "/.well-known/oauth-protected-resource/userinfo"),
        (ISSUER + "/t1", "/.well-known/oauth-protected-resource/t1/userinfo"),
    ],
    ids=["root-issuer", "path-issuer"],
)
async def test_rfc9728_s3_1_userinfo_metadata_is_served_at_its_path_suffixed_url(
    make_settings: Callable[..., Settings], issuer: str, path: str
) -> None:
    """DISC-19: GET /.well-known/oauth-protected-resource/<path> -> 200, resource = ISS/<path>."""
    async with running_server(make_settings(issuer=issuer)) as s:
        response = await s.http.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        document = response.json()
        assert document["resource"] == issuer + "/userinfo"  # RFC 9728 §3.3: identical
        assert document["authorization_servers"] == [issuer]
        assert document["bearer_methods_supported"] == ["header"]
        assert "offline_access" not in document["scopes_supported"]


async def test_rfc9728_s3_1_unknown_path_suffix_is_404(server: Server) -> None:
    """DISC-19: an unknown path suffix -> 404, never the root document with another resource."""
    for path in ("/token", "/userinfo/x", "/mcp"):
        response = await server.http.get("/.well-known/oauth-protected-resource" + path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


# --- RFC 9728 §3.3: the resource identifiers the documents advertise are accepted ---------------


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def advertised_resource(http: httpx.AsyncClient, document: str) -> str:
    """The `resource` an RFC 9728 client finds after /userinfo refused it: from the
    challenge's `resource_metadata` (§5.1), or from the document at the well-known URL derived
    from the /userinfo URL itself (§3.1, as MCP clients try first)."""
    refused = await http.get("/userinfo")
    assert refused.status_code == 401
    url = (
        challenge(refused)["resource_metadata"]
        if document == "challenge"
        else ISSUER + "/.well-known/oauth-protected-resource/userinfo"
    )
    response = await http.get(urlsplit(url).path)
    assert response.status_code == 200, response.text
    resource: str = response.json()["resource"]
    return resource


@pytest.mark.parametrize(
    ("document", "expected"),
    [("challenge", ISSUER), ("path-suffixed", ISSUER + "/userinfo")],
)
async def test_rfc9728_s5_1_follow_the_challenge_to_a_token_userinfo_accepts(
    server: Server, document: str, expected: str
) -> None:
    """DISC-18/19: 401 -> resource_metadata -> PRM `resource` -> /authorize and /token with
    resource=<it> and openid -> a token /userinfo accepts (RFC 8707 §2, RFC 9728 §3.3)."""
    resource = await advertised_resource(server.http, document)
    assert resource == expected
    client = await register(server.http)
    auth = Authorization(client["client_id"], scope="openid email", resource=resource)
    tokens = await tokens_for(server.http, auth)
    assert claims_of(tokens["access_token"])["aud"] == ISSUER  # the one spelling of /userinfo
    response = await get(server.http, tokens["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "alice@example.com"


@pytest.mark.parametrize("resource", [ISSUER + "/", ISSUER + "/userinfo"])
async def test_rfc8707_s2_2_refresh_names_the_userinfo_resource(
    server: Server, resource: str
) -> None:
    """RFC 9728 §3.3, RES-4: an openid grant made without `resource` may name /userinfo's identifier
    on refresh (root slash tolerated); the token is for /userinfo only."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], scope="openid email", resource=None)
    tokens = await tokens_for(server.http, auth)
    token = await refreshed(server, auth, tokens["refresh_token"], resource=resource)
    assert claims_of(token)["aud"] == ISSUER
    assert (await get(server.http, token)).status_code == 200


async def test_rfc8707_s2_2_userinfo_token_carries_only_the_oidc_scopes(server: Server) -> None:
    """RFC 9728 §3.3: with resource=<issuer>/userinfo, `mcp:tools` is granted but left out of the
    token for /userinfo (the response's `scope` says so, OAuth 2.1 §3.2.3); the same grant
    still gets an MCP token with it when the MCP resource is named."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], scope="openid email mcp:tools", resource=None)
    own = ISSUER + "/userinfo"
    params = [*auth.params.items(), ("resource", own), ("resource", RESOURCE)]
    result = query_of(await follow(server.http, await server.http.get("/authorize", params=params)))
    response = await redeem(server.http, auth, result["code"], resource=own)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["scope"] == "openid email"
    claims = claims_of(tokens["access_token"])
    assert (claims["aud"], claims["scope"]) == (ISSUER, "openid email")
    assert (await get(server.http, tokens["access_token"])).status_code == 200
    mcp = claims_of(await refreshed(server, auth, tokens["refresh_token"], resource=RESOURCE))
    assert (mcp["aud"], mcp["scope"]) == (RESOURCE, "openid email mcp:tools")


async def test_rfc8707_s2_userinfo_token_is_refused_by_an_mcp_resource(
    make_settings: Callable[..., Settings],
) -> None:
    """RFC 8707 §2 (MCP audience binding): a token for /userinfo is 401 invalid_token at an MCP
    server guarded by oauthd.resource, which validates `aud` (RFC 9068 §4)."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    settings = make_settings(issuer=issuer, listen=f"127.0.0.1:{port}")
    config = ResourceConfig(issuer=issuer, resource=RESOURCE, mode="local")
    async with running_server(settings) as s, ResourceGuard(config) as guard:
        client = await register(s.http)
        auth = Authorization(client["client_id"], scope="openid mcp:tools", resource=issuer)
        token = (await tokens_for(s.http, auth))["access_token"]
        reply = await guard.check(f"Bearer {token}", None, "/mcp")
        assert isinstance(reply, Reply)
        assert reply.status == 401
        assert json.loads(reply.body)["error"] == "invalid_token"


@pytest.mark.parametrize("resource", [ISSUER, ISSUER + "/userinfo"])
async def test_rfc8707_s2_userinfo_resource_without_openid_is_invalid_target(
    server: Server, resource: str
) -> None:
    """RFC 9728 §3.3: /userinfo is a resource for the openid scope only: named without it, at
    /authorize or on refresh, it is invalid_target."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], scope="email", resource=resource)
    result = await authorize_code(server.http, auth)
    assert result["error"] == "invalid_target"
    assert result["state"] == auth.state
    auth = Authorization(client["client_id"], scope="openid email", resource=None)
    tokens = await tokens_for(server.http, auth)
    data = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": auth.client_id,
        "scope": "email",
        "resource": resource,
    }
    response = await server.http.post("/token", data=data)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_target"
