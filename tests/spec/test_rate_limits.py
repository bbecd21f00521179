"""Rate limits (RATE-1..7) over HTTP: a burst past a limit gets 429 with
Retry-After, another client or address is unaffected, and the limit recovers as the clock
moves. Other client addresses are made by a trusted proxy's X-Forwarded-For."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from oauthd.settings import LimitSettings, Rate, Settings
from tests.conftest import ManualClock, Server, running_server
from tests.flow import ALICE, Authorization, authorize_code, form_field, redeem, register
from tests.spec.test_races import all_at_once

PROXY = ("127.0.0.1/32",)  # the tests' peer address, trusted as a reverse proxy
ONE = {"X-Forwarded-For": "198.51.100.1"}
OTHER = {"X-Forwarded-For": "203.0.113.9"}


@asynccontextmanager
async def limited(
    make_settings: Callable[..., Settings], clock: ManualClock, **rates: Any
) -> AsyncIterator[Server]:
    limits = LimitSettings(trusted_proxies=PROXY, **rates)
    async with running_server(make_settings(limits=limits), clock) as server:
        yield server


def assert_throttled_json(response: httpx.Response) -> int:
    """RATE-7: 429, a JSON OAuth error, and Retry-After in whole seconds."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "temporarily_unavailable"
    retry_after = int(response.headers["retry-after"])
    assert retry_after > 0
    return retry_after


def basic(client: dict[str, Any], secret: str | None = None) -> dict[str, str]:
    raw = f"{client['client_id']}:{secret or client['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def machine(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.post(
        "/register",
        json={
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
            "scope": "mcp:tools",
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def client_token(http: httpx.AsyncClient, client: dict[str, Any]) -> httpx.Response:
    return await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client)
    )


# --- RATE-1: /register per IP ------------------------------------------------------------------


async def test_rate_1_registrations_per_ip_get_429_then_recover(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-1, RATE-7: past N registrations per IP per window -> 429 JSON with Retry-After;
    other IPs are unaffected; one more after Retry-After, the whole burst after the window."""
    async with limited(make_settings, clock, register_per_ip=Rate(3, 60)) as server:
        body = {"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}
        for _ in range(3):
            assert (await server.http.post("/register", json=body, headers=ONE)).status_code == 201
        blocked = await server.http.post("/register", json=body, headers=ONE)
        assert assert_throttled_json(blocked) == 20  # one registration every 60/3 s
        assert (await server.http.post("/register", json=body, headers=OTHER)).status_code == 201
        clock.advance(20)
        assert (await server.http.post("/register", json=body, headers=ONE)).status_code == 201
        assert (await server.http.post("/register", json=body, headers=ONE)).status_code == 429
        clock.advance(61)
        for _ in range(3):
            assert (await server.http.post("/register", json=body, headers=ONE)).status_code == 201


async def test_rate_1_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-1: by default the peer address is the client; a made-up X-Forwarded-For per
    request does not buy a fresh budget."""
    limits = LimitSettings(register_per_ip=Rate(2, 60))
    async with running_server(make_settings(limits=limits), clock) as server:
        body = {"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}
        codes = [
            (
                await server.http.post(
                    "/register", json=body, headers={"X-Forwarded-For": f"192.0.2.{i}"}
                )
            ).status_code
            for i in range(3)
        ]
        assert codes == [201, 201, 429]


# --- RATE-6: /token per IP ---------------------------------------------------------------------


async def test_rate_6_token_requests_per_ip_get_429_then_recover(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-6, RATE-7: /token is throttled per client IP, not in one bucket for everyone."""
    async with limited(make_settings, clock, token_per_ip=Rate(3, 30)) as server:
        client = await machine(server.http)
        for _ in range(3):
            response = await server.http.post(
                "/token",
                data={"grant_type": "client_credentials"},
                headers={**basic(client), **ONE},
            )
            assert response.status_code == 200, response.text
        blocked = await server.http.post(
            "/token", data={"grant_type": "client_credentials"}, headers={**basic(client), **ONE}
        )
        assert assert_throttled_json(blocked) == 10
        other = await server.http.post(
            "/token", data={"grant_type": "client_credentials"}, headers={**basic(client), **OTHER}
        )
        assert other.status_code == 200
        clock.advance(31)
        again = await server.http.post(
            "/token", data={"grant_type": "client_credentials"}, headers={**basic(client), **ONE}
        )
        assert again.status_code == 200


# --- RATE-3: failed client authentication per client_id ---------------------------------------


async def test_rate_3_failed_client_authentication_is_throttled_per_client(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-3: after N invalid_client for one client_id from one address, even the right
    secret from there gets 429 until the window moves on; another client is unaffected."""
    async with limited(make_settings, clock, client_auth_failures=Rate(3, 300)) as server:
        victim, bystander = await machine(server.http), await machine(server.http)
        for _ in range(3):
            wrong = await server.http.post(
                "/token",
                data={"grant_type": "client_credentials"},
                headers=basic(victim, "wrong-secret"),
            )
            assert wrong.status_code == 401
            assert wrong.json()["error"] == "invalid_client"
        assert assert_throttled_json(await client_token(server.http, victim)) == 100
        assert (await client_token(server.http, bystander)).status_code == 200
        clock.advance(100)
        assert (await client_token(server.http, victim)).status_code == 200


async def test_rate_3_failures_add_up_across_revoke_device_and_token(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-3: /revoke and /device_authorization authenticate clients as /token does, and
    their failures count against the same per-client budget."""
    async with limited(make_settings, clock, client_auth_failures=Rate(2, 300)) as server:
        registered = await server.http.post(
            "/register",
            json={
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": [
                    "client_credentials",
                    "urn:ietf:params:oauth:grant-type:device_code",
                ],
            },
        )
        victim = registered.json()
        revoked = await server.http.post(
            "/revoke", data={"token": "x"}, headers=basic(victim, "wrong-secret")
        )
        assert revoked.status_code == 401
        device = await server.http.post(
            "/device_authorization", data={"scope": "openid"}, headers=basic(victim, "wrong-secret")
        )
        assert device.status_code == 401, device.text
        assert_throttled_json(await client_token(server.http, victim))
        blocked = await server.http.post("/revoke", data={"token": "x"}, headers=basic(victim))
        assert_throttled_json(blocked)


async def test_rate_3_a_throttled_request_does_not_spend_the_code(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-3: a request refused for the client's failures never reaches the code: once the
    limit recovers, the same code redeems."""
    async with limited(make_settings, clock, client_auth_failures=Rate(2, 20)) as server:
        client = await register(
            server.http,
            token_endpoint_auth_method="client_secret_post",
            redirect_uris=["http://127.0.0.1:5555/cb"],
        )
        auth = Authorization(client["client_id"], scope="email")
        code = (await authorize_code(server.http, auth))["code"]
        for _ in range(2):
            wrong = await redeem(server.http, auth, code, client_secret="nope")
            assert wrong.status_code == 401
        form = {"client_secret": client["client_secret"]}
        assert_throttled_json(await redeem(server.http, auth, code, **form))
        clock.advance(11)
        assert (await redeem(server.http, auth, code, **form)).status_code == 200


async def test_rate_3_failures_at_introspection_are_throttled(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-3: /introspect counts failed authentications per client_id as /token does."""
    async with limited(make_settings, clock, client_auth_failures=Rate(2, 60)) as server:
        caller = await machine(server.http)
        for _ in range(2):
            wrong = await server.http.post(
                "/introspect", data={"token": "x"}, headers=basic(caller, "nope")
            )
            assert wrong.status_code == 401
        right = await server.http.post("/introspect", data={"token": "x"}, headers=basic(caller))
        assert_throttled_json(right)


async def hammer(
    server: Server, times: int, path: str, data: dict[str, str], **headers: str
) -> None:
    """`times` requests with a wrong secret from the OTHER address, each refused."""
    for _ in range(times):
        wrong = await server.http.post(path, data=data, headers={**headers, **OTHER})
        assert wrong.status_code in (401, 429), wrong.text


async def test_rate_3_failures_from_another_address_never_refuse_a_public_client(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-3: invalid_client is throttled per source; another address sending any
    client_secret with a public client's id never refuses that client's real requests."""
    async with limited(make_settings, clock, client_auth_failures=Rate(3, 300)) as server:
        client = await register(server.http, redirect_uris=["http://127.0.0.1:5555/cb"])
        noise = {
            "grant_type": "refresh_token",
            "refresh_token": "rt_x_y",
            "client_id": client["client_id"],
            "client_secret": "any",  # a public client fails for any secret sent
        }
        await hammer(server, 10, "/token", noise)
        auth = Authorization(client["client_id"], scope="email")
        code = (await authorize_code(server.http, auth))["code"]
        redeemed = await redeem(server.http, auth, code)
        assert redeemed.status_code == 200, redeemed.text
        refresh_token = redeemed.json()["refresh_token"]
        for _ in range(3):
            await hammer(server, 10, "/token", noise)
            refreshed = await server.http.post(
                "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": client["client_id"],
                },
                headers=ONE,
            )
            assert refreshed.status_code == 200, refreshed.text
            refresh_token = refreshed.json()["refresh_token"]
        assert_throttled_json(await server.http.post("/token", data=noise, headers=OTHER))


async def test_rate_3_failures_from_another_address_never_refuse_a_confidential_client(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-3: wrong secrets from one address throttle that address at /token, /introspect
    and /revoke; the holder of the secret, elsewhere, is answered normally at each."""
    async with limited(make_settings, clock, client_auth_failures=Rate(3, 300)) as server:
        victim = await machine(server.http)
        wrong = basic(victim, "wrong-secret")
        for path in ("/token", "/introspect", "/revoke"):
            await hammer(
                server, 5, path, {"grant_type": "client_credentials", "token": "x"}, **wrong
            )
            issued = await server.http.post(
                "/token",
                data={"grant_type": "client_credentials"},
                headers={**basic(victim), **ONE},
            )
            assert issued.status_code == 200, issued.text
            token = issued.json()["access_token"]
            seen = await server.http.post(
                "/introspect", data={"token": token}, headers={**basic(victim), **ONE}
            )
            assert seen.status_code == 200, seen.text
            assert seen.json()["active"] is True
            revoked = await server.http.post(
                "/revoke", data={"token": token}, headers={**basic(victim), **ONE}
            )
            assert revoked.status_code == 200, revoked.text
        right_but_from_the_attacker = {**basic(victim), **OTHER}
        assert_throttled_json(
            await server.http.post(
                "/token",
                data={"grant_type": "client_credentials"},
                headers=right_but_from_the_attacker,
            )
        )


async def test_rate_3_failures_from_many_addresses_are_audited_not_refused(
    make_settings: Callable[..., Settings], clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """RATE-3: failures spread over many addresses refuse none of them below its own limit;
    passing the limit for the client in all is one audit event, naming the client."""
    caplog.set_level(logging.INFO, logger="oauthd.audit")
    async with limited(make_settings, clock, client_auth_failures=Rate(3, 300)) as server:
        victim = await machine(server.http)
        for i in range(4):
            for _ in range(2):
                wrong = await server.http.post(
                    "/token",
                    data={"grant_type": "client_credentials"},
                    headers={**basic(victim, "wrong-secret"), "X-Forwarded-For": f"192.0.2.{i}"},
                )
                assert wrong.status_code == 401, wrong.text
        assert (await client_token(server.http, victim)).status_code == 200
    events = [r for r in caplog.records if r.getMessage() == "client_auth_failures_exceeded"]
    assert [dict(r.audit) for r in events] == [{"client_id": victim["client_id"]}]  # type: ignore[attr-defined]  # set through logging's extra


# --- RATE-6: /introspect per client ------------------------------------------------------------


async def test_rate_6_introspection_per_client_gets_429_then_recovers(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-6 (RFC 7662 §4, token scanning): each calling client has its own budget."""
    async with limited(make_settings, clock, introspect_per_client=Rate(3, 60)) as server:
        scanner, other = await machine(server.http), await machine(server.http)
        token = (await client_token(server.http, scanner)).json()["access_token"]

        async def introspect(caller: dict[str, Any]) -> httpx.Response:
            return await server.http.post(
                "/introspect", data={"token": token}, headers=basic(caller)
            )

        for _ in range(3):
            assert (await introspect(scanner)).json()["active"] is True
        assert assert_throttled_json(await introspect(scanner)) == 20
        assert (await introspect(other)).status_code == 200
        clock.advance(20)
        assert (await introspect(scanner)).status_code == 200


async def test_rate_6_naming_a_client_does_not_spend_its_introspection_budget(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-6 with RATE-3: requests that fail to authenticate as a resource server do not use
    up its introspection budget (they count as authentication failures instead)."""
    limits = {"introspect_per_client": Rate(2, 60), "client_auth_failures": Rate(100, 60)}
    async with limited(make_settings, clock, **limits) as server:
        victim = await machine(server.http)
        token = (await client_token(server.http, victim)).json()["access_token"]
        for _ in range(5):
            forged = await server.http.post(
                "/introspect", data={"token": token}, headers=basic(victim, "wrong-secret")
            )
            assert forged.status_code == 401
        real = await server.http.post("/introspect", data={"token": token}, headers=basic(victim))
        assert real.status_code == 200
        assert real.json()["active"] is True


# --- RATE-2: dev login per account and per IP --------------------------------------------------


async def login_page(server: Server, client_id: str, headers: dict[str, str]) -> str:
    auth = Authorization(client_id, scope="email")
    start = await server.http.get("/authorize", params=auth.params, headers=headers)
    page = await server.http.get(start.headers["location"], headers=headers)
    assert page.status_code == 200, page.text
    return page.text


async def sign_in(
    server: Server, client_id: str, who: tuple[str, str], headers: dict[str, str]
) -> httpx.Response:
    page = await login_page(server, client_id, headers)
    return await server.http.post(
        "/login",
        data={
            "request": form_field(page, "request"),
            "csrf": form_field(page, "csrf"),
            "email": who[0],
            "password": who[1],
        },
        headers=headers,
    )


def assert_throttled_page(response: httpx.Response) -> None:
    """RATE-7: an HTML page, 429, Retry-After; the same wording for any account (RATE-2)."""
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("text/html")
    assert int(response.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in response.text


async def test_rate_2_wrong_passwords_per_account_get_429_then_recover(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-2: after N wrong passwords for one account even the right one gets a 429 page,
    from any address; an unknown account is treated alike (no enumeration); the limit
    recovers as the clock moves."""
    rate = Rate(3, 300)
    async with limited(make_settings, clock, login_failures_per_account=rate) as server:
        client_id = (await register(server.http, redirect_uris=["http://127.0.0.1:5555/cb"]))[
            "client_id"
        ]
        for who in ((ALICE[0], "wrong"), ("nobody@example.com", "wrong")):
            for _ in range(3):
                assert (await sign_in(server, client_id, who, ONE)).status_code == 401
            assert_throttled_page(await sign_in(server, client_id, who, OTHER))
        assert_throttled_page(await sign_in(server, client_id, ALICE, OTHER))
        clock.advance(100)
        assert (await sign_in(server, client_id, ALICE, ONE)).status_code in (302, 303)


async def test_rate_2_wrong_passwords_per_ip_get_429_other_ips_unaffected(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-2: one address guessing across many accounts is throttled; others are not."""
    async with limited(make_settings, clock, login_failures_per_ip=Rate(3, 300)) as server:
        client_id = (await register(server.http, redirect_uris=["http://127.0.0.1:5555/cb"]))[
            "client_id"
        ]
        for i in range(3):
            who = (f"user{i}@example.com", "wrong")
            assert (await sign_in(server, client_id, who, ONE)).status_code == 401
        assert_throttled_page(await sign_in(server, client_id, ALICE, ONE))
        assert (await sign_in(server, client_id, ALICE, OTHER)).status_code in (302, 303)


# --- RATE-4: /device per IP --------------------------------------------------------------------


async def test_rate_4_wrong_user_codes_throttle_one_ip_not_another(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-4: wrong user codes are counted per client IP (behind a trusted proxy, the
    forwarded one): one address throttled, another still gets the normal page."""
    async with limited(make_settings, clock, device_code_failures=Rate(2, 600)) as server:
        for _ in range(2):
            wrong = await server.http.get("/device", params={"user_code": "BBBB-BBBB"}, headers=ONE)
            assert wrong.status_code == 400
        blocked = await server.http.get("/device", params={"user_code": "BBBB-BBBB"}, headers=ONE)
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) == 300
        other = await server.http.get("/device", params={"user_code": "BBBB-BBBB"}, headers=OTHER)
        assert other.status_code == 400


# --- RATE-2, RATE-3, RATE-4: concurrent guesses -------------------------------------------------


def assert_judged_at_most(responses: list[httpx.Response], judged: int, limit: int) -> None:
    """At most `limit` answers with the `judged` status (a wrong guess), the rest 429."""
    statuses = [r.status_code for r in responses]
    assert statuses.count(judged) <= limit, statuses
    assert statuses.count(judged) + statuses.count(429) == len(statuses), statuses


async def client_tokens_at_once(
    server: Server, n: int, client: dict[str, Any], secret: str | None = None
) -> list[httpx.Response]:
    """`n` client_credentials requests from one address, in flight together."""
    return await all_at_once(
        n,
        lambda: server.http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={**basic(client, secret), **ONE},
        ),
    )


async def test_rate_2_concurrent_wrong_passwords_judge_at_most_the_limit(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-2: after N failed passwords for one account -> 429; guesses in flight together
    count too, so 30 at once are judged at most N times, the rest refused."""
    rate = Rate(10, 900)
    async with limited(make_settings, clock, login_failures_per_account=rate) as server:
        client_id = (await register(server.http, redirect_uris=["http://127.0.0.1:5555/cb"]))[
            "client_id"
        ]
        forms = []
        for _ in range(30):
            page = await login_page(server, client_id, ONE)
            forms.append({"request": form_field(page, "request"), "csrf": form_field(page, "csrf")})
        who = {"email": "nobody@example.com", "password": "wrong"}
        pending = iter(forms)
        responses = await all_at_once(
            len(forms),
            lambda: server.http.post("/login", data={**next(pending), **who}, headers=ONE),
        )
        assert_judged_at_most(responses, 401, 10)


async def test_rate_4_concurrent_wrong_user_codes_judge_at_most_the_limit(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-4: more than N wrong user codes per IP -> throttled, even when all are sent at
    once: at most N are looked up."""
    async with limited(make_settings, clock, device_code_failures=Rate(10, 600)) as server:
        responses = await all_at_once(
            40,
            lambda: server.http.get("/device", params={"user_code": "BBBB-BBBB"}, headers=ONE),
        )
        assert_judged_at_most(responses, 400, 10)


async def test_rate_3_concurrent_wrong_secrets_judge_at_most_the_limit(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-3: repeated invalid_client -> throttled after N failures, counting the
    authentications still in flight: 40 wrong secrets at once get at most N answers."""
    async with limited(make_settings, clock, client_auth_failures=Rate(10, 300)) as server:
        victim = await machine(server.http)
        responses = await client_tokens_at_once(server, 40, victim, "wrong-secret")
        assert_judged_at_most(responses, 401, 10)


async def test_rate_3_a_burst_of_valid_authentications_is_never_refused_for_its_size(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-3: only failures throttle: valid requests sent together, more than the limit,
    wait for each other's verdict and all succeed."""
    async with limited(make_settings, clock, client_auth_failures=Rate(2, 300)) as server:
        responses = await client_tokens_at_once(server, 20, await machine(server.http))
        assert [r.status_code for r in responses] == [200] * 20
