"""Token liveness, one rule for every endpoint: a token is live until its expiry and dead from
that second on (RFC 7519 §4.1.4: "MUST NOT be accepted on or after the expiration time"), and
/token, /introspect and /userinfo draw the line at the same second."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable

import pytest

from oauthd.settings import Settings, TokenSettings
from tests.conftest import ManualClock, Server, running_server
from tests.spec.test_rfc7009_revocation import (
    CONF_ENV,
    CONF_SECRET,
    RS_ENV,
    RS_SECRET,
    assert_error,
    introspect,
    lifecycle_settings,
    refresh,
    secret_tokens,
    userinfo_status,
)

ACCESS_TTL_S = 120
IDLE_S = 300
FAMILY_TTL_S = 600
INACTIVE = {"active": False}


class FrozenClock(ManualClock):
    """A clock that moves only when the test moves it, from a whole second: so "exactly at
    the limit" is a second the server sees, not one that real time has already passed."""

    def __init__(self) -> None:
        super().__init__()
        self.start = float(int(time.time()))

    def now(self) -> float:
        return self.start + self.offset


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def server(
    make_settings: Callable[..., Settings], clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Server]:
    monkeypatch.setenv(CONF_ENV, CONF_SECRET)
    monkeypatch.setenv(RS_ENV, RS_SECRET)
    tokens = TokenSettings(
        access_token_ttl_s=ACCESS_TTL_S,
        refresh_token_idle_s=IDLE_S,
        refresh_token_ttl_s=FAMILY_TTL_S,
    )
    settings = dataclasses.replace(lifecycle_settings(make_settings), tokens=tokens)
    async with running_server(settings, clock) as s:
        yield s


async def test_refresh_token_idle_limit_is_one_second_at_token_and_introspect(
    server: Server, clock: FrozenClock
) -> None:
    """REFRESH-9 (OAuth 2.1 §4.3.3): unused for refresh_token_idle_s, a refresh token is dead:
    at exactly the limit /introspect says inactive and /token says invalid_grant; a second
    earlier both still take it."""
    client, tokens = await secret_tokens(server, resource=None)
    early, early_tokens = await secret_tokens(server, resource=None)
    clock.advance(IDLE_S - 1)
    assert (await introspect(server.http, client, tokens["refresh_token"]))["active"] is True
    assert (await refresh(server.http, early, early_tokens["refresh_token"])).status_code == 200
    clock.advance(1)
    assert await introspect(server.http, client, tokens["refresh_token"]) == INACTIVE
    assert_error(await refresh(server.http, client, tokens["refresh_token"]), "invalid_grant")


async def test_refresh_token_family_limit_is_one_second_at_token_and_introspect(
    server: Server, clock: FrozenClock
) -> None:
    """REFRESH-9: the grant's absolute lifetime ends at the same second everywhere, however
    recently its refresh token was used."""
    client, tokens = await secret_tokens(server, resource=None)
    current = tokens["refresh_token"]
    for _ in range(2):  # used a second before each idle end: the last use at 2 * IDLE_S - 2
        clock.advance(IDLE_S - 1)
        response = await refresh(server.http, client, current)
        assert response.status_code == 200, response.text
        current = response.json()["refresh_token"]
    clock.advance(FAMILY_TTL_S - 2 * (IDLE_S - 1) - 1)
    assert (await introspect(server.http, client, current))["active"] is True
    clock.advance(1)
    assert await introspect(server.http, client, current) == INACTIVE
    assert_error(await refresh(server.http, client, current), "invalid_grant")


async def test_access_token_exp_is_one_second_at_userinfo_and_introspect(
    server: Server, clock: FrozenClock
) -> None:
    """JWTAT-2, INTRO-3, USERINFO-3: an access token is accepted until `exp` and refused from
    `exp` on, by /introspect and /userinfo alike."""
    client, tokens = await secret_tokens(server, resource=None)
    clock.advance(ACCESS_TTL_S - 1)
    assert (await introspect(server.http, client, tokens["access_token"]))["active"] is True
    assert await userinfo_status(server.http, tokens["access_token"]) == 200
    clock.advance(1)
    assert await introspect(server.http, client, tokens["access_token"]) == INACTIVE
    assert await userinfo_status(server.http, tokens["access_token"]) == 401
