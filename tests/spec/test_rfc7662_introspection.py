"""Token introspection (RFC 7662) at POST /introspect: caller authentication, who may see which
token, the members of an active answer, and exactly {"active": false} for everything else."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from typing import Any

import httpx
import jwt
import pytest

from oauthd.settings import Settings
from oauthd.storage import client_shard_path, shard_key_for, tenant_dir
from tests.conftest import ManualClock, Server, running_server
from tests.flow import RESOURCE, Authorization, authorize_code
from tests.spec.test_rfc7009_revocation import (
    CONF,
    CONF_ENV,
    CONF_ID,
    CONF_SECRET,
    OTHER_RESOURCE,
    RS_ENV,
    RS_ID,
    RS_SECRET,
    TTL_S,
    assert_error,
    claims_of,
    confidential_tokens,
    introspect,
    lifecycle_settings,
    other_key,
    public_tokens,
    refresh,
    revoke,
    secret_tokens,
    server_key,
)

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

INACTIVE = {"active": False}
MEMBERS = {"active", "scope", "client_id", "sub", "aud", "iss", "exp", "iat", "token_type"}


@pytest.fixture
async def server(
    make_settings: Callable[..., Settings], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Server]:
    monkeypatch.setenv(CONF_ENV, CONF_SECRET)
    monkeypatch.setenv(RS_ENV, RS_SECRET)
    async with running_server(lifecycle_settings(make_settings), clock) as s:
        yield s


async def as_rs(http: httpx.AsyncClient, token: str) -> Any:
    """Introspection by the resource server registered for RESOURCE."""
    response = await http.post("/introspect", data={"token": token}, auth=(RS_ID, RS_SECRET))
    assert response.status_code == 200, response.text
    return response.json()


# --- §2.1: caller authentication and request errors --------------------------------------------


@pytest.mark.parametrize(
    ("auth", "data", "headers"),
    [
        (None, {}, {}),
        ((CONF_ID, "wrong-secret"), {}, {}),
        (("nobody", "secret"), {}, {}),
        (None, {"client_id": CONF_ID}, {}),
        (None, {}, {"Authorization": "Bearer some-access-token"}),
    ],
)
async def test_s2_1_caller_must_authenticate(
    server: Server,
    auth: tuple[str, str] | None,
    data: dict[str, str],
    headers: dict[str, str],
) -> None:
    """INTRO-1: no, wrong or bearer credentials -> 401 invalid_client with WWW-Authenticate."""
    tokens = await confidential_tokens(server)
    response = await server.http.post(
        "/introspect", data={"token": tokens["access_token"], **data}, auth=auth, headers=headers
    )
    assert_error(response, "invalid_client", 401)
    assert "www-authenticate" in response.headers


async def test_s2_1_public_client_cannot_introspect(server: Server) -> None:
    """INTRO-1 (RFC 7662 §2.1 "MUST also require some form of authorization"): a public
    client_id authenticates nothing -> 401 invalid_client, for its own AT and RT alike."""
    client_id, tokens = await public_tokens(server)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        response = await server.http.post(
            "/introspect", data={"token": token, "client_id": client_id}
        )
        assert_error(response, "invalid_client", 401)
        assert "www-authenticate" in response.headers
        assert "sub" not in response.text


async def test_s2_1_refused_public_caller_spends_no_authentication_budget(server: Server) -> None:
    """INTRO-1, RATE-6: anyone can name a public client at /introspect; those refusals do not
    count as its failed authentications, so it still gets tokens at /token."""
    client_id, tokens = await public_tokens(server)
    limit = server.settings.limits.client_auth_failures.requests
    for _ in range(limit + 1):
        response = await server.http.post(
            "/introspect", data={"token": "x", "client_id": client_id}
        )
        assert_error(response, "invalid_client", 401)
    assert (await refresh(server.http, client_id, tokens["refresh_token"])).status_code == 200


async def test_s2_1_missing_token_is_invalid_request(server: Server) -> None:
    """INTRO-1: no token parameter -> 400 invalid_request."""
    response = await server.http.post("/introspect", auth=(CONF_ID, CONF_SECRET), data={})
    assert_error(response, "invalid_request")


async def test_s2_1_repeated_token_is_invalid_request(server: Server) -> None:
    """INTRO-1 (OAuth 2.1 §3.2): token sent twice -> 400 invalid_request."""
    response = await server.http.post(
        "/introspect",
        content="token=a&token=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(CONF_ID, CONF_SECRET),
    )
    assert_error(response, "invalid_request")


async def test_s2_1_get_is_method_not_allowed(server: Server) -> None:
    """INTRO-1: GET /introspect -> 405."""
    response = await server.http.get("/introspect")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


async def test_s2_1_caller_with_a_secret_is_checked_by_a_read(server: Server) -> None:
    """INTRO-7: a client secret spends nothing, so checking it takes no write lock: the
    resource server introspects while another process holds its shard's write lock."""
    if server.settings.storage.backend == "postgres":
        pytest.skip("SQLite's write lock (BEGIN IMMEDIATE) is what is held here")
    _, tokens = await public_tokens(server)
    assert (await as_rs(server.http, tokens["access_token"]))["active"] is True
    shards = tenant_dir(server.settings.data_dir, "default")
    with closing(sqlite3.connect(client_shard_path(shards, shard_key_for(RS_ID)))) as other:
        other.isolation_level = None  # BEGIN and ROLLBACK as written
        other.execute("BEGIN IMMEDIATE")
        body = await as_rs(server.http, tokens["access_token"])
        other.execute("ROLLBACK")
    assert body["active"] is True


# --- §2.2: active answers ----------------------------------------------------------------------


async def test_s2_2_active_access_token_members(server: Server) -> None:
    """INTRO-2: a valid AT -> 200 JSON, no-store, with exactly the RFC 7662 members,
    consistent with the token response and the JWT claims; never the code_challenge."""
    tokens = await confidential_tokens(server)
    response = await server.http.post(
        "/introspect", data={"token": tokens["access_token"]}, auth=(CONF_ID, CONF_SECRET)
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    claims = claims_of(tokens["access_token"])
    assert set(body) == MEMBERS
    assert body["active"] is True
    assert body["token_type"] == "Bearer"
    assert body["scope"] == tokens["scope"] == claims["scope"]
    assert body["iss"] == server.settings.issuer
    for name in ("client_id", "sub", "aud", "exp", "iat"):
        assert body[name] == claims[name]
    assert body["client_id"] == CONF_ID
    assert body["aud"] == RESOURCE
    assert "code_challenge" not in response.text


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token", "foo"])
async def test_s2_1_refresh_token_introspects_as_refresh_token(
    server: Server, hint: str | None
) -> None:
    """INTRO-5: an RT introspected by its own client -> active with token_type refresh_token;
    the hint, right, wrong or unknown, does not change the answer."""
    client, tokens = await secret_tokens(server)
    extra = {} if hint is None else {"token_type_hint": hint}
    body = await introspect(server.http, client, tokens["refresh_token"], **extra)
    assert set(body) == MEMBERS
    assert body["active"] is True
    assert body["token_type"] == "refresh_token"
    assert body["client_id"] == client.client_id
    assert body["scope"] == tokens["scope"]
    assert body["sub"] == claims_of(tokens["access_token"])["sub"]
    assert body["exp"] > body["iat"]
    at = await introspect(server.http, client, tokens["access_token"], **extra)
    assert at["active"] is True
    assert at["token_type"] == "Bearer"


async def test_s2_2_rotated_refresh_token_is_inactive(server: Server) -> None:
    """INTRO-3: an RT after rotation is no longer active; its successor is."""
    client, tokens = await secret_tokens(server)
    response = await refresh(server.http, client, tokens["refresh_token"])
    assert response.status_code == 200
    assert await introspect(server.http, client, tokens["refresh_token"]) == INACTIVE
    new = response.json()["refresh_token"]
    assert (await introspect(server.http, client, new))["active"] is True


# --- §2.2: inactive answers say nothing more -----------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "rt_0123456789abcdef0123_" + "A" * 43,
        "ac_0123456789abcdef0123_" + "A" * 43,
        "a.b.c",
        "x" * 5000,
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ],
)
async def test_s2_2_garbage_and_unknown_tokens_are_inactive(server: Server, token: str) -> None:
    """INTRO-3: garbage or unknown token -> 200 {"active": false} and no other member."""
    client, _ = await secret_tokens(server)
    assert await introspect(server.http, client, token) == INACTIVE


async def test_s2_2_revoked_tokens_are_inactive(server: Server) -> None:
    """INTRO-3: after /revoke, the AT and RT -> exactly {"active": false}."""
    client, tokens = await secret_tokens(server)
    assert (await revoke(server.http, client, tokens["refresh_token"])).status_code == 200
    assert await introspect(server.http, client, tokens["access_token"]) == INACTIVE
    assert await introspect(server.http, client, tokens["refresh_token"]) == INACTIVE


async def test_s2_2_expired_tokens_are_inactive(server: Server, clock: ManualClock) -> None:
    """INTRO-3: an AT past exp, and an RT past its family's lifetime -> {"active": false}."""
    client, tokens = await secret_tokens(server)
    clock.advance(TTL_S + 1)
    assert await introspect(server.http, client, tokens["access_token"]) == INACTIVE
    assert (await introspect(server.http, client, tokens["refresh_token"]))["active"] is True
    clock.advance(server.settings.tokens.refresh_token_ttl_s)
    assert await introspect(server.http, client, tokens["refresh_token"]) == INACTIVE


def forgeries(settings: Settings, token: str) -> dict[str, str]:
    """Tokens that look like `token` but must not be accepted."""
    header = jwt.get_unverified_header(token)
    claims = claims_of(token)
    kid, key = server_key(settings, token)
    head, payload, signature = token.split(".")
    tampered = jwt.encode({**claims, "scope": "openid admin"}, other_key(), algorithm="ES256")
    now = int(time.time())
    return {
        "alg_none": jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"}),
        "alg_none_with_kid": jwt.encode(
            claims, None, algorithm="none", headers={"kid": kid, "typ": "at+jwt"}
        ),
        "other_key_same_kid": jwt.encode(claims, other_key(), algorithm="ES256", headers=header),
        "tampered_payload": f"{head}.{tampered.split('.')[1]}.{signature}",
        "wrong_issuer": jwt.encode(
            {**claims, "iss": "https://evil.example.com"}, key, algorithm="ES256", headers=header
        ),
        "expired": jwt.encode(
            {**claims, "iat": now - 7200, "exp": now - 3600}, key, algorithm="ES256", headers=header
        ),
        "not_an_access_token": jwt.encode(
            claims, key, algorithm="ES256", headers={"kid": kid, "typ": "JWT"}
        ),
        "jti_not_on_record": jwt.encode(
            {**claims, "jti": "never-issued"}, key, algorithm="ES256", headers=header
        ),
        "other_client_id": jwt.encode(
            {**claims, "client_id": CONF_ID}, key, algorithm="ES256", headers=header
        ),
        "signature_stripped": f"{head}.{payload}.",
    }


async def test_s2_2_forged_access_tokens_are_inactive(server: Server) -> None:
    """INTRO-3 (RFC 8725 §3.1, RFC 9068 §4): alg none, another key, tampered claims, wrong
    issuer, expired, wrong typ, an unrecorded jti -> exactly {"active": false}."""
    client, tokens = await secret_tokens(server)
    for name, forged in forgeries(server.settings, tokens["access_token"]).items():
        assert await introspect(server.http, client, forged) == INACTIVE, name
    assert (await introspect(server.http, client, tokens["access_token"]))["active"] is True


# --- §2.1, §4: who may introspect which token -------------------------------------------------


async def test_s2_2_another_client_learns_nothing(server: Server) -> None:
    """INTRO-4, REVOKE-4: client B introspecting A's AT or RT -> exactly {"active": false},
    the same answer as for garbage; A still sees them active."""
    a, a_tokens = await secret_tokens(server)
    b, _ = await secret_tokens(server)
    for token in (a_tokens["access_token"], a_tokens["refresh_token"]):
        assert await introspect(server.http, b, token) == INACTIVE
        assert (await introspect(server.http, a, token))["active"] is True


async def test_s4_registered_resource_server_introspects_tokens_for_its_resource(
    server: Server,
) -> None:
    """INTRO-4: the client named as RESOURCE's resource server sees tokens whose aud is
    RESOURCE, but not tokens for another resource, nor refresh tokens."""
    _, for_rs = await public_tokens(server)
    body = await as_rs(server.http, for_rs["access_token"])
    assert body["active"] is True
    assert body["aud"] == RESOURCE
    _, elsewhere = await public_tokens(server, resource=OTHER_RESOURCE)
    assert claims_of(elsewhere["access_token"])["aud"] == OTHER_RESOURCE
    assert await as_rs(server.http, elsewhere["access_token"]) == INACTIVE
    _, for_issuer = await public_tokens(server, resource=None)
    assert await as_rs(server.http, for_issuer["access_token"]) == INACTIVE
    assert await as_rs(server.http, for_rs["refresh_token"]) == INACTIVE


# --- INTRO-6: replay and reuse detection end the grant's access tokens ---------------------------


async def test_s2_2_after_refresh_token_reuse_access_tokens_are_inactive(
    server: Server, clock: ManualClock
) -> None:
    """INTRO-6, REFRESH-2: reusing a rotated RT past the grace window revokes the family:
    both access tokens of the grant introspect {"active": false}."""
    client, first = await secret_tokens(server)
    response = await refresh(server.http, client, first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    clock.advance(server.settings.tokens.refresh_grace_s + 1)
    assert_error(await refresh(server.http, client, first["refresh_token"]), "invalid_grant")
    for token in (first["access_token"], second["access_token"], second["refresh_token"]):
        assert await introspect(server.http, client, token) == INACTIVE


async def test_s2_2_after_code_replay_access_tokens_are_inactive(server: Server) -> None:
    """INTRO-6, CODE-2: a second redemption of a code revokes what the first issued."""
    auth = Authorization(CONF_ID)
    code = (await authorize_code(server.http, auth))["code"]
    first = await redeem_as_conf(server.http, auth, code)
    assert first.status_code == 200
    tokens = first.json()
    assert_error(await redeem_as_conf(server.http, auth, code), "invalid_grant")
    assert await introspect(server.http, CONF, tokens["access_token"]) == INACTIVE
    assert await introspect(server.http, CONF, tokens["refresh_token"]) == INACTIVE


async def redeem_as_conf(http: httpx.AsyncClient, auth: Authorization, code: str) -> Any:
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": auth.verifier}
    return await CONF.post(http, "/token", {**form, "resource": RESOURCE})


# --- RFC 8414 §2 and CORS ----------------------------------------------------------------------


async def test_rfc8414_s2_metadata_advertises_introspection(server: Server) -> None:
    """DISC-9, INTRO-1: introspection_endpoint and its auth methods: the token endpoint's,
    except `none` (a public client cannot authenticate, RFC 7662 §2.1)."""
    doc = (await server.http.get("/.well-known/oauth-authorization-server")).json()
    assert doc["introspection_endpoint"] == server.settings.issuer + "/introspect"
    methods = doc["introspection_endpoint_auth_methods_supported"]
    assert "none" not in methods
    assert methods == [m for m in doc["token_endpoint_auth_methods_supported"] if m != "none"]


async def test_cors_preflight_without_credentials(server: Server) -> None:
    """CORS-3: /introspect allows POST from browsers, never with credentials."""
    preflight = await server.http.options(
        "/introspect",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert 200 <= preflight.status_code < 300
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in preflight.headers
