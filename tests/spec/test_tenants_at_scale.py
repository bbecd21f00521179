"""Path tenants at scale, over HTTP against a real running oauthd (issue 16): tenants load
lazily, so startup does no work per tenant and a request touches only its own tenant; and an
idle tenant's key rotation catches up when it is next activated, before it signs anything
(docs/architecture.md "Tenants", "Tokens": a signing key moves published -> active -> retired)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx

from oauthd.actors.registry import AddTenant
from oauthd.settings import Settings
from tests.conftest import ManualClock, running_server
from tests.spec.test_tenants import SETTINGS, registry

DAY_S = 86_400
MACHINE = SETTINGS + "[registration]\nallow_client_credentials = true\n"


def header_of(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[0]
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return header


async def machine_token(http: httpx.AsyncClient, tenant: str, client: dict[str, Any]) -> str:
    response = await http.post(
        f"/t/{tenant}/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_startup_and_a_tenants_requests_touch_no_other_tenant(
    make_settings: Callable[..., Settings],
) -> None:
    """No work per idle tenant: a server over a registry of tenants starts without making their
    directories, and serving one tenant makes only that tenant's."""
    settings = make_settings()
    async with registry(settings) as ask:
        for i in range(20):
            await ask(AddTenant(f"idle-{i}", "", SETTINGS))
    async with running_server(settings) as server:
        assert (await server.http.get("/healthz")).status_code == 200
        # the registry's own files (its WAL while a reader has it open), and no tenant's
        names = {p.name for p in settings.data_dir.iterdir()}
        assert {n for n in names if not n.startswith("registry.sqlite")} == {"default"}
        response = await server.http.get("/t/idle-3/.well-known/openid-configuration")
        assert response.status_code == 200
        tenants = {p.name for p in settings.data_dir.iterdir() if p.name.startswith("idle-")}
        assert tenants == {"idle-3"}


async def test_an_idle_tenants_key_rotation_catches_up_on_its_next_activation(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """A tenant idle past its signing key's active time signs its next token with the successor,
    and the JWKS still publishes the retired key (keys.retain_s) for tokens it signed."""
    settings = make_settings()
    async with registry(settings) as ask:
        await ask(AddTenant("acme", "", MACHINE))
    async with running_server(settings, clock) as server:
        response = await server.http.post(
            "/t/acme/register",
            json={
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic",
            },
        )
        assert response.status_code == 201, response.text
        client = response.json()
        first = header_of(await machine_token(server.http, "acme", client))["kid"]
    clock.advance(settings.keys.active_s + DAY_S)  # idle, no process running its key schedule
    async with running_server(settings, clock) as server:
        token = await machine_token(server.http, "acme", client)
        jwks = (await server.http.get("/t/acme/.well-known/jwks.json")).json()
    kid = header_of(token)["kid"]
    assert kid != first
    assert {kid, first} <= {k["kid"] for k in jwks["keys"]}
