"""Directory handlers for people: users, browser sessions and remembered consent.

Password hashing (argon2, ~150 ms) never runs here: the route verifies a password in a worker
thread against the hash this actor returns, so one login cannot stall the directory.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from oauthd.actors.context import Shard
from oauthd.actors.shard import command, query
from oauthd.errors import Forbidden, TemporarilyUnavailable
from oauthd.oauth.handles import issue_secret
from oauthd.oauth.oidc_prompt import Remembered, remembered_gap
from oauthd.oauth.rfc8252_redirects import consent_target
from oauthd.runtime import Command, Query
from oauthd.storage import hash_secret
from oauthd.storage.people import (
    ConsentRow,
    UserRow,
)

__all__ = [
    "EndSession",
    "EnsureUser",
    "FindUser",
    "GetSession",
    "GetUser",
    "GrantConsent",
    "HasConsent",
    "LinkIdentity",
    "PrepareLogout",
    "SessionView",
    "StartSession",
    "create_user",
]

QUOTA_RETRY_S = 3600  # users never expire: room comes back only when an operator acts


@dataclass(frozen=True, slots=True)
class SessionView:
    session_id: str
    user: UserRow
    auth_time: int


@dataclass(frozen=True, slots=True)
class FindUser(Query[UserRow | None]):
    """Query: the user with this email (any case), or None."""

    email: str


@dataclass(frozen=True, slots=True)
class GetUser(Query[UserRow | None]):
    """Query: the user with this id (the token subject), or None."""

    user_id: str


@dataclass(frozen=True, slots=True)
class EnsureUser(Command[UserRow]):
    """Command: the user with this email, created if new; replies UserRow. Only for a person
    already vouched for (a dev user whose password matched the file): it checks nothing."""

    email: str
    name: str
    email_verified: bool = False


@dataclass(frozen=True, slots=True)
class LinkIdentity(Command[UserRow]):
    """Command: the local user for this upstream subject, created on first login, its email
    and name refreshed from the upstream each time (email only when verified there);
    replies UserRow."""

    provider: str
    subject: str
    email: str
    name: str


@dataclass(frozen=True, slots=True)
class StartSession(Command[str]):
    """Command: a new browser session for the user (ending `previous`); replies its id.
    A fresh id at every login prevents session fixation (HTML-3). `method` says how the
    person signed in (`dev`, `federation:<provider>`), for the audit log."""

    user_id: str
    previous: str | None
    method: str = "dev"


@dataclass(frozen=True, slots=True)
class GetSession(Query[SessionView | None]):
    """Query: the live session with this id, or None."""

    session_id: str


@dataclass(frozen=True, slots=True)
class PrepareLogout(Command[str]):
    """Command: mint the CSRF token of the session's logout form."""

    session_id: str


@dataclass(frozen=True, slots=True)
class EndSession(Command[None]):
    """Command: log out, if the CSRF token is the session's."""

    session_id: str
    csrf: str


@dataclass(frozen=True, slots=True)
class HasConsent(Query[bool]):
    """Query: whether the user already allowed this client these scopes and resources,
    sent to this redirect URI (HTML-5)."""

    user_id: str
    client_id: str
    scope: tuple[str, ...]
    resources: tuple[str, ...]
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class GrantConsent(Command[None]):
    """Command: remember that the user allowed these (added to what was allowed before)."""

    user_id: str
    client_id: str
    scope: tuple[str, ...]
    resources: tuple[str, ...]
    redirect_uri: str


def create_user(shard: Shard, user: UserRow, now: int) -> None:
    """Every new user of the tenant, whichever way they arrive (dev login, federation's first
    login, `oauthd users add`), within `limits.max_users` (0: no cap). Past it the person is
    told the service takes no new accounts (503); existing users sign in as before."""
    cap = shard.env.settings.limits.max_users
    if cap and shard.store.count_users() >= cap:
        raise TemporarilyUnavailable(
            "this service is not accepting new accounts right now",
            detail=f"limits.max_users ({cap}) reached",
            retry_after_s=QUOTA_RETRY_S,
        )
    shard.store.insert_user(user, now)


@query(FindUser)
def find_user(shard: Shard, message: FindUser) -> UserRow | None:
    return shard.store.load_user_by_email(message.email)


@query(GetUser)
def get_user(shard: Shard, message: GetUser) -> UserRow | None:
    return shard.store.load_user(message.user_id)


@command(EnsureUser)
def ensure_user(shard: Shard, message: EnsureUser) -> UserRow:
    existing = shard.store.load_user_by_email(message.email)
    if existing is not None:
        return existing
    user = UserRow(
        user_id=secrets.token_urlsafe(16),
        email=message.email,
        name=message.name,
        email_verified=message.email_verified,
        password_hash="",
    )
    create_user(shard, user, shard.now())
    return user


@command(LinkIdentity)
def link_identity(shard: Shard, message: LinkIdentity) -> UserRow:
    """Users are found by (provider, subject) only, never by email: an upstream account
    with someone's address must not open their account here."""
    email = message.email
    holder = shard.store.load_user_by_email(email) if email else None
    user_id = shard.store.load_identity(message.provider, message.subject)
    if holder is not None and holder.user_id != user_id:
        email = ""  # the address belongs to another user here: do not copy it
    if user_id is None:
        user = UserRow(secrets.token_urlsafe(16), email, message.name, bool(email), "")
        create_user(shard, user, shard.now())
        shard.store.insert_identity(message.provider, message.subject, user.user_id, shard.now())
        return user
    shard.store.update_profile(user_id, email, message.name, bool(email))
    linked = shard.store.load_user(user_id)
    assert linked is not None, "an identity names a user that exists"
    return linked


@command(StartSession)
def start_session(shard: Shard, message: StartSession) -> str:
    if message.previous:
        shard.store.delete_session(message.previous)
    session_id = issue_secret()
    ttl = shard.env.settings.sessions.ttl_s
    shard.store.insert_session(session_id, message.user_id, shard.now(), ttl)
    shard.audit("login_succeeded", method=message.method, sub=message.user_id)
    return session_id


@query(GetSession)
def get_session(shard: Shard, message: GetSession) -> SessionView | None:
    row = shard.store.load_session(message.session_id)
    if row is None or row.expires_at <= shard.now():
        return None
    user = shard.store.load_user(row.user_id)
    if user is None:
        return None
    return SessionView(message.session_id, user, row.auth_time)


@command(PrepareLogout)
def prepare_logout(shard: Shard, message: PrepareLogout) -> str:
    csrf = issue_secret()
    shard.store.set_session_csrf(message.session_id, csrf)
    return csrf


@command(EndSession)
def end_session(shard: Shard, message: EndSession) -> None:
    row = shard.store.load_session(message.session_id)
    if row is None:
        return  # already gone: logging out twice is not an error
    if not row.csrf_hash or not hmac.compare_digest(row.csrf_hash, hash_secret(message.csrf)):
        raise Forbidden("the form has expired; reload the page and try again")
    shard.store.delete_session(message.session_id)


@query(HasConsent)
def has_consent(shard: Shard, message: HasConsent) -> bool:
    stored = shard.store.load_consent(message.user_id, message.client_id)
    remembered = Remembered(stored.scope, stored.resources, stored.redirects) if stored else None
    gap = remembered_gap(remembered, message.scope, message.resources, message.redirect_uri)
    return gap is None


@command(GrantConsent)
def grant_consent(shard: Shard, message: GrantConsent) -> None:
    stored = shard.store.load_consent(message.user_id, message.client_id)
    before = stored or ConsentRow((), (), ())
    merged = ConsentRow(
        tuple(dict.fromkeys(before.scope + message.scope)),
        tuple(dict.fromkeys(before.resources + message.resources)),
        tuple(dict.fromkeys((*before.redirects, consent_target(message.redirect_uri)))),
    )
    shard.store.save_consent(message.user_id, message.client_id, merged, shard.now())
    shard.audit(
        "consent_granted",
        sub=message.user_id,
        client_id=message.client_id,
        scope=" ".join(message.scope),
    )
