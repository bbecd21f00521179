"""Federation end to end: a second oauthd in dev mode is the upstream identity provider, and a
federating oauthd in front of it issues its own tokens. A person logs in through both
servers' HTML pages, as a new user would (issue 6 acceptance; HTML-5, HTML-10). The front runs
on both storage backends; the upstream, another server, keeps its own SQLite files."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import psycopg
import pytest

from oauthd.settings import (
    ClientSettings,
    DevSettings,
    DevUser,
    FederationSettings,
    LimitSettings,
    Settings,
    StorageSettings,
)
from tests.conftest import DSN_ENV, Server, running_server
from tests.flow import (
    ALICE,
    Authorization,
    form_field,
    query_of,
    register,
    secure_cookies_on_loopback,
)

pytestmark = pytest.mark.both_backends  # the front on SQLite and PostgreSQL (tests/conftest.py)

SECRET_ENV = "FRONT_UPSTREAM_SECRET"
CLIENT_REDIRECT = "http://127.0.0.1:5555/cb"
BOB = ("bob@example.com", "password-of-bob")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Browser:
    """A person's browser: one cookie jar for every origin, pages filled in as a person would."""

    http: httpx.AsyncClient
    visited: list[str]
    who: tuple[str, str] = ALICE  # the person's email and password at the upstream

    async def walk(self, url: str, *, consent: str = "allow") -> str:
        """Follow redirects and fill the pages met on the way (login: Alice; consent:
        `consent`) until a redirect leaves for the client; its Location."""
        return await self.walk_until(url, lambda target: target.startswith(CLIENT_REDIRECT))

    async def walk_until(self, url: str, stop: Callable[[str], bool]) -> str:
        """Like `walk`, stopping (without following) at the first redirect `stop` accepts."""
        response = await self.http.get(url)
        for _ in range(20):
            if response.status_code in (302, 303):
                target = urljoin(str(response.url), response.headers["location"])
                if stop(target):
                    return target
                self.visited.append(target)
                response = await self.http.get(target)
            elif response.status_code == 200 and "<form" in response.text:
                response = await self.submit(response, "allow")
            else:
                raise AssertionError(f"{response.url}: {response.status_code} {response.text}")
        raise AssertionError("the flow did not reach its stop")

    async def submit(self, page: httpx.Response, consent: str) -> httpx.Response:
        html = page.text
        if 'name="user_code"' in html and 'name="decision"' not in html:
            raise AssertionError("the device code form is not filled by walking")
        action = re.search(r'<form method="post" action="([^"]+)"', html)
        assert action, f"no form on {page.url}"
        data = {"request": form_field(html, "request"), "csrf": form_field(html, "csrf")}
        if 'name="password"' in html:
            data |= {"email": self.who[0], "password": self.who[1]}
        else:
            data["decision"] = consent
        return await self.http.post(urljoin(str(page.url), action.group(1)), data=data)


@asynccontextmanager
async def browser(who: tuple[str, str] = ALICE) -> AsyncIterator[Browser]:
    async with httpx.AsyncClient() as http:
        secure_cookies_on_loopback(http)
        yield Browser(http, [], who)


@dataclass
class Pair:
    upstream: Server
    front: Server


@pytest.fixture
async def pair(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Pair]:
    """The upstream (dev mode, knows oauthd-front as a confidential third-party client) and
    the front (production mode, federating to the upstream)."""
    async with federating_pair(make_settings, tmp_path, monkeypatch) as made:
        yield made


@asynccontextmanager
async def federating_pair(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    front_limits: LimitSettings | None = None,
) -> AsyncIterator[Pair]:
    """The `pair`, with Bob as a second upstream user and the front's `[limits]` given."""
    monkeypatch.setenv(SECRET_ENV, "front-secret-at-upstream")
    up_port, front_port = free_port(), free_port()
    up_issuer, front_issuer = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{front_port}"
    front_at_upstream = ClientSettings(
        "oauthd-front",
        redirect_uris=(f"{front_issuer}/callback",),
        client_name="Front oauthd",
        client_secret_env=SECRET_ENV,
    )
    upstream_settings = make_settings(
        issuer=up_issuer,
        listen=f"127.0.0.1:{up_port}",
        data_dir=tmp_path / "upstream",
        storage=StorageSettings(),  # its own files: the leg's database is the front's
        clients=(front_at_upstream,),
        dev=DevSettings((DevUser(*ALICE, "Alice"), DevUser(*BOB, "Bob"))),
    )
    front_settings = make_settings(
        issuer=front_issuer,
        listen=f"127.0.0.1:{front_port}",
        data_dir=tmp_path / "front",
        dev_mode=False,
        federation=FederationSettings(
            provider="oidc",
            issuer=up_issuer,
            client_id="oauthd-front",
            client_secret_env=SECRET_ENV,
            display_name="Upstream IdP",
        ),
        limits=front_limits or LimitSettings(),
    )
    async with (
        running_server(upstream_settings) as upstream,
        running_server(front_settings) as front,
    ):
        yield Pair(upstream, front)


def linked_identity(front: Server) -> list[tuple[str, str, str]]:
    """The front's links of upstream subjects to its users, from its storage."""
    if front.settings.storage.backend == "postgres":
        with psycopg.connect(os.environ[DSN_ENV]) as conn:
            sql = "SELECT provider, subject, user_id FROM identities WHERE tenant = 'default'"
            rows = conn.execute(sql).fetchall()
    else:
        path = front.settings.data_dir / "default" / "directory.sqlite"
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT provider, subject, user_id FROM identities").fetchall()
    return [(str(p), str(s), str(u)) for p, s, u in rows]


def upstream_user_id(upstream: Server, email: str) -> str:
    path = upstream.settings.data_dir / "default" / "directory.sqlite"
    with sqlite3.connect(path) as db:
        (user_id,) = db.execute("SELECT user_id FROM users WHERE email = ?", (email,)).fetchone()
    return str(user_id)


async def test_a_new_user_logs_in_through_the_upstream_and_gets_front_tokens(pair: Pair) -> None:
    """Issue 6: consent at the front, login and consent at the upstream, then a front code;
    its tokens work at the front's userinfo, with the upstream subject linked."""
    front = pair.front
    client = await register(front.http, redirect_uris=[CLIENT_REDIRECT])
    auth = Authorization(
        client["client_id"], redirect_uri=CLIENT_REDIRECT, scope="openid email", resource=None
    )
    async with browser() as person:
        location = await person.walk(f"{front.base_url}/authorize?" + _query(auth.params))
        stops = [urlsplit(u).netloc + urlsplit(u).path for u in person.visited]
    front_host, up_host = urlsplit(front.base_url).netloc, urlsplit(pair.upstream.base_url).netloc
    # HTML-10: the front's consent comes before anything is sent upstream.
    assert stops.index(f"{front_host}/consent") < stops.index(f"{up_host}/authorize")
    assert f"{up_host}/login" in stops
    assert f"{front_host}/callback" in stops
    result = query_of(location)
    assert (result["state"], result["iss"]) == (auth.state, front.settings.issuer)

    response = await front.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": result["code"],
            "code_verifier": auth.verifier,
            "redirect_uri": CLIENT_REDIRECT,
            "client_id": auth.client_id,
        },
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    info = await front.http.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 200, info.text
    claims = info.json()
    assert (claims["email"], claims["email_verified"]) == (ALICE[0], True)
    ((provider, subject, user_id),) = linked_identity(front)
    assert provider == pair.upstream.settings.issuer
    assert subject == upstream_user_id(pair.upstream, ALICE[0])
    assert claims["sub"] == user_id != subject  # the front issues its own subjects


async def test_a_returning_user_keeps_the_same_front_subject(pair: Pair) -> None:
    """Users are linked by (provider, subject): a second browser, a second upstream login,
    the same front user; the first browser's session and consent need no upstream trip."""
    front = pair.front
    client = await register(front.http, redirect_uris=[CLIENT_REDIRECT])
    auth = Authorization(client["client_id"], redirect_uri=CLIENT_REDIRECT)
    url = f"{front.base_url}/authorize?" + _query(auth.params)
    async with browser() as first:
        await first.walk(url)
        first.visited.clear()
        again = await first.walk(url)  # session and remembered consent at the front
        assert "code" in query_of(again)
        assert first.visited == []
    async with browser() as second:
        await second.walk(url)
    assert len(linked_identity(front)) == 1


async def test_tenant2_past_max_users_a_new_upstream_subject_is_refused_with_a_page(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TENANT-2: with `limits.max_users = 1` the first login of a second upstream subject ends
    at the callback on a 503 error page (nothing linked, no code); the linked user still
    signs in."""
    limits = LimitSettings(max_users=1)
    async with federating_pair(make_settings, tmp_path, monkeypatch, limits) as made:
        front = made.front
        client = await register(front.http, redirect_uris=[CLIENT_REDIRECT])
        auth = Authorization(client["client_id"], redirect_uri=CLIENT_REDIRECT)
        url = f"{front.base_url}/authorize?" + _query(auth.params)
        async with browser() as alice:
            assert "code" in query_of(await alice.walk(url))
        async with browser(BOB) as bob:
            callback = await bob.walk_until(url, lambda t: urlsplit(t).path == "/callback")
            refused = await bob.http.get(callback)
        assert refused.status_code == 503
        assert "not accepting new accounts" in refused.text
        assert len(linked_identity(front)) == 1
        async with browser() as alice_again:
            assert "code" in query_of(await alice_again.walk(url))


async def test_deny_at_the_upstream_reaches_the_client_as_access_denied(pair: Pair) -> None:
    """Issue 6: an upstream refusal comes back to the client as access_denied, no details."""
    front = pair.front
    client = await register(front.http, redirect_uris=[CLIENT_REDIRECT])
    auth = Authorization(client["client_id"], redirect_uri=CLIENT_REDIRECT)
    async with browser() as person:
        # Allow at the front, deny at the upstream's consent page.
        response = await person.http.get(f"{front.base_url}/authorize?" + _query(auth.params))
        location = await _deny_upstream(person, response, pair)
    result = query_of(location)
    assert result["error"] == "access_denied"
    assert (result["state"], result["iss"]) == (auth.state, front.settings.issuer)
    assert "upstream" not in result.get("error_description", "").lower()


async def _deny_upstream(person: Browser, response: httpx.Response, pair: Pair) -> str:
    up_host = urlsplit(pair.upstream.base_url).netloc
    for _ in range(20):
        if response.status_code in (302, 303):
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(CLIENT_REDIRECT):
                return target
            response = await person.http.get(target)
        else:
            at_upstream = urlsplit(str(response.url)).netloc == up_host
            decision = "deny" if at_upstream else "allow"
            response = await person.submit(response, decision)
    raise AssertionError("the flow did not reach the client")


def _query(params: dict[str, str]) -> str:
    return str(httpx.QueryParams(params))


# --- the callback: state, browser binding, single use (HTML-10) -------------------------------


async def at_callback(pair: Pair, person: Browser) -> str:
    """Run a fresh authorization until the upstream sends the browser back; that URL."""
    client = await register(pair.front.http, redirect_uris=[CLIENT_REDIRECT])
    auth = Authorization(client["client_id"], redirect_uri=CLIENT_REDIRECT)
    url = f"{pair.front.base_url}/authorize?" + _query(auth.params)
    return await person.walk_until(url, lambda target: "/callback?" in target)


LOGIN_COOKIE = "__Host-oauthd-login"


def login_cookie(person: Browser) -> str:
    value = person.http.cookies.get(LOGIN_COOKIE)
    assert value, "the login cookie is set when the browser goes upstream"
    return str(value)


def put_back(person: Browser, value: str) -> None:
    """The callback clears the login cookie whatever happens; put it back, so that a refusal
    that follows is the state check's and not the missing cookie's."""
    person.http.cookies.set(LOGIN_COOKIE, value, domain="127.0.0.1", path="/")


def assert_refused_page(response: httpx.Response) -> None:
    """A 400 error page, and nothing sent on to any client."""
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


async def test_mcp_bp_callback_without_or_with_unknown_state_is_refused(pair: Pair) -> None:
    """HTML-10: a missing or unknown state gets a 400 page, no redirect to the client."""
    async with browser() as person:
        callback = await at_callback(pair, person)
        cookie = login_cookie(person)
        query = query_of(callback)
        base = callback.split("?")[0]
        forged = {"code": query["code"], "state": "not-a-state-we-sent"}
        for params in ({"code": query["code"]}, forged, {"error": "access_denied"}):
            put_back(person, cookie)
            assert_refused_page(await person.http.get(base, params=params))
        put_back(person, cookie)  # the real state still works: nothing above spent it
        finished = await person.http.get(callback)
    assert finished.status_code == 303
    assert "code" in query_of(finished.headers["location"])


async def test_mcp_bp_callback_from_another_browser_is_refused(pair: Pair) -> None:
    """HTML-10: a state started in one browser is refused in another; its owner can still
    finish (the refusal does not spend it)."""
    async with browser() as victim, browser() as attacker:
        callback = await at_callback(pair, victim)
        await at_callback(pair, attacker)  # the attacker's own login cookie, another binding
        login_cookie(attacker)
        assert_refused_page(await attacker.http.get(callback))
        finished = await victim.http.get(callback)
    assert finished.status_code == 303
    assert "code" in query_of(finished.headers["location"])


async def test_mcp_bp_callback_state_is_single_use(pair: Pair) -> None:
    """HTML-10: replaying the callback URL in the same browser gets a 400 page and no second
    code. (That the actor spends the state itself is tests/unit/test_federation.py's replay
    test; here the spent authorization request refuses too.)"""
    async with browser() as person:
        callback = await at_callback(pair, person)
        cookie = login_cookie(person)
        first = await person.http.get(callback)
        assert first.status_code == 303
        put_back(person, cookie)
        assert_refused_page(await person.http.get(callback))


async def test_cors_4_callback_never_reflects_an_origin(pair: Pair) -> None:
    """CORS-4: the federation callback is a cookie-authenticated HTML endpoint: no CORS."""
    headers = {"Origin": "https://evil.example"}
    response = await pair.front.http.get("/callback", params={"state": "x"}, headers=headers)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_prompt_none_without_a_session_never_goes_upstream(pair: Pair) -> None:
    """OIDC Core §3.1.2.1: prompt=none answers login_required at once, with no page."""
    client = await register(pair.front.http, redirect_uris=[CLIENT_REDIRECT])
    auth = Authorization(
        client["client_id"], redirect_uri=CLIENT_REDIRECT, extra={"prompt": "none"}
    )
    async with browser() as person:
        location = await person.walk(f"{pair.front.base_url}/authorize?" + _query(auth.params))
        assert person.visited == []
    assert query_of(location)["error"] == "login_required"


async def test_device_flow_logs_in_through_the_upstream(pair: Pair) -> None:
    """RFC 8628 §3.3 behind federation: the person enters the code, allows the device at the
    front (with the code shown), logs in upstream, and the device's poll gets tokens."""
    front = pair.front
    registered = await front.http.post(
        "/register",
        json={
            "token_endpoint_auth_method": "none",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
            "client_name": "TV",
        },
    )
    client_id = registered.json()["client_id"]
    started = await front.http.post(
        "/device_authorization", data={"client_id": client_id, "scope": "openid email"}
    )
    body = started.json()
    async with browser() as person:
        entered = await person.http.get(
            f"{front.base_url}/device", params={"user_code": body["user_code"]}
        )
        assert entered.status_code == 303
        response = await person.http.get(urljoin(str(entered.url), entered.headers["location"]))
        shown_codes = []
        for _ in range(20):
            if response.status_code in (302, 303):
                response = await person.http.get(
                    urljoin(str(response.url), response.headers["location"])
                )
            elif "<form" in response.text:
                if str(response.url).startswith(front.base_url + "/consent"):
                    shown_codes.append(body["user_code"] in response.text)
                response = await person.submit(response, "allow")
            else:
                break
        assert response.status_code == 200
        assert shown_codes == [True]  # RFC 8628 §5.4: consent at the front shows the code
    poll = await front.http.post(
        "/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": body["device_code"],
            "client_id": client_id,
        },
    )
    assert poll.status_code == 200, poll.text
    assert "access_token" in poll.json()


async def test_consent_before_login_may_send_its_form_on_to_the_upstream(pair: Pair) -> None:
    """HTML-1 with federation: Allow on the front's consent page ends in a redirect to the
    upstream, so the page's CSP form-action names the upstream's origin as well."""
    client = await register(pair.front.http, redirect_uris=[CLIENT_REDIRECT])
    auth = Authorization(client["client_id"], redirect_uri=CLIENT_REDIRECT)
    async with browser() as person:
        url = f"{pair.front.base_url}/authorize?" + _query(auth.params)
        consent_url = await person.walk_until(url, lambda target: "/consent?" in target)
        page = await person.http.get(consent_url)
    assert page.status_code == 200
    assert "Upstream IdP" in page.text
    policy = page.headers["content-security-policy"]
    form_action = next(p for p in policy.split(";") if p.strip().startswith("form-action"))
    assert pair.upstream.settings.issuer in form_action
    assert "http://127.0.0.1:5555" in form_action


@pytest.mark.parametrize("iss", ["https://evil.example", None])
async def test_rfc9207_a_response_from_another_issuer_is_refused(
    pair: Pair, iss: str | None
) -> None:
    """RFC 9207 §2.4: the upstream's response must carry its own `iss` (it advertises it);
    another issuer, or none, ends the request with server_error (mix-up defence)."""
    async with browser() as person:
        callback = await at_callback(pair, person)
        query = query_of(callback)
        assert query["iss"] == pair.upstream.settings.issuer
        if iss is None:
            del query["iss"]
        else:
            query["iss"] = iss
        response = await person.http.get(callback.split("?")[0], params=query)
    assert response.status_code == 303
    assert query_of(response.headers["location"])["error"] == "server_error"
