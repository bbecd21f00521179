"""Both HTTP engines (`[server] engine`), over real sockets: the flows that matter most (the
code flow with refresh, the device flow, discovery and JWKS) behave the same on each. The
rest of the spec suite runs on the native engine, the default."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from oauthd.settings import ServerSettings, Settings
from tests.conftest import ISSUER, Server, running_server
from tests.flow import Authorization, refresh, register, secure_cookies_on_loopback, tokens_for
from tests.spec.test_rfc8628_device import decide, device_client, poll, started

ENGINES = ["native", "hypercorn"]


@pytest.fixture(params=ENGINES)
async def engine_server(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[Server]:
    settings = make_settings(server=ServerSettings(engine=request.param))
    async with running_server(settings) as server:
        secure_cookies_on_loopback(server.http)
        yield server


async def test_code_flow_and_refresh(engine_server: Server) -> None:
    """OAuth 2.1 §4.1, §4.3: a code flow, then a refresh that rotates the refresh token."""
    http = engine_server.http
    client = await register(http)
    tokens = await tokens_for(http, Authorization(client["client_id"]))
    assert tokens["token_type"] == "Bearer"
    refreshed = await refresh(http, client["client_id"], tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]


async def test_device_flow(engine_server: Server) -> None:
    """RFC 8628 §3: authorize on a second device, poll, get tokens."""
    http = engine_server.http
    client = await device_client(http)
    device = await started(http, client)
    pending = await poll(http, client, device["device_code"])
    assert pending.json()["error"] == "authorization_pending"
    await decide(http, device["user_code"])
    granted = await poll(http, client, device["device_code"])
    assert granted.status_code == 200, granted.text
    assert "access_token" in granted.json()


async def test_discovery_and_jwks(engine_server: Server) -> None:
    """RFC 8414 §3, RFC 7517 §5: the metadata names the issuer and a JWKS with keys."""
    http = engine_server.http
    metadata = await http.get("/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200
    assert metadata.json()["issuer"] == ISSUER
    jwks = await http.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.json()["keys"]
    assert "server" not in jwks.headers
