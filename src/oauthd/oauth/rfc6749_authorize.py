"""The authorization request (OAuth 2.1 §4.1.1), validated in the order the spec requires:
first the client and its redirect URI, whose failures are shown on an error page and never
redirected (OAuth 2.1 §4.1.2.1, RFC 9700 §4.1.3); then everything else, whose failures are
redirected to the validated redirect URI with `state` and `iss` (RFC 9207)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oauthd.errors import (
    InvalidRequest,
    RegistrationNotSupported,
    RequestNotSupported,
    RequestUriNotSupported,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from oauthd.oauth.params import Params
from oauthd.oauth.rfc7636_pkce import check_challenge
from oauthd.oauth.rfc8252_redirects import matches_registered
from oauthd.oauth.rfc8707_resources import resolve_resources
from oauthd.oauth.scopes import check_scopes_allowed, parse_scope

__all__ = [
    "MAX_STATE",
    "AuthorizationRequest",
    "ClientView",
    "RegistrationNotSupported",
    "RequestNotSupported",
    "RequestUriNotSupported",
    "ServerView",
    "check_request",
    "choose_redirect_uri",
    "read_client_id",
    "request_from_json",
    "request_to_json",
]

PROMPTS = frozenset({"none", "login", "consent"})
SINGLE = (
    "response_type",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "prompt",
    "max_age",
    "login_hint",
)
MAX_STATE = 2048  # a generous bound: state is echoed in a Location header


@dataclass(frozen=True, slots=True)
class ClientView:
    """What validation needs to know of a client."""

    client_id: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServerView:
    """What validation needs to know of this server."""

    scopes: frozenset[str]  # every scope it issues
    resources: tuple[str, ...]  # the configured [[resources]]
    issuer: str  # which also names its own resource, /userinfo (rfc8707_resources)


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    state: str | None
    scope: tuple[str, ...]
    resources: tuple[str, ...]
    code_challenge: str
    nonce: str | None
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str | None
    # OIDC Core §3.1.2.1: when prompt=login or max_age sent the person to log in although a
    # session existed, the hash of that session, which may then not answer this request.
    stale_session: str | None = None
    # RFC 8628: a device request (begun at /device, not /authorize) names its device code by
    # hash and carries the user code to show for confirmation; it has no redirect URI.
    device_code_hash: str | None = None
    user_code: str | None = None
    # Federation: the person allowed this request before being sent to the upstream to log
    # in (MCP security best practices: consent before the upstream redirect; HTML-10).
    consented: bool = False


# --- stage 1 and 2: error page, never a redirect -------------------------------------------


def read_client_id(params: Params) -> str:
    """OAuth 2.1 §4.1.2.1: a missing or repeated client_id is not redirectable."""
    client_id = params.get("client_id")
    if client_id is None:
        raise InvalidRequest("client_id is required")
    return client_id


def choose_redirect_uri(params: Params, registered: tuple[str, ...]) -> str:
    """The redirect URI to answer to.

    OAuth 2.1 §2.3.2: with one registered URI the parameter may be omitted; with several it
    is required. §4.1.2.1: a mismatch is shown to the user, never redirected."""
    requested = params.get("redirect_uri")
    if requested is None:
        if len(registered) == 1:
            return registered[0]
        raise InvalidRequest("redirect_uri is required")
    if not matches_registered(requested, registered):
        raise InvalidRequest("redirect_uri is not registered for this client")
    return requested


# --- stage 3: redirected errors -------------------------------------------------------------


Check = Callable[[Params, ClientView, ServerView], None]


def requested_scope(params: Params, client: ClientView) -> tuple[str, ...]:
    """The scope asked for; when omitted, the client's registered scope (RFC 6749 §3.3)."""
    return parse_scope(params.get("scope")) or client.scope


def check_no_repeats(params: Params, *_: object) -> None:
    # OAuth 2.1 §3.1: request and response parameters MUST NOT be included more than once.
    name = params.repeated(SINGLE)
    if name is not None:
        raise InvalidRequest(f"parameter {name} is repeated")


def check_no_request_objects(params: Params, *_: object) -> None:
    # OIDC Core §6: request objects are not supported (discovery says so).
    if params.get_all("request"):
        raise RequestNotSupported("request objects are not supported")
    if params.get_all("request_uri"):
        raise RequestUriNotSupported("request_uri is not supported")
    if params.get_all("registration"):
        raise RegistrationNotSupported("the registration parameter is not supported")


def check_response_type(params: Params, client: ClientView, *_: object) -> None:
    # OAuth 2.1 §4.1.1: response_type is required and "code" is the only one.
    response_type = params.get("response_type")
    if response_type is None:
        raise InvalidRequest("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseType("only response_type=code is supported")
    if "authorization_code" not in client.grant_types:
        raise UnauthorizedClient("the client is not registered for authorization_code")


def check_pkce(params: Params, *_: object) -> None:
    # OAuth 2.1 §4.1.2.1 / RFC 7636 §4.4.1: PKCE S256, required for every client.
    check_challenge(params.get("code_challenge"), params.get("code_challenge_method"))


def check_scope(params: Params, client: ClientView, server: ServerView) -> None:
    # OAuth 2.1 §4.1.2.1 invalid_scope.
    check_scopes_allowed(parse_scope(params.get("scope")), server.scopes, client.scope)


def check_resource(params: Params, client: ClientView, server: ServerView) -> None:
    # RFC 8707 §2 invalid_target; /userinfo's own identifiers need openid (RFC 9728 §3.3).
    scope = requested_scope(params, client)
    resolve_resources(params.get_all("resource"), server.resources, server.issuer, scope)


def check_prompt_and_max_age(params: Params, *_: object) -> None:
    # OIDC Core §3.1.2.1: prompt values; "none" with any other value is an error.
    prompt = set((params.get("prompt") or "").split())
    if prompt - PROMPTS:
        raise InvalidRequest("unsupported prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values")
    max_age = params.get("max_age")
    if max_age is not None and not (max_age.isdigit() and len(max_age) <= 10):
        raise InvalidRequest("max_age must be a non-negative integer")


def check_state(params: Params, *_: object) -> None:
    state = params.get("state")
    if state is not None and len(state) > MAX_STATE:
        raise InvalidRequest("state is too long")


CHECKS: tuple[Check, ...] = (
    check_no_repeats,
    check_no_request_objects,
    check_response_type,
    check_pkce,
    check_scope,
    check_resource,
    check_prompt_and_max_age,
    check_state,
)


def check_request(
    params: Params, client: ClientView, redirect_uri: str, server: ServerView
) -> AuthorizationRequest:
    """Run the redirectable checks in order; the first failure is raised."""
    for check in CHECKS:
        check(params, client, server)
    max_age = params.get("max_age")
    scope = requested_scope(params, client)
    resources = resolve_resources(
        params.get_all("resource"), server.resources, server.issuer, scope
    )
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        state=params.get("state"),
        scope=scope,
        resources=resources,
        code_challenge=params.require("code_challenge"),
        nonce=params.get("nonce"),
        prompt=frozenset((params.get("prompt") or "").split()),
        max_age=int(max_age) if max_age is not None else None,
        login_hint=params.get("login_hint"),
    )


def request_to_json(request: AuthorizationRequest) -> dict[str, object]:
    return {
        "client_id": request.client_id,
        "redirect_uri": request.redirect_uri,
        "state": request.state,
        "scope": list(request.scope),
        "resources": list(request.resources),
        "code_challenge": request.code_challenge,
        "nonce": request.nonce,
        "prompt": sorted(request.prompt),
        "max_age": request.max_age,
        "login_hint": request.login_hint,
        "stale_session": request.stale_session,
        "device_code_hash": request.device_code_hash,
        "user_code": request.user_code,
        "consented": request.consented,
    }


def request_from_json(data: dict[str, object]) -> AuthorizationRequest:
    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) else None

    def strings(name: str) -> tuple[str, ...]:
        value = data.get(name)
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    max_age = data.get("max_age")
    return AuthorizationRequest(
        client_id=text("client_id") or "",
        redirect_uri=text("redirect_uri") or "",
        state=text("state"),
        scope=strings("scope"),
        resources=strings("resources"),
        code_challenge=text("code_challenge") or "",
        nonce=text("nonce"),
        prompt=frozenset(strings("prompt")),
        max_age=max_age if isinstance(max_age, int) else None,
        login_hint=text("login_hint"),
        stale_session=text("stale_session"),
        device_code_hash=text("device_code_hash"),
        user_code=text("user_code"),
        consented=data.get("consented") is True,
    )
