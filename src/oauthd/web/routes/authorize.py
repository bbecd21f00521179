"""GET /authorize (OAuth 2.1 §4.1.1): validate, then either answer at once (a session and
consent already in place) or keep the request server-side and send the person to log in or
consent. Client and redirect URI problems are shown, never redirected; every later error goes
through `redirect_error` (AUTHZ-17)."""

from __future__ import annotations

from functools import partial

from quart import Response, request

from oauthd.actors import GetClient, client_address
from oauthd.actors.grants import IssueCode
from oauthd.actors.people import SessionView
from oauthd.errors import OAuthError
from oauthd.oauth.oidc_prompt import login_reason, mark_stale_session, prompt_none_refusal
from oauthd.oauth.rfc6749_authorize import (
    MAX_STATE,
    AuthorizationRequest,
    ClientView,
    ServerView,
    check_request,
    choose_redirect_uri,
    read_client_id,
)
from oauthd.oauth.rfc7636_pkce import METHODS
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.oauth.scopes import known_scopes, parse_scope
from oauthd.storage import ClientRecord, hash_secret
from oauthd.web.asks import ask_client, refresh_document_client
from oauthd.web.browser import Cookies, current_session, form_params, query_params
from oauthd.web.errors import bad_request_status, shows_error_page
from oauthd.web.interaction import (
    begin_interaction,
    consent_reason,
    deliver_code,
    redirect_error,
)
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = ["register"]

PATH = "/authorize"


def client_view(client: ClientRecord) -> ClientView:
    return ClientView(
        client.client_id, client.redirect_uris, client.grant_types, parse_scope(client.scope)
    )


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, app, state))  # made with the Quart app (web/routing.py)
    scopes = known_scopes(state.settings)
    # CIMD-00 §5: clients may use an https URL naming their metadata document as client_id.
    documents = state.settings.client_metadata.enabled
    return Contribution(
        members={
            **({"client_id_metadata_document_supported": True} if documents else {}),
            "authorization_endpoint": state.url(PATH),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": list(METHODS),
            "authorization_response_iss_parameter_supported": True,
            "scopes_supported": sorted(scopes),
            "prompt_values_supported": ["consent", "login", "none"],
        },
        oidc={"subject_types_supported": ["public"], "claims_supported": CLAIMS},
    )


def views(app: RouteTable, state: AppState) -> None:
    scopes = known_scopes(state.settings)
    resources = tuple(r.uri for r in state.settings.resources)
    server = ServerView(scopes, resources, state.settings.issuer)  # what check_request needs
    cookies = Cookies.of(state)

    @shows_error_page(bad_request_status)  # until the redirect URI is known, and after
    async def authorize() -> Response:
        # OIDC Core §3.1.2.1: GET and POST (a form body) are the same request.
        params = await form_params() if request.method == "POST" else query_params()
        client_id = read_client_id(params)
        await refresh_document_client(state, client_id)  # a client_id URL (CIMD)
        client = await ask_client(state, client_id, GetClient())
        redirect = choose_redirect_uri(params, client.redirect_uris)
        states = params.get_all("state")
        # A refused over-long state is not echoed into the Location header it was refused for.
        echo_state = states[0] if len(states) == 1 and len(states[0]) <= MAX_STATE else None
        try:
            req = check_request(params, client_view(client), redirect, server)
        except OAuthError as exc:
            return redirect_error(state, client, redirect, echo_state, exc)
        return await decide(client, req, await current_session(state, cookies))

    async def decide(
        client: ClientRecord, req: AuthorizationRequest, session: SessionView | None
    ) -> Response:
        auth_time = session.auth_time if session is not None else None
        login = login_reason(req, auth_time=auth_time, now=int(state.clock.now()))
        if login is None and session is not None:
            user_id = session.user.user_id
            if await consent_reason(state, client, user_id, req) is None:
                message = IssueCode(req, user_id, session.auth_time)
                issued = await ask_client(state, client.client_id, message)
                return deliver_code(state, issued)
        refusal = prompt_none_refusal(req, login)
        if refusal is not None:
            return redirect_error(state, client, req.redirect_uri, req.state, refusal)
        if login is not None and session is not None:
            req = mark_stale_session(req, hash_secret(session.session_id))
        address = client_address(state.tenant, client.client_id)
        return await begin_interaction(state, cookies, address, req, login is not None)

    app.add_url_rule(state.path(PATH), "authorize", authorize, methods=["GET", "POST"])


CLAIMS = [
    "aud",
    "auth_time",
    "email",
    "email_verified",
    "exp",
    "iat",
    "iss",
    "name",
    "nonce",
    "sub",
]
