"""Registration hygiene over HTTP: the cap on dynamically registered clients, and initial
access tokens for closed deployments (RFC 7591 §3)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import httpx
import pytest

from oauthd.settings import ClientSettings, RegistrationSettings, Settings
from tests.conftest import running_server

BODY = {"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}
TOKEN = "iat-3f9c1e7d2b8a4f60"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_reg_cap_refuses_dynamic_registrations_past_max_clients(
    make_settings: Callable[..., Settings],
) -> None:
    """REG-1, RATE-7: past registration.max_clients, /register answers 503
    temporarily_unavailable with Retry-After (the condition is the server's and clears as
    the janitor deletes unused clients); configured clients do not count."""
    settings = make_settings(
        registration=RegistrationSettings(max_clients=2),
        clients=(ClientSettings("cfg", ("http://127.0.0.1/cb",), "none"),),
    )
    async with running_server(settings) as server:
        for _ in range(2):
            assert (await server.http.post("/register", json=BODY)).status_code == 201
        refused = await server.http.post("/register", json=BODY)
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith("application/json")
        assert refused.json()["error"] == "temporarily_unavailable"
        assert int(refused.headers["retry-after"]) == int(settings.janitor.interval_s)


def closed(make_settings: Callable[..., Settings], registration: RegistrationSettings) -> Settings:
    return make_settings(registration=registration)


async def register_with(http: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await http.post("/register", json=BODY, headers=headers)


def assert_invalid_token(response: httpx.Response, *, challenged: bool) -> None:
    """RFC 7591 §3, RFC 6750 §3.1: 401 invalid_token; the challenge carries the error only
    when a token was presented."""
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert ('error="invalid_token"' in challenge) is challenged


async def test_s3_closed_registration_needs_an_initial_access_token(
    make_settings: Callable[..., Settings],
) -> None:
    """RFC 7591 §3: with initial access tokens configured (as hashes), /register without one
    or with a wrong one is 401 invalid_token; with the right one, 201."""
    settings = closed(
        make_settings, RegistrationSettings(initial_access_token_hashes=(sha256(TOKEN),))
    )
    async with running_server(settings) as server:
        assert_invalid_token(await register_with(server.http, None), challenged=False)
        assert_invalid_token(await register_with(server.http, "wrong"), challenged=True)
        assert_invalid_token(await register_with(server.http, sha256(TOKEN)), challenged=True)
        assert (await register_with(server.http, TOKEN)).status_code == 201


async def test_s3_initial_access_tokens_may_come_from_an_environment_variable(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 7591 §3: every token in the named variable (comma-separated) is accepted."""
    monkeypatch.setenv("TEST_OAUTHD_IATS", f"{TOKEN}, second-token")
    settings = closed(
        make_settings, RegistrationSettings(initial_access_token_env="TEST_OAUTHD_IATS")
    )
    async with running_server(settings) as server:
        assert (await register_with(server.http, TOKEN)).status_code == 201
        assert (await register_with(server.http, "second-token")).status_code == 201
        assert_invalid_token(await register_with(server.http, "third-token"), challenged=True)


async def test_s3_open_registration_ignores_authorization(
    make_settings: Callable[..., Settings],
) -> None:
    """REG-1 [MCP]: without initial access tokens configured, registration stays open."""
    async with running_server(make_settings()) as server:
        assert (await register_with(server.http, None)).status_code == 201
        assert (await register_with(server.http, "anything")).status_code == 201
