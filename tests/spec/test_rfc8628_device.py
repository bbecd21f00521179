"""RFC 8628: the device authorization grant (DEVICE-1..11, DISC-10, RATE-4), over HTTP.

Expiry and polling intervals are driven with the `clock` fixture (a ManualClock), never
with sleeps."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
import trio
import trio.lowlevel

from oauthd.settings import ClientSettings, Settings
from tests.conftest import ISSUER, ManualClock, Server, running_server
from tests.flow import RESOURCE, consent, form_field, login

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")
NOT_VALID = "That code is not valid"


async def device_client(http: httpx.AsyncClient, **metadata: Any) -> dict[str, Any]:
    """A public client registered for the device grant alone (and refresh tokens)."""
    body = {
        "token_endpoint_auth_method": "none",
        "grant_types": [DEVICE, "refresh_token"],
        "client_name": "Living-room TV",
        **metadata,
    }
    response = await http.post("/register", json=body)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


async def start(http: httpx.AsyncClient, client: dict[str, Any], **form: str) -> httpx.Response:
    data = {"client_id": client["client_id"], "scope": "openid email", **form}
    return await http.post("/device_authorization", data=data)


async def started(http: httpx.AsyncClient, client: dict[str, Any], **form: str) -> dict[str, Any]:
    response = await start(http, client, **form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def poll(
    http: httpx.AsyncClient, client: dict[str, Any], device_code: str, **form: str
) -> httpx.Response:
    data = {
        "grant_type": DEVICE,
        "device_code": device_code,
        "client_id": client["client_id"],
        **form,
    }
    return await http.post("/token", data=data)


def assert_error(response: httpx.Response, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert response.headers["cache-control"] == "no-store"


def local(url: str) -> str:
    """The path and query of an issuer URL (the test server listens on another port)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def to_consent(http: httpx.AsyncClient, user_code: str) -> str:
    """Enter the code and log in if asked; the /consent location."""
    response = await http.get("/device", params={"user_code": user_code})
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    if location.startswith("/login"):
        response = await login(http, location)
        assert response.status_code == 303, response.text
        location = response.headers["location"]
    assert location.startswith("/consent"), location
    return location


async def decide(
    http: httpx.AsyncClient, user_code: str, decision: str = "allow"
) -> httpx.Response:
    response = await consent(http, await to_consent(http, user_code), decision)
    assert response.status_code == 200, response.text
    return response


# --- §3.1, §3.2: the device authorization request ---------------------------------------------


async def test_s3_2_device_authorization_response(server: Server) -> None:
    """DEVICE-1: 200 with device_code, user_code, verification_uri(_complete), expires_in,
    interval; no-store."""
    client = await device_client(server.http)
    response = await start(server.http, client)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert USER_CODE.fullmatch(body["user_code"])
    assert body["device_code"].startswith("dc_")
    assert len(body["device_code"]) >= 43  # TOKEN-17: at least 128 bits
    assert body["verification_uri"] == ISSUER + "/device"
    assert body["verification_uri_complete"] == f"{ISSUER}/device?user_code={body['user_code']}"
    assert body["expires_in"] == 600
    assert body["interval"] == 5


async def test_s3_1_confidential_client_authenticates(server: Server) -> None:
    """DEVICE-2: a confidential client must authenticate as at /token."""
    client = await device_client(server.http, token_endpoint_auth_method="client_secret_post")
    assert_error(await start(server.http, client), "invalid_client", 401)
    wrong = await start(server.http, client, client_secret="wrong")
    assert_error(wrong, "invalid_client", 401)
    good = await start(server.http, client, client_secret=client["client_secret"])
    assert good.status_code == 200, good.text


async def test_s3_1_unknown_client_is_invalid_client(server: Server) -> None:
    """DEVICE-2: unknown client_id -> 401 invalid_client."""
    assert_error(await start(server.http, {"client_id": "nobody"}), "invalid_client", 401)


async def test_s3_1_client_without_the_grant_is_unauthorized(server: Server) -> None:
    """DEVICE-2: a client not registered for the device grant -> 400 unauthorized_client."""
    response = await server.http.post(
        "/register",
        json={"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
    )
    assert_error(await start(server.http, response.json()), "unauthorized_client")


async def test_s3_1_bad_scope_and_resource(server: Server) -> None:
    """DEVICE-2: unknown scope -> invalid_scope; unknown resource -> invalid_target."""
    client = await device_client(server.http)
    assert_error(await start(server.http, client, scope="openid nonsense"), "invalid_scope")
    narrow = await device_client(server.http, scope="openid")
    assert_error(await start(server.http, narrow, scope="email"), "invalid_scope")
    bad = await start(server.http, client, resource="https://elsewhere.example/")
    assert_error(bad, "invalid_target")


async def test_s3_1_get_is_405(server: Server) -> None:
    """DEVICE-2: the endpoint takes POST only."""
    response = await server.http.get("/device_authorization")
    assert response.status_code == 405


async def test_s3_1_cors_like_the_api(server: Server) -> None:
    """CORS-2: browser-based clients may call it; errors are JSON whatever Accept says."""
    response = await server.http.post(
        "/device_authorization", data={"client_id": "nobody"}, headers={"Accept": "text/html"}
    )
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json()["error"] == "invalid_client"


async def test_device_only_client_registers_without_redirect_uris(server: Server) -> None:
    """RFC 7591 §2: a device-only client needs no redirect URIs and no response types."""
    client = await device_client(server.http)
    assert client["grant_types"] == [DEVICE, "refresh_token"]
    assert client["response_types"] == []
    assert "redirect_uris" not in client or client["redirect_uris"] == []


async def test_s4_metadata_advertises_the_device_flow(server: Server) -> None:
    """DISC-10: device_authorization_endpoint and the grant type are advertised."""
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        document = (await server.http.get(path)).json()
        assert document["device_authorization_endpoint"] == ISSUER + "/device_authorization"
        assert DEVICE in document["grant_types_supported"]


# --- §3.4, §3.5: polling ------------------------------------------------------------------------


async def test_s3_5_authorization_pending(server: Server) -> None:
    """DEVICE-3: a poll before the person decides -> 400 authorization_pending, no-store."""
    client = await device_client(server.http)
    device = await started(server.http, client)
    assert_error(await poll(server.http, client, device["device_code"]), "authorization_pending")


async def test_s3_5_slow_down_adds_five_seconds_for_good(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """DEVICE-4: too soon -> slow_down, and the interval MUST grow by 5 s for this and all
    later polls: the old interval keeps earning slow_down, interval+5 is pending again."""
    async with running_server(make_settings(), clock) as server:
        client = await device_client(server.http)
        code = (await started(server.http, client))["device_code"]
        assert_error(await poll(server.http, client, code), "authorization_pending")
        assert_error(await poll(server.http, client, code), "slow_down")  # interval now 10
        clock.advance(10)
        assert_error(await poll(server.http, client, code), "authorization_pending")
        clock.advance(5)  # the first interval is no longer enough
        assert_error(await poll(server.http, client, code), "slow_down")  # interval now 15
        clock.advance(15)
        assert_error(await poll(server.http, client, code), "authorization_pending")
        clock.advance(10)
        assert_error(await poll(server.http, client, code), "slow_down")


async def test_s3_5_denied_is_access_denied(server: Server) -> None:
    """DEVICE-5: the person denies -> the next poll is 400 access_denied."""
    client = await device_client(server.http)
    device = await started(server.http, client)
    page = await decide(server.http, device["user_code"], "deny")
    assert "denied" in page.text
    assert_error(await poll(server.http, client, device["device_code"]), "access_denied")


async def test_s3_5_expired_code_is_expired_token(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """DEVICE-5: after expires_in with no decision -> 400 expired_token."""
    async with running_server(make_settings(), clock) as server:
        client = await device_client(server.http)
        device = await started(server.http, client)
        clock.advance(device["expires_in"] + 1)
        assert_error(await poll(server.http, client, device["device_code"]), "expired_token")


async def test_s3_5_other_clients_code_is_invalid_grant(server: Server) -> None:
    """DEVICE-5: a device_code issued to client A and polled by client B -> invalid_grant."""
    a, b = await device_client(server.http), await device_client(server.http)
    device = await started(server.http, a)
    assert_error(await poll(server.http, b, device["device_code"]), "invalid_grant")


@pytest.mark.parametrize(
    "make_code",
    [
        lambda code: code[:-4] + "AAAA",  # well-formed, right shard, never issued
        lambda code: "garbage",
        lambda code: code + "x",
        lambda code: code.replace("dc_", "rt_"),
    ],
)
async def test_s3_5_unknown_or_malformed_code_is_invalid_grant(
    server: Server, make_code: Callable[[str], str]
) -> None:
    """DEVICE-5: unknown and malformed device codes -> 400 invalid_grant."""
    client = await device_client(server.http)
    device = await started(server.http, client)
    assert_error(await poll(server.http, client, make_code(device["device_code"])), "invalid_grant")


async def test_s3_4_device_code_is_required(server: Server) -> None:
    """RFC 8628 §3.4: device_code is REQUIRED."""
    client = await device_client(server.http)
    response = await server.http.post(
        "/token", data={"grant_type": DEVICE, "client_id": client["client_id"]}
    )
    assert_error(response, "invalid_request")


async def test_s3_4_client_must_be_registered_for_the_grant(server: Server) -> None:
    """OAuth 2.1 §3.2.4: a client without the device grant -> unauthorized_client."""
    response = await server.http.post(
        "/register",
        json={"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
    )
    assert_error(await poll(server.http, response.json(), "dc_x"), "unauthorized_client")


async def test_s3_5_approved_once_then_invalid_grant(server: Server) -> None:
    """DEVICE-6: after approval the first poll gets tokens (AT, RT, id_token for openid) with
    the requested resource as audience (and /userinfo's, the issuer: openid is granted and the
    poll names no resource, README "Audience"); a second poll -> invalid_grant."""
    client = await device_client(server.http)
    device = await started(server.http, client, resource=RESOURCE)
    page = await decide(server.http, device["user_code"])
    assert "signed in on your device" in page.text
    response = await poll(server.http, client, device["device_code"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "openid email"
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["aud"] == [RESOURCE, server.settings.issuer]
    assert claims["client_id"] == client["client_id"]
    id_claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert id_claims["aud"] == client["client_id"]
    assert_error(await poll(server.http, client, device["device_code"]), "invalid_grant")
    # The refresh token rotates exactly as in the code flow.
    refreshed = await server.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]


async def test_s3_5_no_refresh_token_without_the_grant(server: Server) -> None:
    """DEVICE-6: a client without refresh_token gets none; without openid, no id_token;
    without resource the audience is the issuer."""
    client = await device_client(server.http, grant_types=[DEVICE])
    device = await started(server.http, client, scope="email")
    await decide(server.http, device["user_code"])
    tokens = (await poll(server.http, client, device["device_code"])).json()
    assert "refresh_token" not in tokens
    assert "id_token" not in tokens
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["aud"] == ISSUER


async def test_device_tokens_work_at_userinfo(server: Server) -> None:
    """Tokens from the device flow are accepted by /userinfo, for the person who approved."""
    client = await device_client(server.http)
    device = await started(server.http, client)
    await decide(server.http, device["user_code"])
    tokens = (await poll(server.http, client, device["device_code"])).json()
    response = await server.http.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "alice@example.com"


# --- §3.3: the person's side --------------------------------------------------------------------


async def test_s3_3_code_entry_form(server: Server) -> None:
    """DEVICE-10, HTML-1: /device shows a code form and forbids framing."""
    response = await server.http.get("/device")
    assert response.status_code == 200
    assert 'name="user_code"' in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    "spell", [str.lower, lambda c: c.replace("-", ""), lambda c: c.lower().replace("-", " ")]
)
async def test_s3_3_user_code_any_case_with_or_without_dash(
    server: Server, spell: Callable[[str], str]
) -> None:
    """DEVICE-7: user codes compare case-insensitively, ignoring dashes and spaces."""
    client = await device_client(server.http)
    device = await started(server.http, client)
    response = await server.http.get("/device", params={"user_code": spell(device["user_code"])})
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/login?request=ar_")


async def test_s3_3_approving_needs_login_first(server: Server) -> None:
    """DEVICE-8: without a session the code leads to the login page, and the consent page
    sends back to it; nothing is approved."""
    client = await device_client(server.http)
    device = await started(server.http, client)
    response = await server.http.get(local(device["verification_uri_complete"]))
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login?request=")
    request_id = location.split("request=")[1]
    consent_page = await server.http.get("/consent", params={"request": request_id})
    assert consent_page.status_code == 303
    assert consent_page.headers["location"].startswith("/login")
    assert_error(await poll(server.http, client, device["device_code"]), "authorization_pending")


async def test_s5_4_get_never_approves_and_consent_shows_the_code(
    make_settings: Callable[..., Settings],
) -> None:
    """DEVICE-9: even a first-party client gets the consent page, which names the client,
    the scopes and the user code; GETs alone approve nothing."""
    tv = ClientSettings(
        client_id="tv",
        token_endpoint_auth_method="none",
        grant_types=(DEVICE,),
        client_name="Kitchen TV",
        first_party=True,
    )
    async with running_server(make_settings(clients=(tv,))) as server:
        client = {"client_id": "tv"}
        device = await started(server.http, client)
        location = await to_consent(server.http, device["user_code"])
        page = await server.http.get(location)
        assert page.status_code == 200
        assert "Kitchen TV" in page.text
        assert device["user_code"] in page.text
        assert "email" in page.text
        await server.http.get(location)
        assert_error(
            await poll(server.http, client, device["device_code"]), "authorization_pending"
        )


async def test_s5_4_stale_csrf_is_refused(server: Server) -> None:
    """DEVICE-10: the approval POST without the page's CSRF token -> 403, nothing approved."""
    client = await device_client(server.http)
    device = await started(server.http, client)
    location = await to_consent(server.http, device["user_code"])
    page = await server.http.get(location)
    request_id = form_field(page.text, "request")
    stale = form_field(page.text, "csrf")
    await server.http.get(location)  # a reload mints a new token: the old one is stale
    for csrf in (stale, "forged"):
        response = await server.http.post(
            "/consent", data={"request": request_id, "csrf": csrf, "decision": "allow"}
        )
        assert response.status_code == 403
    assert_error(await poll(server.http, client, device["device_code"]), "authorization_pending")


async def test_s5_1_wrong_expired_and_used_codes_look_the_same(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """DEVICE-11, RATE-4: wrong, malformed, expired and used codes get one generic message."""
    async with running_server(make_settings(), clock) as server:
        client = await device_client(server.http)
        used = await started(server.http, client)
        await decide(server.http, used["user_code"])
        assert (await poll(server.http, client, used["device_code"])).status_code == 200
        expiring = await started(server.http, client)
        clock.advance(601)
        codes = ("BCDF-GHJK", "not a code", used["user_code"], expiring["user_code"])
        texts = set()
        for code in codes:
            page = await server.http.get("/device", params={"user_code": code})
            assert page.status_code == 400
            assert NOT_VALID in page.text
            # Only the code typed differs: it is kept in the field for a retry.
            texts.add(page.text.replace(f'value="{code}"', 'value=""'))
        assert len(texts) == 1


async def test_s5_1_wrong_codes_are_throttled(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """DEVICE-11, RATE-4: after 10 wrong codes the page answers 429 with Retry-After, even
    for a right code, until the window has passed."""
    async with running_server(make_settings(), clock) as server:
        client = await device_client(server.http)
        device = await started(server.http, client, scope="email")
        for _ in range(10):
            wrong = await server.http.get("/device", params={"user_code": "BBBB-BBBB"})
            assert wrong.status_code == 400
        blocked = await server.http.get("/device", params={"user_code": device["user_code"]})
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        assert NOT_VALID not in blocked.text
        clock.advance(601)  # the window has passed: a right code works again
        fresh = await started(server.http, client)
        allowed = await server.http.get("/device", params={"user_code": fresh["user_code"]})
        assert allowed.status_code == 303


# --- the whole flow, as a new user would run it -------------------------------------------------


async def test_cli_polls_while_the_person_approves(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """One task polls /token like a CLI (moving the clock by `interval` between polls);
    another logs in through the HTML pages and approves; the CLI's tokens work at /userinfo."""
    async with running_server(make_settings(), clock) as server:
        cli = server.http  # the CLI holds no cookies; the browser below has its own
        client = await device_client(cli)
        device = await started(cli, client)
        tokens: dict[str, Any] = {}

        async def poll_like_a_cli() -> None:
            interval = device["interval"]
            for _ in range(100):
                response = await poll(cli, client, device["device_code"])
                body = response.json()
                if response.status_code == 200:
                    tokens.update(body)
                    return
                assert body["error"] in ("authorization_pending", "slow_down"), body
                if body["error"] == "slow_down":
                    interval += 5
                clock.advance(interval)  # instead of sleeping `interval` seconds
                await trio.lowlevel.checkpoint()
            raise AssertionError("the CLI never got tokens")

        async def approve_in_a_browser() -> None:
            async with httpx.AsyncClient(base_url=server.base_url) as browser:
                form = await browser.get(local(device["verification_uri"]))
                assert 'name="user_code"' in form.text
                typed = device["user_code"].lower()
                entered = await browser.get("/device", params={"user_code": typed})
                assert entered.headers["location"].startswith("/login")
                to_consent_page = await login(browser, entered.headers["location"])
                done = await consent(browser, to_consent_page.headers["location"])
                assert "signed in on your device" in done.text

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll_like_a_cli)
            nursery.start_soon(approve_in_a_browser)

        userinfo = await cli.get(
            "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert userinfo.status_code == 200, userinfo.text
        assert userinfo.json()["email"] == "alice@example.com"


# --- RFC 9728 §3.3: /userinfo's own resource identifiers -----------------------------------------


async def test_rfc8707_s2_device_grant_for_the_userinfo_resource(server: Server) -> None:
    """RFC 9728 §3.3: resource=<issuer>/userinfo with openid is accepted at
    /device_authorization and on the poll, and the token works at /userinfo; without openid it
    is invalid_target."""
    own = ISSUER + "/userinfo"
    client = await device_client(server.http)
    assert_error(await start(server.http, client, scope="email", resource=own), "invalid_target")
    device = await started(server.http, client, resource=own)
    await decide(server.http, device["user_code"])
    response = await poll(server.http, client, device["device_code"], resource=own)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == ISSUER
    userinfo = await server.http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert userinfo.status_code == 200, userinfo.text
