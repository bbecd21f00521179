"""The pages a person sees (OAuth 2.1 §7.9-§7.12, RFC 9700 §4.7, §4.16, MCP security best
practices): dev-mode login, consent and logout, their CSRF protection, cookies, escaping and
anti-framing headers. Each browser is its own httpx client with its own cookie jar."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

from oauthd.settings import BrandingSettings, ClientSettings, DevSettings, DevUser, Settings
from tests.conftest import ISSUER, Server, running_server
from tests.flow import (
    ALICE,
    LOOPBACK,
    RESOURCE,
    Authorization,
    authorize_code,
    consent,
    form_field,
    login,
    query_of,
    redeem,
    register,
)

CB = "http://127.0.0.1:5555/cb"
XSS = ('"><script>alert(1)</script>', "'onmouseover=alert(1) x='")
ESCAPED = ("&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;", "&#39;onmouseover=alert(1) x=&#39;")


@asynccontextmanager
async def second_browser(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        yield http


def session_cookie(response: httpx.Response) -> str | None:
    """The Set-Cookie header of the session cookie, if the response sets one."""
    for header in response.headers.get_list("set-cookie"):
        if "oauthd-session=" in header:
            return header
    return None


async def start(http: httpx.AsyncClient, auth: Authorization) -> str:
    """GET /authorize; the AS page (login or consent) it sends the browser to."""
    response = await http.get("/authorize", params=auth.params)
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    assert location.startswith(("/login?", "/consent?")), location
    return location


async def form_of(http: httpx.AsyncClient, location: str) -> dict[str, str]:
    """The hidden fields of the form at `location`."""
    page = await http.get(location)
    assert page.status_code == 200, page.text
    return {"request": form_field(page.text, "request"), "csrf": form_field(page.text, "csrf")}


async def logged_in(server: Server, http: httpx.AsyncClient | None = None) -> dict[str, Any]:
    """A client this browser has logged in to and consented to."""
    http = http or server.http
    client = await register(server.http)
    await authorize_code(http, Authorization(client["client_id"]))
    return client


def assert_refused(response: httpx.Response) -> None:
    """A refused form: 403 or another 4xx page, and never a redirect anywhere."""
    assert response.status_code in (400, 403), (response.status_code, response.text)
    assert "location" not in response.headers
    assert session_cookie(response) is None


async def next_stop(http: httpx.AsyncClient, auth: Authorization) -> str:
    """Where /authorize sends this browser now: login, consent or the client."""
    response = await http.get("/authorize", params=auth.params)
    assert response.status_code == 303
    location: str = response.headers["location"]
    return location


# --- HTML-1: anti-framing on every page -------------------------------------------------------


def assert_page_headers(response: httpx.Response) -> None:
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


async def test_s7_11_every_page_forbids_framing(server: Server) -> None:
    """HTML-1: login, consent, logout and error pages send frame-ancestors 'none' and
    X-Frame-Options DENY."""
    http = server.http
    client = await register(http)
    auth = Authorization(client["client_id"])
    location = await start(http, auth)
    assert_page_headers(await http.get(location))
    after_login = await login(http, location)
    consent_page = await http.get(after_login.headers["location"])
    assert_page_headers(consent_page)
    assert_page_headers(await http.get("/logout"))
    assert_page_headers(await http.get("/authorize", params={"client_id": "nobody"}))
    assert_page_headers(await http.get("/login", params={"request": "ar_bogus_x"}))
    wrong = await http.post("/login", data={"request": "x", "csrf": "y"})
    assert_page_headers(wrong)


def csp_of(response: httpx.Response) -> dict[str, list[str]]:
    """The Content-Security-Policy as {directive: [sources]}."""
    policy: dict[str, list[str]] = {}
    for directive in response.headers["content-security-policy"].split(";"):
        name, *sources = directive.split()
        policy[name] = sources
    return policy


async def test_s7_11_pages_allow_only_their_own_inline_stylesheet(server: Server) -> None:
    """HTML-1, HTML-9: no script, nothing from another origin, and the inline stylesheet is
    allowed by its hash rather than by 'unsafe-inline'."""
    http = server.http
    client = await register(http)
    location = await start(http, Authorization(client["client_id"]))
    for response in (
        await http.get(location),
        await http.get("/logout"),
        await http.get("/device"),
    ):
        policy = csp_of(response)
        assert policy["default-src"] == ["'none'"]
        assert "script-src" not in policy
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["base-uri"] == ["'none'"]
        assert policy["img-src"] == ["'self'", "data:"]
        style = re.search(r"<style>(.*?)</style>", response.text, re.DOTALL)
        assert style is not None
        digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
        assert policy["style-src"] == [f"'sha256-{digest}'"]
        assert " style=" not in response.text  # a style attribute would be blocked
        assert "<script" not in response.text
        assert re.search(r'(src|href)="(https?:)?//', response.text) is None


async def test_s7_11_form_action_lets_login_and_consent_reach_the_client(server: Server) -> None:
    """HTML-1: form-action is 'self', plus the client's redirect origin on the two pages whose
    POST can end in a 303 to it (Chromium checks form-action on that redirect)."""
    http = server.http
    client = await register(http)
    auth = Authorization(client["client_id"])
    location = await start(http, auth)
    login_page = await http.get(location)
    assert csp_of(login_page)["form-action"] == ["'self'", "http://127.0.0.1:5555"]
    after_login = await login(http, location)
    consent_page = await http.get(after_login.headers["location"])
    assert csp_of(consent_page)["form-action"] == ["'self'", "http://127.0.0.1:5555"]
    for path in ("/logout", "/device"):
        assert csp_of(await http.get(path))["form-action"] == ["'self'"]


LOGO = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0naHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmcnLz4="


async def test_branding_names_the_product_on_every_page(
    make_settings: Callable[..., Settings],
) -> None:
    """HTML-9: the configured product name, logo and colours are what the pages show."""
    branding = BrandingSettings("Acme <Sign-in>", LOGO, "#0b6e4f", "#ffd166")
    async with running_server(make_settings(branding=branding)) as server:
        http = server.http
        client = await register(http)
        location = await start(http, Authorization(client["client_id"]))
        for response in (
            await http.get(location),
            await http.get("/logout"),
            await http.get("/authorize", params={"client_id": "nobody"}),
        ):
            assert "· Acme &lt;Sign-in&gt;</title>" in response.text
            assert f'<img src="{LOGO}" alt="">' in response.text
            assert "--accent: #0b6e4f; --accent-fg: #ffffff;" in response.text
            assert "--accent: #ffd166; --accent-fg: #000000;" in response.text
            assert "oauthd" not in response.text


# --- HTML-2: CSRF on login, consent and logout --------------------------------------------------


async def test_s7_10_login_without_csrf_is_refused(server: Server) -> None:
    """HTML-2: a login POST without its CSRF token (or with a wrong one) is 403 and logs
    nobody in."""
    http = server.http
    client = await register(http)
    auth = Authorization(client["client_id"])
    location = await start(http, auth)
    form = await form_of(http, location)
    creds = {"email": ALICE[0], "password": ALICE[1]}
    for csrf in (None, "", "forged", form["csrf"] + "x"):
        data = {"request": form["request"], **creds}
        if csrf is not None:
            data["csrf"] = csrf
        response = await http.post("/login", data=data)
        assert_refused(response)
        assert response.status_code == 403
    assert (await next_stop(http, auth)).startswith("/login?")


async def test_s7_10_login_with_another_browsers_request_is_refused(server: Server) -> None:
    """HTML-2: browser B cannot submit browser A's login form, nor its own with A's token."""
    client = await register(server.http)
    auth = Authorization(client["client_id"])
    form_a = await form_of(server.http, await start(server.http, auth))
    creds = {"email": ALICE[0], "password": ALICE[1]}
    async with second_browser(server) as b:
        # B has no browser cookie at all yet.
        assert_refused(await b.post("/login", data={**form_a, **creds}))
        form_b = await form_of(b, await start(b, auth))
        assert_refused(await b.post("/login", data={**form_a, **creds}))
        mixed = {"request": form_b["request"], "csrf": form_a["csrf"], **creds}
        response = await b.post("/login", data=mixed)
        assert_refused(response)
        assert response.status_code == 403
        assert (await next_stop(b, auth)).startswith("/login?")
    assert (await next_stop(server.http, auth)).startswith("/login?")


async def test_s7_10_login_post_replayed_after_use_is_refused(server: Server) -> None:
    """HTML-2: a login form's token works once; replaying the POST starts no new session."""
    http = server.http
    client = await register(http)
    auth = Authorization(client["client_id"])
    form = await form_of(http, await start(http, auth))
    data = {**form, "email": ALICE[0], "password": ALICE[1]}
    first = await http.post("/login", data=data)
    assert first.status_code == 303
    assert first.headers["location"].startswith("/consent?")
    replay = await http.post("/login", data=data)
    assert_refused(replay)


async def test_s7_10_consent_without_csrf_is_refused(server: Server) -> None:
    """HTML-2: an Allow POST without (or with a wrong) CSRF token is 403, records no consent
    and sends nobody to the client."""
    http = server.http
    client = await register(http)
    auth = Authorization(client["client_id"])
    after_login = await login(http, await start(http, auth))
    consent_location = after_login.headers["location"]
    form = await form_of(http, consent_location)
    for csrf in (None, "forged"):
        data = {"request": form["request"], "decision": "allow"}
        if csrf is not None:
            data["csrf"] = csrf
        response = await http.post("/consent", data=data)
        assert_refused(response)
        assert response.status_code == 403
    assert (await next_stop(http, auth)).startswith("/consent?")


async def test_s7_10_consent_from_another_browser_is_refused(server: Server) -> None:
    """HTML-2: another browser, even logged in as the same person, cannot approve A's
    request or use A's token for its own."""
    client = await register(server.http)
    auth = Authorization(client["client_id"])
    after_login = await login(server.http, await start(server.http, auth))
    form_a = await form_of(server.http, after_login.headers["location"])
    async with second_browser(server) as b:
        b_login = await login(b, await start(b, auth))
        form_b = await form_of(b, b_login.headers["location"])
        assert_refused(await b.post("/consent", data={**form_a, "decision": "allow"}))
        mixed = {"request": form_b["request"], "csrf": form_a["csrf"], "decision": "allow"}
        response = await b.post("/consent", data=mixed)
        assert_refused(response)
        assert response.status_code == 403
    # A's own form still works: nothing was consumed.
    done = await server.http.post("/consent", data={**form_a, "decision": "allow"})
    assert "code" in query_of(done.headers["location"])


async def test_s7_10_consent_replayed_after_use_is_refused(server: Server) -> None:
    """HTML-2: an Allow (or Deny) POST works once; a replay issues no second code."""
    http = server.http
    client = await register(http)
    auth = Authorization(client["client_id"])
    after_login = await login(http, await start(http, auth))
    form = await form_of(http, after_login.headers["location"])
    first = await http.post("/consent", data={**form, "decision": "allow"})
    assert "code" in query_of(first.headers["location"])
    for decision in ("allow", "deny"):
        assert_refused(await http.post("/consent", data={**form, "decision": decision}))


async def test_s7_10_consent_post_without_session_is_not_approved(server: Server) -> None:
    """HTML-2: a valid consent form from a browser that has since logged out is not approved."""
    http = server.http
    client = await register(http)
    auth = Authorization(client["client_id"])
    after_login = await login(http, await start(http, auth))
    form = await form_of(http, after_login.headers["location"])
    logout_page = await http.get("/logout")
    await http.post("/logout", data={"csrf": form_field(logout_page.text, "csrf")})
    response = await http.post("/consent", data={**form, "decision": "allow"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?")


async def test_s7_10_logout_without_csrf_is_refused(server: Server) -> None:
    """HTML-2: a logout POST without the session's CSRF token is 403 and ends nothing."""
    http = server.http
    client = await logged_in(server)
    auth = Authorization(client["client_id"])
    for data in ({}, {"csrf": ""}, {"csrf": "forged"}):
        response = await http.post("/logout", data=data)
        assert response.status_code in (400, 403)
        assert session_cookie(response) is None
    assert "code=" in await next_stop(http, auth)


async def test_s7_10_logout_with_another_browsers_token_is_refused(server: Server) -> None:
    """HTML-2: browser B's logout token does not log browser A out."""
    http = server.http
    client = await logged_in(server)
    auth = Authorization(client["client_id"])
    async with second_browser(server) as b:
        await logged_in(server, b)
        b_page = await b.get("/logout")
        response = await http.post("/logout", data={"csrf": form_field(b_page.text, "csrf")})
        assert response.status_code == 403
    assert "code=" in await next_stop(http, auth)


async def test_s7_10_logout_form_ends_the_session(server: Server) -> None:
    """Logout: GET only shows a form; POST with its token ends the session, and the next
    authorization needs a login again."""
    http = server.http
    client = await logged_in(server)
    auth = Authorization(client["client_id"])
    page = await http.get("/logout")
    assert page.status_code == 200
    assert 'method="post"' in page.text
    assert "alice@example.com" in page.text
    assert "code=" in await next_stop(http, auth)  # a GET logged nobody out
    response = await http.post("/logout", data={"csrf": form_field(page.text, "csrf")})
    assert response.status_code == 200
    cleared = session_cookie(response)
    assert cleared is not None
    assert "Max-Age=0" in cleared or "expires=Thu, 01 Jan 1970" in cleared
    assert (await next_stop(http, auth)).startswith("/login?")
    # Replayed after use: nothing left to end, no error, still logged out.
    replay = await http.post("/logout", data={"csrf": form_field(page.text, "csrf")})
    assert replay.status_code in (200, 403)
    assert (await next_stop(http, auth)).startswith("/login?")


async def test_s7_10_old_session_cookie_is_dead_after_logout(server: Server) -> None:
    """Logout: the session is ended server-side, not only forgotten by the browser."""
    http = server.http
    client = await logged_in(server)
    auth = Authorization(client["client_id"])
    old = dict(http.cookies)
    page = await http.get("/logout")
    await http.post("/logout", data={"csrf": form_field(page.text, "csrf")})
    async with second_browser(server) as b:
        for name, value in old.items():
            b.cookies.set(name, value)
        assert (await next_stop(b, auth)).startswith("/login?")


# --- HTML-3: cookies --------------------------------------------------------------------------


async def test_mcp_bp_session_cookie_flags_in_dev_mode(server: Server) -> None:
    """HTML-3: the session and browser cookies are HttpOnly, SameSite=Lax, Path=/."""
    http = server.http
    client = await register(http)
    response = await http.get("/authorize", params=Authorization(client["client_id"]).params)
    browser = response.headers["set-cookie"]
    after_login = await login(http, response.headers["location"])
    session = session_cookie(after_login)
    assert session is not None
    for header in (browser, session):
        attributes = {a.strip().lower() for a in header.split(";")}
        assert "httponly" in attributes
        assert "samesite=lax" in attributes
        assert "path=/" in attributes


async def test_mcp_bp_session_id_is_rotated_at_every_login(server: Server) -> None:
    """HTML-3: a second login gives a new session id, and the old one stops working."""
    http = server.http
    client = await logged_in(server)
    first = http.cookies["oauthd-session"]
    auth = Authorization(client["client_id"], extra={"prompt": "login"})
    location = await start(http, auth)
    response = await login(http, location)
    second = http.cookies["oauthd-session"]
    assert second != first
    assert "code" in query_of(response.headers["location"])
    async with second_browser(server) as b:
        b.cookies.set("oauthd-session", first)
        plain = Authorization(client["client_id"])
        assert (await next_stop(b, plain)).startswith("/login?")


async def test_mcp_bp_a_planted_session_cookie_is_not_kept(server: Server) -> None:
    """HTML-3 (no fixation): a session id chosen before login is not the one after it."""
    http = server.http
    host = urlsplit(server.base_url).hostname or ""
    http.cookies.set("oauthd-session", "planted-by-attacker", domain=host, path="/")
    await logged_in(server)
    assert http.cookies["oauthd-session"] != "planted-by-attacker"


async def test_mcp_bp_cookies_outside_dev_mode(make_settings: Callable[..., Settings]) -> None:
    """HTML-3, HTML-11: outside dev mode there is no dev login (404), /authorize without a
    session sets no cookie and gives no code, and the session cookie is __Host- and Secure."""
    cli = ClientSettings("cli", (LOOPBACK,), "none", first_party=True)
    async with running_server(make_settings(dev_mode=False, clients=(cli,))) as server:
        http = server.http
        assert (await http.get("/login")).status_code == 404
        assert (await http.post("/login", data={"email": "a@b", "password": "x"})).status_code in (
            404,
            405,
        )
        response = await http.get("/authorize", params=Authorization("cli").params)
        assert response.status_code == 503
        assert "location" not in response.headers
        assert "set-cookie" not in response.headers
        assert_page_headers(response)
        logout = await http.post("/logout", data={"csrf": ""})
        assert logout.status_code == 200
        cleared = logout.headers["set-cookie"]
        assert cleared.startswith("__Host-oauthd-session=")
        attributes = {a.strip().lower() for a in cleared.split(";")}
        assert {"secure", "httponly", "samesite=lax", "path=/"} <= attributes
        assert not any(a.startswith("domain=") for a in attributes)


# --- dev login ------------------------------------------------------------------------------


async def test_s7_7_wrong_password_and_unknown_user_look_the_same(server: Server) -> None:
    """RATE-2 (no enumeration): unknown user and wrong password get the same 401 page (only
    the email typed is kept in its field) and no session."""
    http = server.http
    client = await register(http)
    location = await start(http, Authorization(client["client_id"]))
    bodies = []
    for email, password in (("alice@example.com", "wrong"), ("nobody@example.com", "password")):
        form = await form_of(http, location)
        response = await http.post("/login", data={**form, "email": email, "password": password})
        assert response.status_code == 401
        assert session_cookie(response) is None
        assert "The email or password is incorrect." in response.text
        assert form_field(response.text, "email") == email  # kept for the retry
        page = response.text.replace(form_field(response.text, "csrf"), "")
        bodies.append(page.replace(email, ""))
    assert bodies[0] == bodies[1]


async def test_s7_7_login_email_is_case_insensitive_and_password_is_not(server: Server) -> None:
    """Dev login: the configured user by any case of email, only with the exact password."""
    http = server.http
    client = await register(http)
    location = await start(http, Authorization(client["client_id"]))
    form = await form_of(http, location)
    wrong = await http.post(
        "/login", data={**form, "email": "alice@example.com", "password": "PASSWORD"}
    )
    assert wrong.status_code == 401
    form = await form_of(http, location)
    right = await http.post(
        "/login", data={**form, "email": "Alice@Example.COM", "password": "password"}
    )
    assert right.status_code == 303


async def test_dev_allow_any_credentials_never_opens_a_known_user(
    make_settings: Callable[..., Settings],
) -> None:
    """docs/architecture.md "Browser side": allow_any_credentials creates unknown users, but a wrong
    password never opens a configured or an existing user."""
    dev = DevSettings(
        users=(DevUser("alice@example.com", "password", "Alice"),), allow_any_credentials=True
    )
    async with running_server(make_settings(dev=dev)) as server:
        http = server.http
        client = await register(http)
        auth = Authorization(client["client_id"])
        location = await start(http, auth)

        async def attempt(email: str, password: str) -> httpx.Response:
            form = await form_of(http, location)
            data = {**form, "email": email, "password": password}
            return await http.post("/login", data=data)

        assert (await attempt("alice@example.com", "anything")).status_code == 401
        created = await attempt("bob@example.com", "bobs-password")
        assert created.status_code == 303
        # Bob now exists: log out, and his account does not open with another password.
        page = await http.get("/logout")
        await http.post("/logout", data={"csrf": form_field(page.text, "csrf")})
        location = await start(http, auth)
        wrong = await attempt("BOB@example.com", "not-bobs")
        assert wrong.status_code == 401
        assert session_cookie(wrong) is None
        assert (await attempt("bob@example.com", "bobs-password")).status_code == 303


async def test_dev_allow_any_credentials_two_first_logins_open_one_account(
    make_settings: Callable[..., Settings],
) -> None:
    """docs/architecture.md "Browser side": allow_any_credentials never lets a wrong password
    into a known user, even one created by a concurrent first login with another password."""
    dev = DevSettings(allow_any_credentials=True)
    async with running_server(make_settings(dev=dev)) as server, second_browser(server) as other:
        client = await register(server.http)
        auth = Authorization(client["client_id"])
        browsers = (server.http, other)
        forms = [await form_of(http, await start(http, auth)) for http in browsers]
        statuses: dict[str, int] = {}

        async def first_login(http: httpx.AsyncClient, form: dict[str, str], password: str) -> None:
            data = {**form, "email": "carol@example.com", "password": password}
            statuses[password] = (await http.post("/login", data=data)).status_code

        async with trio.open_nursery() as nursery:
            for http, form, password in zip(browsers, forms, ("first", "second"), strict=True):
                nursery.start_soon(first_login, http, form, password)
        assert sorted(statuses.values()) == [303, 401], statuses
        (winner,) = (p for p, status in statuses.items() if status == 303)
        (loser,) = (p for p, status in statuses.items() if status == 401)
        async with second_browser(server) as fresh:
            for password, status in ((loser, 401), (winner, 303)):
                form = await form_of(fresh, await start(fresh, auth))
                data = {**form, "email": "carol@example.com", "password": password}
                assert (await fresh.post("/login", data=data)).status_code == status


# --- HTML-4, HTML-5: what consent shows and when it is asked ----------------------------------


async def test_s7_9_consent_page_names_client_host_scopes_and_resource(server: Server) -> None:
    """HTML-4: the consent page shows the client name marked unverified, the redirect host,
    the scopes and the resource; a loopback-only client gets a warning."""
    http = server.http
    client = await register(http, client_name="Acme Notes")
    auth = Authorization(client["client_id"], scope="openid email mcp:tools")
    after_login = await login(http, await start(http, auth))
    page = await http.get(after_login.headers["location"])
    text = page.text
    assert "Acme Notes" in text
    assert "has not verified" in text
    assert "127.0.0.1" in text
    for scope in ("openid", "email", "mcp:tools"):
        assert f"<code>{scope}</code>" in text
    assert RESOURCE in text
    assert "local address" in text


async def test_s7_9_consent_for_a_web_client_has_no_loopback_warning(server: Server) -> None:
    """HTML-4: a client with an https redirect shows its host and no loopback warning."""
    http = server.http
    client = await register(http, redirect_uris=["https://app.example/cb"])
    auth = Authorization(client["client_id"], redirect_uri="https://app.example/cb")
    after_login = await login(http, await start(http, auth))
    page = await http.get(after_login.headers["location"])
    assert "app.example" in page.text
    assert "local address" not in page.text


async def test_s7_9_first_authorization_of_a_new_client_asks_consent(server: Server) -> None:
    """HTML-5: with a session, a new self-registered client is still shown the consent page,
    and consent to client A is not consent to client B."""
    http = server.http
    client_a = await logged_in(server)
    auth_a = Authorization(client_a["client_id"])
    assert "code=" in await next_stop(http, auth_a)
    client_b = await register(http)
    assert (await next_stop(http, Authorization(client_b["client_id"]))).startswith("/consent?")


async def test_s7_9_wider_scope_or_resource_asks_consent_again(server: Server) -> None:
    """HTML-5: consent covers the scopes and resources allowed, not wider ones."""
    http = server.http
    client = await register(http)
    narrow = Authorization(client["client_id"], scope="openid", resource=None)
    await authorize_code(http, narrow)
    same = Authorization(client["client_id"], scope="openid", resource=None)
    assert "code=" in await next_stop(http, same)
    wider = Authorization(client["client_id"], scope="openid email", resource=None)
    assert (await next_stop(http, wider)).startswith("/consent?")
    with_resource = Authorization(client["client_id"], scope="openid")
    assert (await next_stop(http, with_resource)).startswith("/consent?")


async def test_s7_9_consent_is_remembered_per_redirect_uri(server: Server) -> None:
    """HTML-5: consent given for one redirect URI is not reused for another of the same
    client; a loopback redirect on a new port is the same destination (RFC 8252 §7.3)."""
    http = server.http
    client = await register(http, redirect_uris=["http://127.0.0.1/cb", "https://app.example/cb"])
    first = Authorization(client["client_id"], redirect_uri="http://127.0.0.1:4001/cb")
    await authorize_code(http, first)
    other_port = Authorization(client["client_id"], redirect_uri="http://127.0.0.1:4002/cb")
    assert (await next_stop(http, other_port)).startswith("http://127.0.0.1:4002/cb?code=")
    elsewhere = Authorization(client["client_id"], redirect_uri="https://app.example/cb")
    assert (await next_stop(http, elsewhere)).startswith("/consent?")


async def test_s7_9_prompt_consent_always_asks(server: Server) -> None:
    """OIDC Core §3.1.2.1: prompt=consent shows the consent page although consent exists."""
    http = server.http
    client = await logged_in(server)
    auth = Authorization(client["client_id"], extra={"prompt": "consent"})
    assert (await next_stop(http, auth)).startswith("/consent?")


async def test_s7_9_first_party_config_client_skips_consent(
    make_settings: Callable[..., Settings],
) -> None:
    """HTML-5: a first_party client from the configuration file asks no consent."""
    cli = ClientSettings("cli", (LOOPBACK,), "none", first_party=True)
    async with running_server(make_settings(clients=(cli,))) as server:
        http = server.http
        auth = Authorization("cli")
        after_login = await login(http, await start(http, auth))
        query = query_of(after_login.headers["location"])
        assert "code" in query
        assert query["iss"] == ISSUER


async def test_s7_9_config_client_that_is_not_first_party_asks_consent(
    make_settings: Callable[..., Settings],
) -> None:
    """HTML-5: only first_party skips consent; a configured client is not marked unverified."""
    app = ClientSettings("app", (LOOPBACK,), "none", client_name="Config App")
    async with running_server(make_settings(clients=(app,))) as server:
        http = server.http
        after_login = await login(http, await start(http, Authorization("app")))
        location = after_login.headers["location"]
        assert location.startswith("/consent?")
        page = await http.get(location)
        assert "Config App" in page.text
        assert "has not verified" not in page.text


# --- HTML-6: escaping ---------------------------------------------------------------------------


async def test_s7_12_reflected_values_are_escaped(server: Server) -> None:
    """HTML-6: state, client_name and login_hint carrying markup appear only escaped."""
    http = server.http
    for payload, escaped in zip(XSS, ESCAPED, strict=True):
        client = await register(http, client_name=payload)
        auth = Authorization(client["client_id"], state=payload, extra={"login_hint": payload})
        location = await start(http, auth)
        login_page = await http.get(location)
        assert payload not in login_page.text
        assert escaped in login_page.text  # the client name and the login hint
        assert_page_headers(login_page)
        after_login = await login(http, location)
        consent_page = await http.get(after_login.headers["location"])
        assert payload not in consent_page.text
        assert escaped in consent_page.text
        done = await http.post(
            "/consent",
            data={
                "request": form_field(consent_page.text, "request"),
                "csrf": form_field(consent_page.text, "csrf"),
                "decision": "allow",
            },
        )
        assert query_of(done.headers["location"])["state"] == payload


async def test_s7_12_a_wrong_user_code_is_kept_escaped(server: Server) -> None:
    """HTML-6: a user_code typed on /device is shown again in the field, only escaped."""
    for payload, escaped in zip(XSS, ESCAPED, strict=True):
        response = await server.http.get("/device", params={"user_code": payload})
        assert response.status_code == 400
        assert payload not in response.text
        assert f'value="{escaped}"' in response.text
        assert_page_headers(response)


async def test_s7_12_error_pages_escape_what_they_show(server: Server) -> None:
    """HTML-6: error pages reflect nothing raw (client_id, redirect_uri, scope)."""
    http = server.http
    web = "https://app.example/cb"  # its errors are shown, not redirected (AUTHZ-17)
    client = await register(http, redirect_uris=[web])
    for payload in XSS:
        for params in (
            {"client_id": payload},
            {**Authorization(client["client_id"], redirect_uri=payload).params},
            {**Authorization(client["client_id"], redirect_uri=web, scope=payload).params},
        ):
            response = await http.get("/authorize", params=params)
            assert response.status_code == 400
            assert payload not in response.text
            assert "<script>" not in response.text
            assert_page_headers(response)


# --- HTML-7: the transaction is server-side ---------------------------------------------------


async def test_s7_12_tampered_consent_fields_change_nothing(server: Server) -> None:
    """HTML-7: extra client_id, redirect_uri, scope, resource, code_challenge or state fields
    in the Allow POST change neither where the code goes nor what it grants."""
    http = server.http
    client = await register(http)
    other = await register(http)
    auth = Authorization(client["client_id"], scope="openid")
    after_login = await login(http, await start(http, auth))
    form = await form_of(http, after_login.headers["location"])
    tampered = {
        **form,
        "decision": "allow",
        "client_id": other["client_id"],
        "redirect_uri": "https://evil.example/cb",
        "scope": "openid email profile mcp:tools",
        "resource": "https://evil.example/",
        "code_challenge": "A" * 43,
        "state": "evil",
    }
    response = await http.post("/consent", data=tampered)
    location = response.headers["location"]
    assert urlsplit(location).netloc == "127.0.0.1:5555"
    query = query_of(location)
    assert query["state"] == auth.state
    tokens = await redeem(http, auth, query["code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "openid"


async def test_s7_12_tampered_login_fields_change_nothing(server: Server) -> None:
    """HTML-7: extra fields in the login POST do not change the request either."""
    http = server.http
    cli_auth_client = await register(http)
    auth = Authorization(cli_auth_client["client_id"], scope="openid")
    form = await form_of(http, await start(http, auth))
    response = await http.post(
        "/login",
        data={
            **form,
            "email": ALICE[0],
            "password": ALICE[1],
            "redirect_uri": "https://evil.example/cb",
            "scope": "openid email",
            "client_id": "other",
        },
    )
    assert response.headers["location"].startswith("/consent?")
    done = await consent(http, response.headers["location"])
    query = query_of(done.headers["location"])
    assert done.headers["location"].startswith(CB + "?")
    tokens = await redeem(http, auth, query["code"])
    assert tokens.json()["scope"] == "openid"


# --- CORS-4 -----------------------------------------------------------------------------------


async def test_rfc9700_s2_6_no_cors_on_authorize_login_consent(server: Server) -> None:
    """CORS-4: the authorization endpoint and the cookie-authenticated pages never answer
    with Access-Control-Allow-Origin, for GET or a preflight."""
    http = server.http
    client = await register(http)
    location = await start(http, Authorization(client["client_id"]))
    origin = {"Origin": "https://evil.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    paths = ["/authorize", "/login", "/consent", "/logout"]
    for path in paths:
        for response in (
            await http.get(path, headers=origin),
            await http.options(path, headers=preflight),
        ):
            assert "access-control-allow-origin" not in response.headers, path
            assert "access-control-allow-credentials" not in response.headers, path
    page = await http.get(location, headers=origin)
    assert "access-control-allow-origin" not in page.headers
    posted = await http.post("/login", data={"request": "x"}, headers=origin)
    assert "access-control-allow-origin" not in posted.headers


# --- ERR-2 on the forms --------------------------------------------------------------------


async def test_s7_12_garbage_request_ids_and_bodies_are_4xx(server: Server) -> None:
    """ERR-2: unknown, forged or malformed request ids and form bodies are 4xx, never 500."""
    http = server.http
    client = await register(http)
    location = await start(http, Authorization(client["client_id"]))
    real = location.partition("=")[2]
    forged = ["ar_0123456789abcdef0123_x", "ar__", "x" * 5000, real + "x", "ac_" + real[3:]]
    for request_id in forged:
        for path in ("/login", "/consent"):
            response = await http.get(path, params={"request": request_id})
            assert response.status_code in (303, 400), (path, request_id)
            assert not urlsplit(response.headers.get("location", "")).netloc
    form = {"content-type": "application/x-www-form-urlencoded"}
    for body in (b"request=%ff&csrf=%zz", b"a=1&&&=", b"request=x\x00&csrf=y"):
        for path in ("/login", "/consent", "/logout"):
            response = await http.post(path, content=body, headers=form)
            assert response.status_code < 500, (path, body)
            assert "location" not in response.headers
