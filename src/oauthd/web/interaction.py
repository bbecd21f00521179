"""What login, consent, /authorize and /device share: whether consent is needed (the rules are
oauth/oidc_prompt.py's), finishing a login, and delivering the outcome: to the client's
redirect URI, or for a device request (RFC 8628) as a page telling the person to go back to
their device. Errors for a validated request go through
`redirect_error`, the one policy of which may reach the client (AUTHZ-17)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from quart import Response

from oauthd.actors import GetClient
from oauthd.actors.grants import (
    ApprovePending,
    CodeIssued,
    DeviceDecided,
    PreparePending,
    StartPending,
)
from oauthd.actors.people import GrantConsent, HasConsent, StartSession
from oauthd.errors import AccessDenied, InvalidRequest, OAuthError
from oauthd.oauth import oidc_prompt
from oauthd.oauth.oidc_prompt import reads_remembered
from oauthd.oauth.rfc6749_authorize import AuthorizationRequest
from oauthd.oauth.rfc8252_redirects import errors_redirectable
from oauthd.oauth.rfc8628_device import display_user_code
from oauthd.runtime import Address
from oauthd.storage import ClientRecord
from oauthd.web.asks import ask, ask_directory, ask_pending
from oauthd.web.browser import Cookies, client_location, redirect_to_client, see_other
from oauthd.web.errors import bad_request_status
from oauthd.web.pages import error_page, page
from oauthd.web.state import AppState

__all__ = [
    "SignedIn",
    "begin_interaction",
    "code_location",
    "consent_reason",
    "deliver_code",
    "finish_login",
    "redirect_error",
    "to_consent",
    "to_login",
]

BROWSER_COOKIE_S = 30 * 86_400


async def consent_reason(
    state: AppState, client: ClientRecord, user_id: str | None, req: AuthorizationRequest
) -> str | None:
    """Why `user_id` must be asked to allow `req` (`oidc_prompt.consent_reason`), or None;
    `user_id` None before a federated login, when who logs in is not known yet. What they
    allowed before is looked up only when it can decide."""
    first_party = client.first_party
    covered: bool | None = None if user_id is None else True  # True: read only if it decides
    if user_id is not None and reads_remembered(req, first_party=first_party):
        message = HasConsent(user_id, client.client_id, req.scope, req.resources, req.redirect_uri)
        covered = await ask_directory(state, message)
    return oidc_prompt.consent_reason(req, first_party=first_party, covered=covered)


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
    return error_page(error, bad_request_status(error))


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
    return see_other(code_location(state, issued))


def code_location(state: AppState, issued: CodeIssued) -> str:
    """Where a code goes: the request's redirect URI with the code, its state and `iss`."""
    return client_location(state, issued.redirect_uri, {"code": issued.code, "state": issued.state})


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
    request_id = await ask(state, client, StartPending(req, browser))
    # dev login, or the upstream (after consent), or consent alone when logged in
    response = to_login(state, request_id) if needs_login else to_consent(state, request_id)
    if new_browser:
        cookies.set(response, "browser", browser, BROWSER_COOKIE_S)
    return response


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A person who has just proved who they are, for a pending request in this browser."""

    request_id: str
    browser: str
    user_id: str
    method: str  # "dev", "password" or "federation:<issuer>": the session's, for the audit log
    auth_time: int


async def finish_login(
    state: AppState,
    cookies: Cookies,
    who: SignedIn,
    form: tuple[AuthorizationRequest, str] | None = None,
) -> Response:
    """The end of every login (the form at /login, the upstream's /callback): start the
    session, then ask for consent or deliver the code, and set the session cookie.

    `form`: the request and CSRF token of the login form just posted. Without one (back from
    the upstream) the request's own token is used, minted here."""
    session_id = await ask_directory(
        state, StartSession(who.user_id, cookies.read("session"), who.method)
    )
    request_id, browser = who.request_id, who.browser
    if form is None:
        pending = await ask_pending(state, request_id, PreparePending(request_id, browser))
        req, csrf = pending.request, pending.csrf
    else:
        req, csrf = form
    client = await ask_pending(state, request_id, GetClient())
    # Allowed on the consent page before the upstream login (federation): nothing to ask.
    reason = None if req.consented else await consent_reason(state, client, who.user_id, req)
    if reason is not None:
        if form is not None:
            # The form's CSRF token is spent: minting the next one retires it (HTML-2).
            await ask_pending(state, request_id, PreparePending(request_id, browser))
        response = to_consent(state, request_id)
    else:
        if req.consented and req.device_code_hash is None:  # a device is asked every time
            consent = GrantConsent(
                who.user_id, req.client_id, req.scope, req.resources, req.redirect_uri
            )
            await ask_directory(state, consent)
        message = ApprovePending(request_id, browser, csrf, who.user_id, who.auth_time)
        issued = await ask_pending(state, request_id, message)
        response = deliver_code(state, issued)
    cookies.set(response, "session", session_id, state.settings.sessions.ttl_s)
    return response
