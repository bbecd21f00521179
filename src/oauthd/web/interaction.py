"""What login, consent, /authorize and /device share: whether consent is needed, and
delivering the outcome: to the client's redirect URI, or for a device request (RFC 8628) as a
page telling the person to go back to their device. Errors for a validated request go through
`redirect_error`, the one policy of which may reach the client (AUTHZ-17)."""

from __future__ import annotations

from urllib.parse import urlencode

from quart import Response

from oauthd.actors.grants import CodeIssued, DeviceDecided, StartPending
from oauthd.actors.people import HasConsent
from oauthd.errors import AccessDenied, InvalidRequest, OAuthError
from oauthd.oauth.rfc6749_authorize import AuthorizationRequest
from oauthd.oauth.rfc8252_redirects import errors_redirectable
from oauthd.oauth.rfc8628_device import display_user_code
from oauthd.runtime import Address
from oauthd.storage import ClientRecord
from oauthd.web.asks import ask, ask_directory
from oauthd.web.browser import Cookies, redirect_to_client, see_other
from oauthd.web.pages import error_page, page
from oauthd.web.state import AppState

__all__ = [
    "begin_interaction",
    "consent_first",
    "consent_needed",
    "deliver_code",
    "redirect_error",
    "to_consent",
    "to_login",
]

BROWSER_COOKIE_S = 30 * 86_400


async def consent_needed(
    state: AppState, client: ClientRecord, user_id: str, req: AuthorizationRequest
) -> bool:
    """First-party clients skip consent; others need it once per user, client, scopes and
    resources, and again for anything wider (HTML-5). `prompt=consent` always asks, and so
    does every device request (RFC 8628 §5.4: remote phishing; DEVICE-9)."""
    if "consent" in req.prompt or req.device_code_hash is not None:
        return True
    if client.first_party:
        return False
    allowed: bool = await ask_directory(
        state,
        HasConsent(user_id, client.client_id, req.scope, req.resources, req.redirect_uri),
    )
    return not allowed


def consent_first(client: ClientRecord, req: AuthorizationRequest) -> bool:
    """Federation: whether the person must allow the request before being sent upstream to
    log in. Who logs in is not known yet, so remembered consent cannot count: every request
    that might need consent asks first (MCP security best practices, per-client consent
    before the upstream redirect; HTML-5, HTML-10)."""
    return "consent" in req.prompt or req.device_code_hash is not None or not client.first_party


def to_login(state: AppState, request_id: str) -> Response:
    return see_other(state.path("/login") + "?" + urlencode({"request": request_id}))


def to_consent(state: AppState, request_id: str) -> Response:
    return see_other(state.path("/consent") + "?" + urlencode({"request": request_id}))


def redirect_error(
    state: AppState,
    client: ClientRecord,
    redirect_uri: str,
    client_state: str | None,
    error: OAuthError,
) -> Response:
    """An error for a request whose client and redirect URI are valid: redirected with
    `state` and `iss` where `errors_redirectable` trusts the URI, else shown on an error page
    (RFC 9700 §4.11.2), whether or not the browser has a session."""
    if errors_redirectable(redirect_uri, self_asserted=client.self_asserted):
        return redirect_to_client(state, redirect_uri, {"state": client_state}, error)
    return error_page(error, 400 if error.status < 500 else error.status)


def deliver_code(
    state: AppState, issued: CodeIssued | DeviceDecided, refusal: OAuthError | None = None
) -> Response:
    """Send the outcome on: a code, or `refusal` (by default access_denied) when there is
    none. A refusal is redirected for every client: it follows the person's own choice on
    the consent page, which named the destination host (and marked an unverified client)."""
    if isinstance(issued, DeviceDecided):
        # RFC 8628 §3.3: nothing is sent to any client; the device learns it by polling.
        shown = display_user_code(issued.user_code) if issued.user_code else ""
        return page("device_done.html", approved=issued.approved, user_code=shown)
    if issued.code is None:
        error = refusal or AccessDenied("the user denied the request")
        return redirect_to_client(state, issued.redirect_uri, {"state": issued.state}, error)
    return redirect_to_client(
        state, issued.redirect_uri, {"code": issued.code, "state": issued.state}
    )


async def begin_interaction(
    state: AppState,
    cookies: Cookies,
    client: Address,
    req: AuthorizationRequest,
    needs_login: bool,
) -> Response:
    """Keep the request server-side, bound to this browser, and send the person to log in or
    to consent (docs/architecture.md "Browser side"): /authorize and /device start the same way."""
    settings = state.settings
    can_log_in = settings.dev_mode or settings.password_login or settings.federation.enabled
    if needs_login and not can_log_in:
        problem = InvalidRequest("no sign-in method is configured on this server")
        return error_page(problem, 503)
    browser, new_browser = cookies.browser()
    request_id: str = await ask(state, client, StartPending(req, browser))
    # dev login, or the upstream (after consent), or consent alone when logged in
    response = to_login(state, request_id) if needs_login else to_consent(state, request_id)
    if new_browser:
        cookies.set(response, "browser", browser, BROWSER_COOKIE_S)
    return response
