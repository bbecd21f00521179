"""The login and consent policy (oauthd.oauth.oidc_prompt), one rule per test: each names the
reason its check gives, so a failure says which rule broke rather than which flow."""

from __future__ import annotations

import dataclasses

import pytest

from oauthd.errors import ConsentRequired, LoginRequired
from oauthd.oauth.oidc_prompt import (
    CONSENT_NOT_REMEMBERED,
    DEVICE_REQUEST,
    MAX_AGE,
    NO_SESSION,
    PROMPT_CONSENT,
    PROMPT_LOGIN,
    REDIRECT_URI_ADDED,
    RESOURCES_ADDED,
    SCOPES_ADDED,
    THIRD_PARTY_CLIENT,
    Remembered,
    consent_reason,
    forces_upstream_login,
    is_stale_session,
    login_reason,
    mark_stale_session,
    prompt_none_refusal,
    reads_remembered,
    remembered_gap,
)
from oauthd.oauth.rfc6749_authorize import AuthorizationRequest

NOW = 1_000_000
REDIRECT = "https://app.example.com/cb"
REQUEST = AuthorizationRequest(
    client_id="app",
    redirect_uri=REDIRECT,
    state="s",
    scope=("openid", "email"),
    resources=("https://mcp.example.com/mcp",),
    code_challenge="c" * 43,
    nonce=None,
    prompt=frozenset(),
    max_age=None,
    login_hint=None,
)


def request(**changes: object) -> AuthorizationRequest:
    return dataclasses.replace(REQUEST, **changes)  # type: ignore[arg-type]  # any field, any value


# --- login ---------------------------------------------------------------------------------


def test_session_answers_a_plain_request() -> None:
    """A session with no prompt and no max_age needs no login."""
    assert login_reason(REQUEST, auth_time=NOW - 3600, now=NOW) is None


def test_no_session() -> None:
    """No session: the person must log in."""
    assert login_reason(REQUEST, auth_time=None, now=NOW) == NO_SESSION


def test_prompt_login() -> None:
    """OIDC Core §3.1.2.1: prompt=login forces a fresh login over a session."""
    req = request(prompt=frozenset({"login"}))
    assert login_reason(req, auth_time=NOW, now=NOW) == PROMPT_LOGIN


def test_no_session_comes_before_prompt_login() -> None:
    """The first check that applies names the reason."""
    req = request(prompt=frozenset({"login"}))
    assert login_reason(req, auth_time=None, now=NOW) == NO_SESSION


@pytest.mark.parametrize(("age", "reason"), [(59, None), (60, MAX_AGE), (61, MAX_AGE)])
def test_max_age(age: int, reason: str | None) -> None:
    """OIDC Core §3.1.2.1: a login max_age seconds old or older is done again."""
    req = request(max_age=60)
    assert login_reason(req, auth_time=NOW - age, now=NOW) == reason


def test_max_age_zero_always_logs_in() -> None:
    """max_age=0 is a login at every request (OIDC Core §3.1.2.1, like prompt=login)."""
    assert login_reason(request(max_age=0), auth_time=NOW, now=NOW) == MAX_AGE


def test_stale_session_is_the_refused_one_only() -> None:
    """OIDC Core §3.1.2.1: the session refused by a forced login may not finish the request;
    another session (a fresh login) may."""
    req = mark_stale_session(REQUEST, "hash-of-old")
    assert is_stale_session(req, "hash-of-old")
    assert not is_stale_session(req, "hash-of-new")
    assert not is_stale_session(REQUEST, "hash-of-old")


@pytest.mark.parametrize(
    ("req", "forced"),
    [
        (REQUEST, False),
        (request(prompt=frozenset({"login"})), True),
        (mark_stale_session(REQUEST, "h"), True),
    ],
)
def test_forces_upstream_login(req: AuthorizationRequest, forced: bool) -> None:
    """Federation: prompt=login, or a session refused as stale, logs in again upstream."""
    assert forces_upstream_login(req) is forced


def test_prompt_none_refusal() -> None:
    """OIDC Core §3.1.2.1: prompt=none fails with login_required while a login is needed,
    with consent_required after, and not at all without prompt=none."""
    req = request(prompt=frozenset({"none"}))
    assert isinstance(prompt_none_refusal(req, NO_SESSION), LoginRequired)
    assert isinstance(prompt_none_refusal(req, None), ConsentRequired)
    assert prompt_none_refusal(REQUEST, NO_SESSION) is None


# --- consent -------------------------------------------------------------------------------


def test_first_party_needs_no_consent() -> None:
    """A client the operator marked first_party is never asked about, remembered or not."""
    assert consent_reason(REQUEST, first_party=True, covered=False) is None
    assert consent_reason(REQUEST, first_party=True, covered=None) is None


def test_prompt_consent() -> None:
    """OIDC Core §3.1.2.1: prompt=consent asks even a first-party client's user."""
    req = request(prompt=frozenset({"consent"}))
    assert consent_reason(req, first_party=True, covered=True) == PROMPT_CONSENT


def test_device_request() -> None:
    """RFC 8628 §5.4 (DEVICE-9): a device request is confirmed every time."""
    req = request(device_code_hash="h")
    assert consent_reason(req, first_party=True, covered=True) == DEVICE_REQUEST


def test_third_party_client_before_login() -> None:
    """HTML-10: before the upstream login nobody is known, so a third-party client is asked."""
    assert consent_reason(REQUEST, first_party=False, covered=None) == THIRD_PARTY_CLIENT


def test_consent_not_remembered() -> None:
    """HTML-5: a third-party client is asked unless remembered consent covers the request."""
    assert consent_reason(REQUEST, first_party=False, covered=False) == CONSENT_NOT_REMEMBERED
    assert consent_reason(REQUEST, first_party=False, covered=True) is None


def test_remembered_consent_is_read_only_when_it_decides() -> None:
    """Remembered consent is looked up only for a third-party client without prompt=consent
    or a device."""
    assert reads_remembered(REQUEST, first_party=False)
    assert not reads_remembered(REQUEST, first_party=True)
    assert not reads_remembered(request(prompt=frozenset({"consent"})), first_party=False)
    assert not reads_remembered(request(device_code_hash="h"), first_party=False)


ALLOWED = Remembered(("openid", "email", "profile"), ("https://mcp.example.com/mcp",), (REDIRECT,))


def test_remembered_covers_a_narrower_request() -> None:
    """HTML-5: what was allowed, or less, is not asked again."""
    assert remembered_gap(ALLOWED, ("openid",), (), REDIRECT) is None


def test_nothing_remembered() -> None:
    assert remembered_gap(None, ("openid",), (), REDIRECT) == CONSENT_NOT_REMEMBERED


def test_scopes_added() -> None:
    """HTML-5: a scope not allowed before is asked for again."""
    assert remembered_gap(ALLOWED, ("openid", "offline_access"), (), REDIRECT) == SCOPES_ADDED


def test_resources_added() -> None:
    """HTML-5: a resource not allowed before is asked for again."""
    gap = remembered_gap(ALLOWED, ("openid",), ("https://other.example/mcp",), REDIRECT)
    assert gap == RESOURCES_ADDED


def test_redirect_uri_added() -> None:
    """HTML-5: sending the person somewhere not allowed before is asked for again."""
    gap = remembered_gap(ALLOWED, ("openid",), (), "https://evil.example/cb")
    assert gap == REDIRECT_URI_ADDED
