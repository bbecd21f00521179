"""GET /authorize (OAuth 2.1 §4.1.1): validate, then either answer at once (a session and
consent already in place) or keep the request server-side and send the person to log in or
consent. Client and redirect URI problems are shown, never redirected; every later error goes
through `redirect_error` (AUTHZ-17).

The answer at once, a 303 with the code, is also given by the fast path (`web/fast.py`,
`FastRoutes.share`) to a GET with a session cookie, through the same two steps (`validate`,
`code_at_once`): it needs no template, form or error page. Whatever else the request needs (a
login, consent, an error shown or redirected) the fast handler passes on before anything was
written, and the Quart route answers it from the start. Issuing the code is one transaction
that writes nothing when it fails (the client's registration changed), so a failure is passed
on too, and the Quart route answers what it finds then."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from quart import Response, request
from werkzeug.http import parse_cookie

from oauthd.actors import GetClient, client_address
from oauthd.actors.grants import CodeIssued, IssueCode
from oauthd.actors.people import SessionView
from oauthd.errors import OAuthError
from oauthd.oauth.oidc_prompt import login_reason, mark_stale_session, prompt_none_refusal
from oauthd.oauth.params import Params
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
from oauthd.web.browser import (
    Cookies,
    current_session,
    form_params,
    query_params,
    see_other_headers,
)
from oauthd.web.errors import bad_request_status, shows_error_page
from oauthd.web.fast import ApiRequest, ApiResponse
from oauthd.web.interaction import (
    begin_interaction,
    code_location,
    consent_reason,
    deliver_code,
    redirect_error,
)
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = ["register"]

PATH = "/authorize"
HTML = "text/html; charset=utf-8"  # what Quart declares for the same empty 303


def client_view(client: ClientRecord) -> ClientView:
    return ClientView(
        client.client_id, client.redirect_uris, client.grant_types, parse_scope(client.scope)
    )


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    at_once_here = partial(at_once, state, server_view(state), Cookies.of(state))
    app.fast.share(state.path(PATH), "GET", at_once_here)
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


def server_view(state: AppState) -> ServerView:
    """What `check_request` needs of the server."""
    resources = tuple(r.uri for r in state.settings.resources)
    return ServerView(known_scopes(state.settings), resources, state.settings.issuer)


@dataclass(frozen=True, slots=True)
class Validated:
    """A request whose client and redirect URI are known good: `checked` is the request, or
    the error to send to that redirect URI (with `echo_state`)."""

    client: ClientRecord
    redirect_uri: str
    echo_state: str | None
    checked: AuthorizationRequest | OAuthError


async def validate(state: AppState, server: ServerView, params: Params) -> Validated:
    """The client and redirect URI (raising when either is bad: shown, never redirected),
    then the rest of the request (OAuth 2.1 §4.1.1)."""
    client_id = read_client_id(params)
    await refresh_document_client(state, client_id)  # a client_id URL (CIMD)
    client = await ask_client(state, client_id, GetClient())
    redirect = choose_redirect_uri(params, client.redirect_uris)
    states = params.get_all("state")
    # A refused over-long state is not echoed into the Location header it was refused for.
    echo_state = states[0] if len(states) == 1 and len(states[0]) <= MAX_STATE else None
    try:
        checked: AuthorizationRequest | OAuthError = check_request(
            params, client_view(client), redirect, server
        )
    except OAuthError as exc:
        checked = exc
    return Validated(client, redirect, echo_state, checked)


async def code_at_once(
    state: AppState, client: ClientRecord, req: AuthorizationRequest, session: SessionView | None
) -> CodeIssued | None:
    """The code, issued when nobody needs to be asked anything: a session that needs no new
    login (`login_reason`) and consent given or not needed (`consent_reason`); else None."""
    if session is None:
        return None
    if login_reason(req, auth_time=session.auth_time, now=int(state.clock.now())) is not None:
        return None
    user_id = session.user.user_id
    if await consent_reason(state, client, user_id, req) is not None:
        return None
    return await ask_client(state, client.client_id, IssueCode(req, user_id, session.auth_time))


async def at_once(
    state: AppState, server: ServerView, cookies: Cookies, request: ApiRequest
) -> ApiResponse | None:
    """The fast path's GET /authorize: the 303 with a code when `code_at_once` gives one;
    None (the Quart route answers) for anything else."""
    jar = parse_cookie(request.headers.get("cookie", ""))
    if cookies.read("session", jar) is None:
        return None  # a login first
    try:
        found = await validate(state, server, request.query)
        if isinstance(found.checked, OAuthError):
            return None
        session = await current_session(state, cookies, jar)
        issued = await code_at_once(state, found.client, found.checked, session)
    except OAuthError:
        return None
    if issued is None:
        return None
    return ApiResponse(303, b"", see_other_headers(code_location(state, issued)), HTML)


def views(app: RouteTable, state: AppState) -> None:
    server = server_view(state)
    cookies = Cookies.of(state)

    @shows_error_page(bad_request_status)  # until the redirect URI is known, and after
    async def authorize() -> Response:
        # OIDC Core §3.1.2.1: GET and POST (a form body) are the same request.
        params = await form_params() if request.method == "POST" else query_params()
        found = await validate(state, server, params)
        client, redirect = found.client, found.redirect_uri
        if isinstance(found.checked, OAuthError):
            return redirect_error(state, client, redirect, found.echo_state, found.checked)
        return await decide(client, found.checked, await current_session(state, cookies))

    async def decide(
        client: ClientRecord, req: AuthorizationRequest, session: SessionView | None
    ) -> Response:
        issued = await code_at_once(state, client, req, session)
        if issued is not None:
            return deliver_code(state, issued)
        auth_time = session.auth_time if session is not None else None
        login = login_reason(req, auth_time=auth_time, now=int(state.clock.now()))
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
