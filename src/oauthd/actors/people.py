"""Directory handlers for people: users, browser sessions and remembered consent.

Password hashing (argon2, ~150 ms) never runs here: the route verifies a password in a worker
thread against the hash this actor returns, so one login cannot stall the directory.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from oauthd.actors.shard import Audit, command, query
from oauthd.actors.wiring import Env
from oauthd.errors import Forbidden
from oauthd.oauth.handles import issue_secret
from oauthd.oauth.oidc_prompt import Remembered, remembered_gap
from oauthd.oauth.rfc8252_redirects import consent_target
from oauthd.storage import Store, hash_secret
from oauthd.storage.people import (
    ConsentRow,
    UserRow,
    delete_session,
    insert_identity,
    insert_session,
    insert_user,
    load_consent,
    load_identity,
    load_session,
    load_user,
    load_user_by_email,
    save_consent,
    set_session_csrf,
    update_profile,
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
    "PeopleHandlers",
    "PrepareLogout",
    "SessionView",
    "StartSession",
]


@dataclass(frozen=True, slots=True)
class FindUser:
    """Query: the user with this email (any case), or None."""

    email: str


@dataclass(frozen=True, slots=True)
class GetUser:
    """Query: the user with this id (the token subject), or None."""

    user_id: str


@dataclass(frozen=True, slots=True)
class EnsureUser:
    """Command: the user with this email, created if new; replies UserRow. Only for a person
    already vouched for (a dev user whose password matched the file): it checks nothing."""

    email: str
    name: str
    email_verified: bool = False


@dataclass(frozen=True, slots=True)
class LinkIdentity:
    """Command: the local user for this upstream subject, created on first login, its email
    and name refreshed from the upstream each time (email only when verified there);
    replies UserRow."""

    provider: str
    subject: str
    email: str
    name: str


@dataclass(frozen=True, slots=True)
class StartSession:
    """Command: a new browser session for the user (ending `previous`); replies its id.
    A fresh id at every login prevents session fixation (HTML-3). `method` says how the
    person signed in (`dev`, `federation:<provider>`), for the audit log."""

    user_id: str
    previous: str | None
    method: str = "dev"


@dataclass(frozen=True, slots=True)
class GetSession:
    """Query: the live session with this id, or None."""

    session_id: str


@dataclass(frozen=True, slots=True)
class PrepareLogout:
    """Command: mint the CSRF token of the session's logout form."""

    session_id: str


@dataclass(frozen=True, slots=True)
class EndSession:
    """Command: log out, if the CSRF token is the session's."""

    session_id: str
    csrf: str


@dataclass(frozen=True, slots=True)
class HasConsent:
    """Query: whether the user already allowed this client these scopes and resources,
    sent to this redirect URI (HTML-5)."""

    user_id: str
    client_id: str
    scope: tuple[str, ...]
    resources: tuple[str, ...]
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class GrantConsent:
    """Command: remember that the user allowed these (added to what was allowed before)."""

    user_id: str
    client_id: str
    scope: tuple[str, ...]
    resources: tuple[str, ...]
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class SessionView:
    session_id: str
    user: UserRow
    auth_time: int


class PeopleHandlers:
    """Mixed into the Directory, which provides `store` and `env`."""

    store: Store
    env: Env
    audit: Audit

    def _now(self) -> int:
        return int(self.env.clock.now())

    @query(FindUser)
    def find_user(self, message: FindUser) -> UserRow | None:
        return load_user_by_email(self.store, message.email)

    @query(GetUser)
    def get_user(self, message: GetUser) -> UserRow | None:
        return load_user(self.store, message.user_id)

    @command(EnsureUser)
    def ensure_user(self, message: EnsureUser) -> UserRow:
        existing = load_user_by_email(self.store, message.email)
        if existing is not None:
            return existing
        user = UserRow(
            user_id=secrets.token_urlsafe(16),
            email=message.email,
            name=message.name,
            email_verified=message.email_verified,
            password_hash="",
        )
        insert_user(self.store, user, self._now())
        return user

    @command(LinkIdentity)
    def link_identity(self, message: LinkIdentity) -> UserRow:
        """Users are found by (provider, subject) only, never by email: an upstream account
        with someone's address must not open their account here."""
        email = message.email
        holder = load_user_by_email(self.store, email) if email else None
        user_id = load_identity(self.store, message.provider, message.subject)
        if holder is not None and holder.user_id != user_id:
            email = ""  # the address belongs to another user here: do not copy it
        if user_id is None:
            user = UserRow(secrets.token_urlsafe(16), email, message.name, bool(email), "")
            insert_user(self.store, user, self._now())
            insert_identity(
                self.store, message.provider, message.subject, user.user_id, self._now()
            )
            return user
        update_profile(self.store, user_id, email, message.name, bool(email))
        linked = load_user(self.store, user_id)
        assert linked is not None, "an identity names a user that exists"
        return linked

    @command(StartSession)
    def start_session(self, message: StartSession) -> str:
        if message.previous:
            delete_session(self.store, message.previous)
        session_id = issue_secret()
        ttl = self.env.settings.sessions.ttl_s
        insert_session(self.store, session_id, message.user_id, self._now(), ttl)
        self.audit("login_succeeded", method=message.method, sub=message.user_id)
        return session_id

    @query(GetSession)
    def get_session(self, message: GetSession) -> SessionView | None:
        row = load_session(self.store, message.session_id)
        if row is None or row.expires_at <= self._now():
            return None
        user = load_user(self.store, row.user_id)
        if user is None:
            return None
        return SessionView(message.session_id, user, row.auth_time)

    @command(PrepareLogout)
    def prepare_logout(self, message: PrepareLogout) -> str:
        csrf = issue_secret()
        set_session_csrf(self.store, message.session_id, csrf)
        return csrf

    @command(EndSession)
    def end_session(self, message: EndSession) -> None:
        row = load_session(self.store, message.session_id)
        if row is None:
            return  # already gone: logging out twice is not an error
        if not row.csrf_hash or not hmac.compare_digest(row.csrf_hash, hash_secret(message.csrf)):
            raise Forbidden("the form has expired; reload the page and try again")
        delete_session(self.store, message.session_id)

    @query(HasConsent)
    def has_consent(self, message: HasConsent) -> bool:
        stored = load_consent(self.store, message.user_id, message.client_id)
        remembered = (
            Remembered(stored.scope, stored.resources, stored.redirects) if stored else None
        )
        gap = remembered_gap(remembered, message.scope, message.resources, message.redirect_uri)
        return gap is None

    @command(GrantConsent)
    def grant_consent(self, message: GrantConsent) -> None:
        stored = load_consent(self.store, message.user_id, message.client_id)
        before = stored or ConsentRow((), (), ())
        merged = ConsentRow(
            tuple(dict.fromkeys(before.scope + message.scope)),
            tuple(dict.fromkeys(before.resources + message.resources)),
            tuple(dict.fromkeys((*before.redirects, consent_target(message.redirect_uri)))),
        )
        save_consent(self.store, message.user_id, message.client_id, merged, self._now())
        self.audit(
            "consent_granted",
            sub=message.user_id,
            client_id=message.client_id,
            scope=" ".join(message.scope),
        )
