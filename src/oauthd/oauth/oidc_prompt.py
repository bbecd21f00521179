"""When the person must log in and when they must consent (OIDC Core §3.1.2.1, HTML-5): the
one policy /authorize, /login, /consent, /device and the federated login all follow.

As in node-oidc-provider's interaction policy, each prompt is a short ordered tuple of named
checks; the first that applies gives the reason the prompt is needed, and no reason means the
request may go on without it. The reasons name the rule, so a failing test or a log line says
which one decided.

What a check needs to know of state (the session's login time, what this person allowed this
client before) is looked up by the caller and passed in: the rules themselves do no I/O."""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from oauthd.errors import ConsentRequired, LoginRequired, OAuthError
from oauthd.oauth.rfc6749_authorize import AuthorizationRequest
from oauthd.oauth.rfc8252_redirects import consent_target

__all__ = [
    "CONSENT_CHECKS",
    "CONSENT_NOT_REMEMBERED",
    "DEVICE_REQUEST",
    "LOGIN_CHECKS",
    "MAX_AGE",
    "NO_SESSION",
    "PROMPT_CONSENT",
    "PROMPT_LOGIN",
    "REDIRECT_URI_ADDED",
    "RESOURCES_ADDED",
    "SCOPES_ADDED",
    "THIRD_PARTY_CLIENT",
    "Consent",
    "Login",
    "Remembered",
    "consent_reason",
    "forces_upstream_login",
    "is_stale_session",
    "login_reason",
    "mark_stale_session",
    "prompt_none_refusal",
    "reads_remembered",
    "remembered_gap",
]

# Login (node-oidc-provider: lib/helpers/interaction_policy/prompts/login.js)
NO_SESSION = "no_session"
PROMPT_LOGIN = "prompt_login"
MAX_AGE = "max_age"
# Consent (prompts/consent.js)
PROMPT_CONSENT = "prompt_consent"
DEVICE_REQUEST = "device_request"
THIRD_PARTY_CLIENT = "third_party_client"
CONSENT_NOT_REMEMBERED = "consent_not_remembered"
# What remembered consent lacks (`remembered_gap`)
SCOPES_ADDED = "scopes_added"
RESOURCES_ADDED = "resources_added"
REDIRECT_URI_ADDED = "redirect_uri_added"


# --- login ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Login:
    """What the login checks read: the request, the browser's session (its login time, None
    without one) and the time now, in seconds."""

    request: AuthorizationRequest
    auth_time: int | None
    now: int


def no_session(ctx: Login) -> bool:
    return ctx.auth_time is None


def prompt_login(ctx: Login) -> bool:
    # OIDC Core §3.1.2.1: prompt=login asks for a fresh login whatever the session.
    return "login" in ctx.request.prompt


def max_age(ctx: Login) -> bool:
    # OIDC Core §3.1.2.1: a login older than max_age seconds must be done again.
    limit = ctx.request.max_age
    return limit is not None and ctx.auth_time is not None and ctx.now - ctx.auth_time >= limit


LOGIN_CHECKS: tuple[tuple[str, Callable[[Login], bool]], ...] = (
    (NO_SESSION, no_session),
    (PROMPT_LOGIN, prompt_login),
    (MAX_AGE, max_age),
)


def login_reason(req: AuthorizationRequest, *, auth_time: int | None, now: int) -> str | None:
    """Why the person must log in before this request goes on, or None when the session may
    answer it."""
    ctx = Login(req, auth_time, now)
    return next((reason for reason, applies in LOGIN_CHECKS if applies(ctx)), None)


def mark_stale_session(req: AuthorizationRequest, session_hash: str) -> AuthorizationRequest:
    """The request, noting that the session it came with may not finish it: a login was forced
    (prompt=login, max_age). `session_hash` is the stored hash of that session's id."""
    return dataclasses.replace(req, stale_session=session_hash)


def is_stale_session(req: AuthorizationRequest, session_hash: str) -> bool:
    """OIDC Core §3.1.2.1: a forced login is not skipped by going to /consent directly with
    the session that was refused."""
    stale = req.stale_session
    return stale is not None and hmac.compare_digest(stale, session_hash)


def forces_upstream_login(req: AuthorizationRequest) -> bool:
    """Federation: the upstream must log the person in again (its `prompt=login`), for
    prompt=login or a session refused as stale."""
    return "login" in req.prompt or req.stale_session is not None


def prompt_none_refusal(req: AuthorizationRequest, login: str | None) -> OAuthError | None:
    """OIDC Core §3.1.2.1: prompt=none never shows a page. The error the request fails with
    instead (login_required while a login is needed, else consent_required), or None when
    the request allows a page."""
    if "none" not in req.prompt:
        return None
    if login is not None:
        return LoginRequired("the user is not logged in")
    return ConsentRequired("the user has not consented")


# --- consent -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Consent:
    """What the consent checks read: the request, whether the operator registered the client
    as first party, and whether what this person allowed the client before covers the request
    (None while who the person is is not known yet: federation asks before the upstream
    login)."""

    request: AuthorizationRequest
    first_party: bool
    covered: bool | None


def prompt_consent(ctx: Consent) -> bool:
    # OIDC Core §3.1.2.1: prompt=consent asks whatever was allowed before.
    return "consent" in ctx.request.prompt


def device_request(ctx: Consent) -> bool:
    # RFC 8628 §5.4 (remote phishing): a device request is confirmed every time (DEVICE-9).
    return ctx.request.device_code_hash is not None


def first_party(ctx: Consent) -> bool:
    return ctx.first_party


def user_unknown(ctx: Consent) -> bool:
    # HTML-10: before the upstream login nobody's remembered consent can count, so a
    # third-party client is allowed on oauthd's page first.
    return ctx.covered is None


def consent_not_remembered(ctx: Consent) -> bool:
    # HTML-5: asked once per user, client, scopes, resources and redirect URI.
    return not ctx.covered


# (reason, check); a check with the reason None ends the list: no consent is needed.
CONSENT_CHECKS: tuple[tuple[str | None, Callable[[Consent], bool]], ...] = (
    (PROMPT_CONSENT, prompt_consent),
    (DEVICE_REQUEST, device_request),
    (None, first_party),  # the operator's own client: nothing to ask
    (THIRD_PARTY_CLIENT, user_unknown),
    (CONSENT_NOT_REMEMBERED, consent_not_remembered),
)


def consent_reason(
    req: AuthorizationRequest, *, first_party: bool, covered: bool | None
) -> str | None:
    """Why the person must be asked to allow this request, or None when they need not be."""
    ctx = Consent(req, first_party, covered)
    return next((reason for reason, applies in CONSENT_CHECKS if applies(ctx)), None)


def reads_remembered(req: AuthorizationRequest, *, first_party: bool) -> bool:
    """Whether `consent_reason` depends on `covered`: only then is remembered consent worth
    looking up."""
    covered = consent_reason(req, first_party=first_party, covered=True)
    return covered != consent_reason(req, first_party=first_party, covered=False)


@dataclass(frozen=True, slots=True)
class Remembered:
    """What a person allowed a client before, added up over their consents."""

    scope: tuple[str, ...]
    resources: tuple[str, ...]
    redirects: tuple[str, ...]  # as `consent_target` writes them


def remembered_gap(
    remembered: Remembered | None,
    scope: tuple[str, ...],
    resources: tuple[str, ...],
    redirect_uri: str,
) -> str | None:
    """What the request asks beyond what was allowed before, or None when it asks nothing
    more (HTML-5): consent is asked again for anything wider."""
    if remembered is None:
        return CONSENT_NOT_REMEMBERED
    if not set(scope) <= set(remembered.scope):
        return SCOPES_ADDED
    if not set(resources) <= set(remembered.resources):
        return RESOURCES_ADDED
    if consent_target(redirect_uri) not in remembered.redirects:
        return REDIRECT_URI_ADDED
    return None
