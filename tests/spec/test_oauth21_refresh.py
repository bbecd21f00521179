"""The refresh_token grant (OAuth 2.1 §4.3; RFC 9700 §4.14): rotation, replay detection with a
short grace window, binding to the client, scope and resource narrowing, lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest

from oauthd.settings import ResourceSettings, Settings, TokenSettings
from tests.conftest import ManualClock, Server, running_server
from tests.flow import RESOURCE, Authorization, authorize_code, register, tokens_for

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

OTHER_RESOURCE = "https://other.example.com/mcp"
UNGRANTED_RESOURCE = "https://third.example.com/mcp"
GRACE_S = 5
FAMILY_TTL_S = 600
IDLE_S = 300


@pytest.fixture
async def server(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> AsyncIterator[Server]:
    settings = make_settings(
        resources=(
            ResourceSettings(RESOURCE, ("mcp:tools",)),
            ResourceSettings(OTHER_RESOURCE, ("mcp:tools",)),
            ResourceSettings(UNGRANTED_RESOURCE, ("mcp:tools",)),
        ),
        tokens=TokenSettings(
            refresh_grace_s=GRACE_S, refresh_token_ttl_s=FAMILY_TTL_S, refresh_token_idle_s=IDLE_S
        ),
    )
    async with running_server(settings, clock) as s:
        yield s


def assert_error(response: httpx.Response, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == code


async def refresh(
    http: httpx.AsyncClient, client_id: str | None, token: str, **extra: Any
) -> httpx.Response:
    data: dict[str, Any] = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    if client_id is not None:
        data["client_id"] = client_id
    return await http.post("/token", data=data)


async def userinfo_status(http: httpx.AsyncClient, access_token: str) -> int:
    response = await http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def public_tokens(server: Server, **fields: Any) -> tuple[Authorization, dict[str, Any]]:
    client = await register(server.http)
    auth = Authorization(client["client_id"], **fields)
    return auth, await tokens_for(server.http, auth)


# --- REFRESH-1: rotation ---------------------------------------------------------------------


async def test_s4_3_1_public_client_refresh_rotates(server: Server) -> None:
    """REFRESH-1: a public client's refresh returns a new refresh_token, no-store."""
    auth, tokens = await public_tokens(server)
    response = await refresh(server.http, auth.client_id, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    assert body["scope"] == tokens["scope"]
    assert isinstance(body["expires_in"], int)


async def test_oidc_s11_no_refresh_token_without_the_grant(server: Server) -> None:
    """OIDC-7: a client not registered for refresh_token gets no refresh token."""
    client = await register(server.http, grant_types=["authorization_code"])
    tokens = await tokens_for(server.http, Authorization(client["client_id"]))
    assert "refresh_token" not in tokens
    assert None not in tokens.values()


# --- REFRESH-2: replay -----------------------------------------------------------------------


async def test_s4_3_1_reuse_after_grace_revokes_the_family(
    server: Server, clock: ManualClock
) -> None:
    """REFRESH-2: reusing a rotated RT after the grace window is invalid_grant and revokes the
    successor and every access token of the family."""
    auth, tokens = await public_tokens(server, resource=None)
    first = (await refresh(server.http, auth.client_id, tokens["refresh_token"])).json()
    assert await userinfo_status(server.http, first["access_token"]) == 200
    clock.advance(GRACE_S + 1)
    assert_error(
        await refresh(server.http, auth.client_id, tokens["refresh_token"]), "invalid_grant"
    )
    assert_error(
        await refresh(server.http, auth.client_id, first["refresh_token"]), "invalid_grant"
    )
    assert await userinfo_status(server.http, first["access_token"]) == 401
    assert await userinfo_status(server.http, tokens["access_token"]) == 401


async def test_s4_3_1_replay_inside_grace_returns_the_same_pair(
    server: Server, clock: ManualClock
) -> None:
    """REFRESH-2 (grace window, docs/architecture.md "Tokens"): a retry within the window gets the
    identical pair and revokes nothing."""
    auth, tokens = await public_tokens(server, resource=None)
    first = await refresh(server.http, auth.client_id, tokens["refresh_token"])
    clock.advance(GRACE_S - 1)
    again = await refresh(server.http, auth.client_id, tokens["refresh_token"])
    assert again.status_code == 200, again.text
    assert again.headers["cache-control"] == "no-store"
    assert again.json() == first.json()
    successor = first.json()
    assert await userinfo_status(server.http, successor["access_token"]) == 200
    assert (
        await refresh(server.http, auth.client_id, successor["refresh_token"])
    ).status_code == 200


async def test_s4_3_1_replay_of_an_older_token_after_two_rotations(
    server: Server, clock: ManualClock
) -> None:
    """REFRESH-2: the first RT of a chain replayed late revokes the newest one too."""
    auth, tokens = await public_tokens(server)
    rt = tokens["refresh_token"]
    chain = [rt]
    for _ in range(3):
        clock.advance(GRACE_S + 1)
        response = await refresh(server.http, auth.client_id, chain[-1])
        assert response.status_code == 200, response.text
        chain.append(response.json()["refresh_token"])
    assert_error(await refresh(server.http, auth.client_id, chain[1]), "invalid_grant")
    assert_error(await refresh(server.http, auth.client_id, chain[-1]), "invalid_grant")


# --- REFRESH-3/4: bound to the client --------------------------------------------------------


async def test_s4_3_refresh_token_of_client_a_used_by_b_is_invalid_grant(server: Server) -> None:
    """REFRESH-3: A's RT presented by public B is 400 invalid_grant; A's RT still works."""
    auth, tokens = await public_tokens(server)
    other = await register(server.http)
    assert_error(
        await refresh(server.http, other["client_id"], tokens["refresh_token"]), "invalid_grant"
    )
    assert (await refresh(server.http, auth.client_id, tokens["refresh_token"])).status_code == 200


async def test_s4_3_refresh_token_of_client_a_used_by_authenticated_b(server: Server) -> None:
    """REFRESH-3: a confidential B that authenticates correctly cannot use A's RT."""
    auth, tokens = await public_tokens(server)
    other = await register(server.http, token_endpoint_auth_method="client_secret_basic")
    response = await server.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(other["client_id"], other["client_secret"]),
    )
    assert_error(response, "invalid_grant")
    assert (await refresh(server.http, auth.client_id, tokens["refresh_token"])).status_code == 200


async def test_s4_3_1_confidential_client_must_authenticate_to_refresh(server: Server) -> None:
    """REFRESH-4: a confidential client refreshing with only client_id is 401 invalid_client."""
    client = await register(server.http, token_endpoint_auth_method="client_secret_basic")
    auth = Authorization(client["client_id"])
    code = (await authorize_code(server.http, auth))["code"]
    secret = (client["client_id"], client["client_secret"])
    issued = await server.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri,
        },
        auth=secret,
    )
    assert issued.status_code == 200, issued.text
    rt = issued.json()["refresh_token"]
    assert_error(await refresh(server.http, client["client_id"], rt), "invalid_client", 401)
    wrong = await server.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": rt},
        auth=(client["client_id"], "not-the-secret"),
    )
    assert_error(wrong, "invalid_client", 401)
    # The failed attempts did not spend or revoke it.
    ok = await server.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": rt}, auth=secret
    )
    assert ok.status_code == 200, ok.text


# --- REFRESH-5/6: scope --------------------------------------------------------------------


async def test_s4_3_1_scope_omitted_keeps_the_granted_scope(server: Server) -> None:
    """REFRESH-5: without scope, the new access token has the originally granted scope."""
    auth, tokens = await public_tokens(server, scope="openid email mcp:tools")
    body = (await refresh(server.http, auth.client_id, tokens["refresh_token"])).json()
    assert body["scope"] == "openid email mcp:tools"
    assert claims_of(body["access_token"])["scope"] == "openid email mcp:tools"


async def test_s4_3_1_down_scoping_narrows_and_the_new_rt_keeps_the_full_scope(
    server: Server,
) -> None:
    """REFRESH-5/6: a subset narrows the AT; the rotated RT still carries the full scope."""
    auth, tokens = await public_tokens(server, scope="openid email mcp:tools")
    narrowed = await refresh(
        server.http, auth.client_id, tokens["refresh_token"], scope="mcp:tools"
    )
    assert narrowed.status_code == 200, narrowed.text
    body = narrowed.json()
    assert body["scope"] == "mcp:tools"
    assert claims_of(body["access_token"])["scope"] == "mcp:tools"
    assert "id_token" not in body  # no openid in the narrowed scope
    full = (await refresh(server.http, auth.client_id, body["refresh_token"])).json()
    assert full["scope"] == "openid email mcp:tools"
    assert claims_of(full["access_token"])["scope"] == "openid email mcp:tools"


async def test_s4_3_1_wider_scope_is_invalid_scope(server: Server) -> None:
    """REFRESH-5: a scope not originally granted is 400 invalid_scope; the RT is not spent."""
    auth, tokens = await public_tokens(server, scope="openid")
    assert_error(
        await refresh(server.http, auth.client_id, tokens["refresh_token"], scope="openid email"),
        "invalid_scope",
    )
    assert (await refresh(server.http, auth.client_id, tokens["refresh_token"])).status_code == 200


# --- REFRESH-7: resource ---------------------------------------------------------------------


class TwoResources(Authorization):
    """An authorization request naming RESOURCE and OTHER_RESOURCE."""

    @property
    def params(self) -> list[tuple[str, str]]:  # type: ignore[override]  # repeated resource
        params = dict(super().params)
        params.pop("resource", None)
        return [*params.items(), ("resource", RESOURCE), ("resource", OTHER_RESOURCE)]


async def test_rfc8707_s2_2_refresh_narrows_the_audience(server: Server) -> None:
    """REFRESH-7: a refresh naming one granted resource gets an AT for that audience only."""
    client = await register(server.http)
    auth = TwoResources(client["client_id"], resource=None)
    tokens = await tokens_for(server.http, auth)
    # No resource named: both granted ones, and /userinfo's (the issuer) since openid is granted.
    granted = [RESOURCE, OTHER_RESOURCE, server.settings.issuer]
    assert sorted(claims_of(tokens["access_token"])["aud"]) == sorted(granted)
    rt = tokens["refresh_token"]
    for resource in (OTHER_RESOURCE, RESOURCE):
        response = await refresh(server.http, auth.client_id, rt, resource=resource)
        assert response.status_code == 200, response.text
        assert claims_of(response.json()["access_token"])["aud"] == resource
        rt = response.json()["refresh_token"]


@pytest.mark.parametrize(
    "resource",
    [
        UNGRANTED_RESOURCE,
        "https://evil.example/",
        "mcp.example.com",
        "/mcp",
        "https://mcp.example.com/mcp#x",
        "https://[::1/mcp",
    ],
)
async def test_rfc8707_s2_2_refresh_with_ungranted_resource_is_invalid_target(
    server: Server, resource: str
) -> None:
    """REFRESH-7: a resource never granted is 400 invalid_target; the RT is not spent."""
    auth, tokens = await public_tokens(server)
    assert_error(
        await refresh(server.http, auth.client_id, tokens["refresh_token"], resource=resource),
        "invalid_target",
    )
    assert (await refresh(server.http, auth.client_id, tokens["refresh_token"])).status_code == 200


# --- REFRESH-8: garbage ----------------------------------------------------------------------


def flip(value: str, index: int) -> str:
    return value[:index] + ("A" if value[index] != "A" else "B") + value[index + 1 :]


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda rt: "garbage", id="random-word"),
        pytest.param(lambda rt: flip(rt, -1), id="flipped-secret"),
        pytest.param(lambda rt: flip(rt, 5), id="flipped-shard"),
        pytest.param(lambda rt: rt[:-1], id="truncated"),
        pytest.param(lambda rt: rt + "A", id="extended"),
        pytest.param(lambda rt: "ac" + rt[2:], id="as-a-code"),
        pytest.param(lambda rt: rt * 50, id="huge"),
        pytest.param(lambda rt: rt + 'é"\\', id="non-ascii"),
        pytest.param(
            lambda rt: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl", id="jwt-shaped"
        ),
    ],
)
async def test_s4_3_1_garbage_refresh_token_is_invalid_grant_never_500(
    server: Server, mangle: Callable[[str], str]
) -> None:
    """REFRESH-8: a garbage or tampered RT is 400 invalid_grant, never 500."""
    auth, tokens = await public_tokens(server)
    assert_error(
        await refresh(server.http, auth.client_id, mangle(tokens["refresh_token"])),
        "invalid_grant",
    )
    assert (await refresh(server.http, auth.client_id, tokens["refresh_token"])).status_code == 200


async def test_s4_3_1_access_token_as_refresh_token_is_invalid_grant(server: Server) -> None:
    """REFRESH-8: an access token is not a refresh token."""
    auth, tokens = await public_tokens(server)
    assert_error(
        await refresh(server.http, auth.client_id, tokens["access_token"]), "invalid_grant"
    )


# --- REFRESH-9: lifetime ---------------------------------------------------------------------


async def test_s4_3_3_family_expires_at_its_absolute_lifetime(
    server: Server, clock: ManualClock
) -> None:
    """REFRESH-9: rotation does not extend the family past refresh_token_ttl_s."""
    auth, tokens = await public_tokens(server)
    clock.advance(IDLE_S - 10)
    first = await refresh(server.http, auth.client_id, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    clock.advance(IDLE_S - 1)  # used again a second before it idles out, near the family end
    rotated = await refresh(server.http, auth.client_id, first.json()["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    clock.advance(11)
    assert_error(
        await refresh(server.http, auth.client_id, rotated.json()["refresh_token"]),
        "invalid_grant",
    )


async def test_s4_3_3_an_unused_refresh_token_expires_after_its_idle_lifetime(
    server: Server, clock: ManualClock
) -> None:
    """REFRESH-9: a refresh token not used for refresh_token_idle_s is invalid_grant."""
    auth, tokens = await public_tokens(server)
    clock.advance(IDLE_S + 1)
    assert_error(
        await refresh(server.http, auth.client_id, tokens["refresh_token"]), "invalid_grant"
    )
