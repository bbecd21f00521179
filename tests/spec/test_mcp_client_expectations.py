"""What MCP clients need of the authorization server (RES-4, REG-3/13), where no other spec
test already pins it: the root-URL `resource` with or without its trailing slash, and
registration bodies as the SDKs send them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest

from oauthd.settings import ResourceSettings, Settings
from tests.conftest import running_server
from tests.flow import Authorization, authorize_code, redeem, register


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        ("https://mcp.example.com", "https://mcp.example.com/"),
        ("https://mcp.example.com/", "https://mcp.example.com"),
        ("https://mcp.example.com", "HTTPS://MCP.example.com/"),
    ],
)
async def test_res_4_root_resource_with_or_without_slash_is_one_audience(
    make_settings: Callable[..., Settings], configured: str, sent: str
) -> None:
    """RES-4: a root resource is accepted with or without its lone "/" (TS SDK sends
    URL.href) at /authorize and /token; the token's aud is the configured spelling."""
    settings = make_settings(resources=(ResourceSettings(configured, ("mcp:tools",)),))
    async with running_server(settings) as server:
        client = await register(server.http)
        auth = Authorization(client["client_id"], scope="mcp:tools", resource=sent)
        result = await authorize_code(server.http, auth)
        response = await redeem(server.http, auth, result["code"])
        assert response.status_code == 200, response.text
        claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
        assert claims["aud"] == configured


@pytest.mark.parametrize(
    "redirect_uri",
    ["http://127.0.0.1:33418/callback", "http://localhost/cb", "https://app.example/cb"],
)
async def test_reg_13_registration_as_the_python_sdk_sends_it(
    make_settings: Callable[..., Settings], redirect_uri: str
) -> None:
    """REG-13, REG-3: no application_type and no token_endpoint_auth_method, loopback or https
    redirect -> 201 echoing what was registered, with the secret the method needs."""
    body: dict[str, Any] = {
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "mcp-sdk",
        "scope": "mcp:tools offline_access",
    }
    async with running_server(make_settings()) as server:
        response = await server.http.post("/register", json=body)
        assert response.status_code == 201, response.text
        echoed = response.json()
        assert {k: echoed[k] for k in body} == body
        assert echoed["token_endpoint_auth_method"] == "client_secret_basic"
        assert echoed["application_type"] == "web"
        assert echoed["client_secret"]
        assert echoed["client_secret_expires_at"] == 0
