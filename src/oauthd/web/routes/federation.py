"""Login at the upstream identity provider (production): GET /login sends the browser there,
GET /callback brings it back (OIDC Core §3.1.2, §3.1.2.5).

The order is the one MCP's security best practices ask of a proxy in front of another
authorization server: a third-party client's request is allowed on oauthd's consent page
first, and only then is a login (`state`, bound to this browser by the `login` cookie)
started upstream (HTML-10). The callback refuses an unknown, used, expired or other-browser
state with an error page and never redirects for it; an upstream error is relayed to the
client as `access_denied` or `server_error` only after the state checked out.
"""

from __future__ import annotations

import secrets
from functools import partial

from quart import Response, request

from oauthd.actors import GetClient
from oauthd.actors.federation import (
    BeginLogin,
    FinishLogin,
    LoggedIn,
    LoginFailed,
    federation_address,
)
from oauthd.actors.grants import (
    CodeIssued,
    DenyPending,
    PreparePending,
)
from oauthd.actors.people import LinkIdentity
from oauthd.audit import audit
from oauthd.errors import AccessDenied, InvalidRequest, OAuthError, ServerError
from oauthd.oauth.oidc_prompt import forces_upstream_login
from oauthd.oauth.params import Params
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.web.asks import ask, ask_directory, ask_pending
from oauthd.web.browser import Cookies, query_params
from oauthd.web.errors import bad_request_status, shows_error_page
from oauthd.web.interaction import (
    SignedIn,
    consent_reason,
    deliver_code,
    finish_login,
    redirect_error,
    to_consent,
)
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = ["register"]

LOGIN = "/login"
CALLBACK = "/callback"
EXPIRED = "this sign-in has expired or was already used; start again from the app"


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    return Contribution()


def views(app: RouteTable, state: AppState) -> None:
    settings = state.settings
    if settings.dev_mode or not settings.federation.enabled:
        return  # dev mode logs in with the form at /login (routes/login.py)
    cookies = Cookies.of(state)
    upstream = federation_address(state.tenant)
    provider = settings.federation.upstream_issuer
    method = f"federation:{provider}"  # the session's and the audit log's

    @shows_error_page()
    async def start() -> Response:
        request_id = request.args.get("request", "")
        browser = cookies.require_browser()
        pending = await ask_pending(state, request_id, PreparePending(request_id, browser))
        client = await ask_pending(state, request_id, GetClient())
        req = pending.request
        # HTML-10: a client that needs consent is allowed here before the upstream login.
        if not req.consented and await consent_reason(state, client, None, req) is not None:
            return to_consent(state, request_id)
        binding = cookies.read("login") or secrets.token_urlsafe(32)
        force_login = forces_upstream_login(req)
        message = BeginLogin(request_id, binding, req.login_hint, req.max_age, force_login)
        location = await ask(state, upstream, message)
        # A plain 303 to the upstream: it is a GET, and the person's next stop.
        response = Response("", status=303, headers={"Location": location})
        response.headers["Cache-Control"] = "no-store"
        cookies.set(response, "login", binding, settings.federation.login_ttl_s)
        return response

    async def callback() -> Response:
        response = await come_back()
        cookies.clear(response, "login")  # single use, whatever happened
        return response

    @shows_error_page(bad_request_status)
    async def come_back() -> Response:
        try:
            finished = await finish(query_params())
            browser = cookies.require_browser()
            if isinstance(finished, LoginFailed):
                return await refuse(finished, browser)
            return await resume(finished, browser)
        except OAuthError as exc:
            audit("login_failed", method=method, reason=exc.code)
            raise

    async def finish(params: Params) -> LoggedIn | LoginFailed:
        binding = cookies.read("login")
        found = params.get("state")
        if not found or binding is None:
            raise InvalidRequest(EXPIRED)
        message = FinishLogin(
            found,
            binding,
            params.get("code"),
            params.get("error"),
            params.get("error_description"),
            params.get("iss"),
        )
        result = await ask(state, upstream, message)
        return result

    async def refuse(failed: LoginFailed, browser: str) -> Response:
        """The client learns that the login did not happen, not why (the log knows)."""
        reason = "denied" if failed.denied else "upstream_error"
        audit("login_failed", method=method, reason=reason)
        pending = await ask_pending(
            state, failed.request_id, PreparePending(failed.request_id, browser)
        )
        message = DenyPending(failed.request_id, browser, pending.csrf)
        denied = await ask_pending(state, failed.request_id, message)
        refusal: OAuthError = (
            AccessDenied("the sign-in was cancelled")
            if failed.denied
            else ServerError("the identity provider could not complete the sign-in")
        )
        if isinstance(denied, CodeIssued) and not pending.request.consented:
            # Nobody allowed it on the consent page, which names the destination (a client
            # the operator registered as first party): the policy for /authorize decides.
            client = await ask_pending(state, failed.request_id, GetClient())
            return redirect_error(state, client, denied.redirect_uri, denied.state, refusal)
        return deliver_code(state, denied, refusal)

    async def resume(done: LoggedIn, browser: str) -> Response:
        """Link the upstream subject to a local user, start the session, and continue the
        authorization request: a code when it was allowed already, else the consent page."""
        identity = done.identity
        user = await ask_directory(
            state, LinkIdentity(provider, identity.subject, identity.email, identity.name)
        )
        auth_time = identity.auth_time or int(state.clock.now())
        who = SignedIn(done.request_id, browser, user.user_id, method, auth_time)
        return await finish_login(state, cookies, who)

    app.add_url_rule(state.path(LOGIN), "federated_login", start, methods=["GET"])
    app.add_url_rule(state.path(CALLBACK), "federated_callback", callback, methods=["GET"])
