"""The pages a person uses, in a real browser (OAuth 2.1 §7.9-§7.12, RFC 8628 §3.3): clicking
through login and consent to the client's loopback redirect URI, denying, entering a device
code, signing out, an error page, a phone-sized screen, the keyboard alone, and screenshots
of every page. Every test also checks (in `open_browser`) that no page requested anything
from another origin and that the browser reported no CSP violation (HTML-1, HTML-9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.browser.conftest import (
    DESKTOP,
    NO_PLAYWRIGHT,
    PHONE,
    Callback,
    OpenBrowser,
    Visit,
    missing,
)
from tests.flow import ALICE, LOOPBACK, RESOURCE, Authorization, query_of

try:
    from playwright.sync_api import Page, expect
except ImportError:
    missing(NO_PLAYWRIGHT, module=True)

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def register(http: httpx.Client, **metadata: Any) -> dict[str, Any]:
    body = {
        "redirect_uris": [LOOPBACK],  # any port on loopback (RFC 8252 §7.3)
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "Acme Notes",
        **metadata,
    }
    response = http.post("/register", json=body)
    assert response.status_code == 201, response.text
    client: dict[str, Any] = response.json()
    return client


def new_authorization(http: httpx.Client, callback: Callback) -> tuple[Authorization, str]:
    """A fresh client and its authorization request: (the request, the /authorize URL)."""
    client = register(http)
    auth = Authorization(client["client_id"], redirect_uri=callback.redirect_uri)
    return auth, "/authorize?" + urlencode(auth.params)


def redeem(http: httpx.Client, auth: Authorization, code: str) -> httpx.Response:
    return http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri,
            "client_id": auth.client_id,
            "resource": RESOURCE,
        },
    )


def sign_in(page: Page, password: str = ALICE[1]) -> None:
    expect(page).to_have_title("Sign in · oauthd")
    page.get_by_label("Email").fill(ALICE[0])
    page.get_by_label("Password").fill(password)
    submit(page, "Sign in")


def submit(page: Page, button: str) -> None:
    """Press a form's button and wait for the page it leads to: a click does not wait for
    the navigation it starts, and a page read in between has no document."""
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


def back_at_client(page: Page, callback: Callback) -> dict[str, str]:
    """Wait for the browser to arrive at the client's redirect URI; its query."""
    page.wait_for_url(lambda url: url.startswith(callback.redirect_uri + "?"))
    return query_of(page.url)


def device_request(http: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """(client, device authorization response) for a fresh device client (RFC 8628 §3.2)."""
    client = register(http, redirect_uris=[], grant_types=[DEVICE], client_name="Living-room TV")
    response = http.post(
        "/device_authorization", data={"client_id": client["client_id"], "scope": "openid"}
    )
    assert response.status_code == 200, response.text
    started: dict[str, Any] = response.json()
    return client, started


def poll(http: httpx.Client, client: dict[str, Any], device_code: str) -> httpx.Response:
    return http.post(
        "/token",
        data={"grant_type": DEVICE, "device_code": device_code, "client_id": client["client_id"]},
    )


def focused(page: Page) -> str:
    """The focused element as `tag#id` or `tag:text`, for keyboard checks."""
    described: str = page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.tagName.toLowerCase() + (e.id ? '#' + e.id : ':' + e.textContent.trim()); }"
    )
    return described


def focus_ring(page: Page) -> str:
    ring: str = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return s.outlineStyle + ' ' + s.outlineWidth; }"
    )
    return ring


# --- the authorization-code flow -------------------------------------------------------------


def test_s4_1_code_flow_through_login_and_consent_without_javascript(
    open_browser: OpenBrowser, http: httpx.Client, callback: Callback
) -> None:
    """HTML-1, HTML-4: with JavaScript off, a person signs in, reads the consent page (client
    marked unverified, redirect host, scopes) and allows; the browser lands on the loopback
    redirect URI (form-action lets it) with a code that redeems for a token."""
    visit: Visit = open_browser(java_script_enabled=False)
    page = visit.page
    auth, url = new_authorization(http, callback)
    page.goto(url)
    sign_in(page)
    expect(page).to_have_title("Allow access? · oauthd")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("Acme Notes")
    expect(heading).to_contain_text("Unverified")
    expect(page.locator("dl.facts")).to_contain_text("127.0.0.1")
    expect(page.locator("dl.facts")).to_contain_text(ALICE[0])
    expect(page.get_by_text("See your email address")).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    query = back_at_client(page, callback)
    assert query["state"] == auth.state
    assert query["iss"] == visit.home
    expect(page.get_by_text("Back at the client.")).to_be_visible()
    tokens = redeem(http, auth, query["code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["token_type"] == "Bearer"
    assert tokens.json()["scope"] == "openid email"


def test_s4_1_2_1_deny_on_consent_sends_access_denied(
    open_browser: OpenBrowser, http: httpx.Client, callback: Callback
) -> None:
    """HTML-4: Deny sends the browser to the client with error=access_denied and no code."""
    page = open_browser().page
    auth, url = new_authorization(http, callback)
    page.goto(url)
    sign_in(page)
    page.get_by_role("button", name="Deny").click()
    query = back_at_client(page, callback)
    assert query["error"] == "access_denied"
    assert query["state"] == auth.state
    assert "code" not in query


def test_s7_10_wrong_password_is_announced_next_to_the_fields(
    open_browser: OpenBrowser, http: httpx.Client, callback: Callback
) -> None:
    """A wrong password re-renders the form with an alert that both fields point to."""
    page = open_browser().page
    _, url = new_authorization(http, callback)
    page.goto(url)
    sign_in(page, password="wrong")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("The email or password is incorrect.")
    for label in ("Email", "Password"):
        field = page.get_by_label(label)
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_have_attribute("aria-describedby", "login-error")
    expect(page.get_by_label("Email")).to_have_value(ALICE[0])  # kept: retype the password only
    sign_in(page)
    expect(page).to_have_title("Allow access? · oauthd")


# --- the device flow ---------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["as shown", "lower case without the dash"])
def test_rfc8628_s3_3_device_code_entered_with_and_without_dash(
    open_browser: OpenBrowser, http: httpx.Client, typed: str
) -> None:
    """RFC 8628 §3.3, DEVICE-10: the person types the code (as shown, or in lower case
    without the dash), signs in, compares the code on the consent page and allows; the
    device's next poll gets tokens."""
    page = open_browser().page
    client, started = device_request(http)
    user_code: str = started["user_code"]
    page.goto("/device")
    expect(page).to_have_title("Connect a device · oauthd")
    entered = user_code if typed == "as shown" else user_code.replace("-", "").lower()
    page.get_by_label("Code").fill(entered)
    page.get_by_role("button", name="Continue").click()
    sign_in(page)
    expect(page.locator("p.code")).to_have_text(user_code)
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You're signed in on your device")
    tokens = poll(http, client, started["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert "access_token" in tokens.json()


def test_rfc8628_s3_3_wrong_device_code_is_announced(open_browser: OpenBrowser) -> None:
    """RATE-4: a wrong code gets one generic message, announced and tied to the field."""
    page = open_browser().page
    page.goto("/device")
    page.get_by_label("Code").fill("BBBB-BBBB")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("That code is not valid")
    field = page.get_by_label("Code")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", "device-error user-code-hint")
    expect(field).to_have_value("BBBB-BBBB")  # kept, to fix a typo


# --- logout and errors -------------------------------------------------------------------------


def test_s7_10_logout_in_the_browser(
    open_browser: OpenBrowser, http: httpx.Client, callback: Callback
) -> None:
    """Logout: the form names the account, Sign out ends the session, and the next
    authorization asks for a login again."""
    page = open_browser().page
    _, url = new_authorization(http, callback)
    page.goto(url)
    sign_in(page)
    page.get_by_role("button", name="Allow").click()
    back_at_client(page, callback)
    page.goto("/logout")
    expect(page).to_have_title("Sign out? · oauthd")
    expect(page.get_by_text(ALICE[0])).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    page.goto(url)
    expect(page).to_have_title("Sign in · oauthd")


def test_s4_1_2_1_unknown_client_gets_an_error_page(open_browser: OpenBrowser) -> None:
    """HTML-1, HTML-6: a request that cannot be redirected is shown as a page: 400, a heading,
    the description as an alert, the error code, and the page's anti-framing headers."""
    page = open_browser().page
    response = page.goto("/authorize?client_id=nobody&response_type=code")
    assert response is not None
    assert response.status == 400
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    expect(page).to_have_title("Error · oauthd")
    expect(page.get_by_role("heading", level=1)).to_have_text("Something went wrong")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("code")).to_have_text("invalid_client")


# --- a phone, and the keyboard alone -------------------------------------------------------------


def assert_fits(page: Page, width: int) -> None:
    """Nothing wider than the screen: no sideways scrolling, every button fully on screen."""
    scroll_width: int = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, page.url
    for button in page.get_by_role("button").all():
        box = button.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= width


def test_code_flow_on_a_360px_phone(
    open_browser: OpenBrowser, http: httpx.Client, callback: Callback
) -> None:
    """The whole flow works at 360x740 and no page scrolls sideways; buttons are full width."""
    page = open_browser(viewport=PHONE, is_mobile=True, has_touch=True).page
    auth, url = new_authorization(http, callback)
    page.goto(url)
    assert_fits(page, PHONE["width"])
    sign_in(page)
    assert_fits(page, PHONE["width"])
    allow = page.get_by_role("button", name="Allow").bounding_box()
    assert allow is not None
    assert allow["width"] >= PHONE["width"] - 60
    page.get_by_role("button", name="Allow").tap()
    query = back_at_client(page, callback)
    assert redeem(http, auth, query["code"]).status_code == 200


def test_keyboard_only_login_and_consent(
    open_browser: OpenBrowser, http: httpx.Client, callback: Callback
) -> None:
    """Keyboard alone (typing, Tab, Enter): the email field has focus on arrival, Tab moves to
    the password, Enter signs in, Tab reaches Allow, Enter allows; focus is always visible."""
    page = open_browser().page
    auth, url = new_authorization(http, callback)
    page.goto(url)
    # autofocus is applied at a rendering update, which may come after the load event
    expect(page.locator("input#email")).to_be_focused()
    assert focused(page) == "input#email"
    page.keyboard.type(ALICE[0])
    page.keyboard.press("Tab")
    assert focused(page) == "input#password"
    assert focus_ring(page) == "solid 3px"
    page.keyboard.type(ALICE[1])
    page.keyboard.press("Enter")
    expect(page).to_have_title("Allow access? · oauthd")
    page.keyboard.press("Tab")
    assert focused(page) == "button:Allow"
    assert focus_ring(page) == "solid 3px"
    page.keyboard.press("Enter")
    query = back_at_client(page, callback)
    assert redeem(http, auth, query["code"]).status_code == 200


# --- screenshots ----------------------------------------------------------------------------


SIZES = {
    "desktop": {"viewport": DESKTOP},
    "phone": {"viewport": PHONE, "is_mobile": True, "has_touch": True},
    "phone-dark": {"viewport": PHONE, "is_mobile": True, "color_scheme": "dark"},
}


@pytest.mark.parametrize("size", list(SIZES))
def test_every_page_styled_and_screenshotted(
    open_browser: OpenBrowser,
    http: httpx.Client,
    callback: Callback,
    artifacts: Path,
    size: str,
) -> None:
    """HTML-9: every page (login, login error, consent, device entry and error, device
    consent and result, logout, signed out, error) renders with its stylesheet applied (the
    CSP hash matches) and fits the screen; a screenshot of each is kept as an artifact."""
    options = SIZES[size]
    width = options["viewport"]["width"]
    page = open_browser(**options).page

    def shot(name: str) -> None:
        assert_fits(page, width)
        page.screenshot(path=artifacts / f"{name}-{size}.png", full_page=True)

    _, url = new_authorization(http, callback)
    page.goto(url)
    primary = page.get_by_role("button", name="Sign in")
    accent = "rgb(123, 156, 255)" if size.endswith("dark") else "rgb(41, 82, 204)"
    expect(primary).to_have_css("background-color", accent)  # the stylesheet was applied
    shot("login")
    sign_in(page, password="wrong")
    shot("login-error")
    sign_in(page)
    shot("consent")
    page.get_by_role("button", name="Allow").click()
    back_at_client(page, callback)
    page.goto("/device")
    shot("device")
    page.get_by_label("Code").fill("BBBB-BBBB")
    submit(page, "Continue")
    shot("device-error")
    _, started = device_request(http)
    page.goto(started["verification_uri_complete"])
    shot("device-consent")
    submit(page, "Allow")
    shot("device-done")
    page.goto("/logout")
    shot("logout")
    submit(page, "Sign out")
    shot("signed-out")
    page.goto("/authorize?client_id=nobody&response_type=code")
    shot("error")
