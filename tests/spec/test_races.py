"""Concurrent use of one credential (OAuth 2.1 §4.1.3, §4.3.1): the client's actor orders the
requests, so a code is redeemed once and a refresh token rotates into one successor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio
import trio.lowlevel

from oauthd.settings import ActorSettings, Settings, TokenSettings
from tests.conftest import ManualClock, Server, running_server
from tests.flow import Authorization, authorize_code, redeem, register, tokens_for

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

N = 50
GRACE_S = 5


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(
    params=[
        pytest.param(ActorSettings(), id="default-actors"),
        # Actors evicted as soon as they idle and on every spawn past two: the races then also
        # cross actor restarts, which must not let a second instance see stale state.
        pytest.param(ActorSettings(max_live=2, idle_timeout_s=0.01), id="evicting-actors"),
    ]
)
async def server(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], clock: ManualClock
) -> AsyncIterator[Server]:
    settings = make_settings(tokens=TokenSettings(refresh_grace_s=GRACE_S), actors=request.param)
    async with running_server(settings, clock) as s:
        yield s


async def all_at_once(n: int, send: Callable[[], Any]) -> list[httpx.Response]:
    """`n` copies of one request in flight together, each on its own connection."""
    responses: list[httpx.Response] = []
    start = trio.Event()

    async def one() -> None:
        await start.wait()
        responses.append(await send())

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
        await trio.lowlevel.checkpoint()  # let every task reach the gate
        start.set()
    return responses


@pytest.fixture
async def racer(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose pool holds a connection per racer, so requests really overlap."""
    limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30) as http:
        yield http


async def refresh(http: httpx.AsyncClient, client_id: str, token: str) -> httpx.Response:
    return await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id},
    )


async def test_s4_1_3_concurrent_redemptions_of_one_code_yield_one_token_set(
    server: Server, racer: httpx.AsyncClient
) -> None:
    """CODE-1: 50 concurrent redemptions of one code: exactly one 200, the rest invalid_grant."""
    client = await register(server.http)
    auth = Authorization(client["client_id"])
    code = (await authorize_code(server.http, auth))["code"]
    responses = await all_at_once(N, lambda: redeem(racer, auth, code))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * (N - 1), statuses
    assert {r.json()["error"] for r in responses if r.status_code == 400} == {"invalid_grant"}


async def test_s4_3_1_concurrent_refreshes_yield_one_successor(
    server: Server, racer: httpx.AsyncClient, clock: ManualClock
) -> None:
    """REFRESH-1/2: 50 concurrent refreshes with one RT: every 200 carries the same pair (grace
    replays), and exactly one successor lives afterwards."""
    client = await register(server.http)
    auth = Authorization(client["client_id"], resource=None)
    tokens = await tokens_for(server.http, auth)
    responses = await all_at_once(
        N, lambda: refresh(racer, auth.client_id, tokens["refresh_token"])
    )
    assert [r.status_code for r in responses] == [200] * N, [r.text for r in responses]
    pairs = {(r.json()["access_token"], r.json()["refresh_token"]) for r in responses}
    assert len(pairs) == 1
    ((_, successor),) = pairs
    # Past the grace window the original is spent; the successor is the one live token.
    clock.advance(GRACE_S + 1)
    following = await refresh(server.http, auth.client_id, successor)
    assert following.status_code == 200, following.text
    info = await server.http.get(
        "/userinfo", headers={"Authorization": f"Bearer {following.json()['access_token']}"}
    )
    assert info.status_code == 200
    # And replaying the original now revokes that one family, the successor's line included.
    replay = await refresh(server.http, auth.client_id, tokens["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    spent = await refresh(server.http, auth.client_id, following.json()["refresh_token"])
    assert spent.json()["error"] == "invalid_grant"


async def test_s4_3_1_concurrent_refreshes_by_two_clients_do_not_interfere(
    server: Server, racer: httpx.AsyncClient
) -> None:
    """REFRESH-3: two clients racing their own refresh tokens each get one successor."""
    holders = []
    for _ in range(2):
        client = await register(server.http)
        auth = Authorization(client["client_id"])
        holders.append((auth.client_id, (await tokens_for(server.http, auth))["refresh_token"]))
    sends = iter([holders[i % 2] for i in range(N)])
    responses = await all_at_once(N, lambda: refresh(racer, *next(sends)))
    assert [r.status_code for r in responses] == [200] * N
    assert len({r.json()["refresh_token"] for r in responses}) == 2
