"""Consent at /consent: who asks, for what, and where the person will be sent (HTML-4), with
Allow and Deny. Self-registered clients are marked unverified; consent is remembered per
user, client, scopes and resources."""

from __future__ import annotations

from functools import partial
from urllib.parse import urlsplit

from quart import Response, request

from oauthd.actors import GetClient
from oauthd.actors.grants import (
    ApprovePending,
    CheckPending,
    ConsentPending,
    DenyPending,
    Pending,
    PreparePending,
)
from oauthd.actors.people import GrantConsent, SessionView
from oauthd.errors import InvalidRequest
from oauthd.oauth.oidc_prompt import is_stale_session
from oauthd.oauth.rfc6749_authorize import AuthorizationRequest
from oauthd.oauth.rfc8252_redirects import is_loopback_redirect
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.oauth.rfc8628_device import display_user_code
from oauthd.storage import ClientRecord, hash_secret
from oauthd.web.asks import ask_directory, ask_pending
from oauthd.web.browser import Cookies, current_session, form_params
from oauthd.web.errors import shows_error_page
from oauthd.web.interaction import deliver_code, to_login
from oauthd.web.pages import page
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = ["register"]

PATH = "/consent"


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    return Contribution()


def views(app: RouteTable, state: AppState) -> None:
    cookies = Cookies.of(state)
    # Federation: consent comes before the upstream login, so the page also serves a person
    # who is not signed in yet (routes/federation.py).
    federated = state.settings.federation.enabled and not state.settings.dev_mode
    upstream = state.settings.federation.label if federated else ""
    upstream_url = state.settings.federation.upstream_issuer if federated else ""

    def signed_in(req: AuthorizationRequest, session: SessionView | None) -> SessionView | None:
        if session is None or is_stale_session(req, hash_secret(session.session_id)):
            return None
        return session

    @shows_error_page()
    async def consent_form() -> Response:
        request_id = request.args.get("request", "")
        browser = cookies.require_browser()
        pending = await ask_pending(state, request_id, PreparePending(request_id, browser))
        session = signed_in(pending.request, await current_session(state, cookies))
        if session is None and (not federated or pending.request.consented):
            return to_login(state, request_id)
        client = await ask_pending(state, request_id, GetClient())
        return render(request_id, pending, client, session)

    def render(
        request_id: str, pending: Pending, client: ClientRecord, session: SessionView | None
    ) -> Response:
        req = pending.request
        registered = client.redirect_uris
        return page(
            "consent.html",
            # Allow and Deny end in a 303 to the client; before a federated login, Allow goes
            # on to the upstream (its authorization endpoint is on its issuer's origin).
            form_targets=(req.redirect_uri,) if session else (req.redirect_uri, upstream_url),
            action=state.path(PATH),
            request_id=request_id,
            csrf=pending.csrf,
            client_name=client.client_name or client.client_id,
            unverified=client.self_asserted,
            # CIMD-00 §6.4: a client known by its metadata document is named by that host.
            document_host=urlsplit(client.client_id).hostname
            if client.source == "document"
            else None,
            user_email=(session.user.email or session.user.name or "your account")
            if session
            else None,
            upstream=upstream,
            redirect_host=urlsplit(req.redirect_uri).hostname or req.redirect_uri,
            loopback_only=all(is_loopback_redirect(uri) for uri in registered),
            scopes=req.scope,
            resources=req.resources,
            # RFC 8628 §5.4: the person compares this with the code on their device.
            user_code=display_user_code(req.user_code) if req.user_code else None,
        )

    @shows_error_page()
    async def consent_submit() -> Response:
        form = await form_params()
        request_id, csrf, browser = (
            form.get("request") or "",
            form.get("csrf") or "",
            cookies.require_browser(),
        )
        req = await ask_pending(state, request_id, CheckPending(request_id, browser, csrf))
        session = signed_in(req, await current_session(state, cookies))
        if session is None and not federated:
            return to_login(state, request_id)
        decision = form.get("decision")
        if decision == "deny":
            denied = await ask_pending(state, request_id, DenyPending(request_id, browser, csrf))
            return deliver_code(state, denied)
        if decision != "allow":
            raise InvalidRequest("choose Allow or Deny")
        if session is None:  # allowed before login: now to the upstream (federation)
            await ask_pending(state, request_id, ConsentPending(request_id, browser, csrf))
            return to_login(state, request_id)
        return await approve(request_id, browser, csrf, req, session)

    async def approve(
        request_id: str, browser: str, csrf: str, req: AuthorizationRequest, session: SessionView
    ) -> Response:
        user_id = session.user.user_id
        if req.device_code_hash is None:  # a device is asked every time: nothing to keep
            await ask_directory(
                state,
                GrantConsent(user_id, req.client_id, req.scope, req.resources, req.redirect_uri),
            )
        issued = await ask_pending(
            state,
            request_id,
            ApprovePending(request_id, browser, csrf, user_id, session.auth_time),
        )
        return deliver_code(state, issued)

    app.add_url_rule(state.path(PATH), "consent_form", consent_form, methods=["GET"])
    app.add_url_rule(state.path(PATH), "consent_submit", consent_submit, methods=["POST"])
