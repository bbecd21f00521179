"""Directory handlers for the admin CLI: local users (`oauthd users`) and remembered consent
(`oauthd grants revoke`). Passwords arrive hashed: argon2 runs in the CLI, not in the actor."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from oauthd.actors.shard import Audit, command, query
from oauthd.storage import Store
from oauthd.storage.admin import UserListing, delete_consents, delete_user, list_users
from oauthd.storage.people import UserRow, insert_user, load_user, load_user_by_email

__all__ = ["AddUser", "ListUsers", "PeopleAdminHandlers", "RemoveUser", "RevokeConsents"]


@dataclass(frozen=True, slots=True)
class AddUser:
    """Command: a new local user; replies UserRow, or None if the email is taken."""

    email: str
    name: str
    password_hash: str
    now: int


@dataclass(frozen=True, slots=True)
class ListUsers:
    """Query: every user; replies list[UserListing]."""


@dataclass(frozen=True, slots=True)
class RemoveUser:
    """Command: delete a user (by email or id) with their sessions, identities and consents;
    replies the removed UserRow, or None if there is no such user. Their grants live in the
    client shards: the caller revokes those (RevokeGrants)."""

    user: str


@dataclass(frozen=True, slots=True)
class RevokeConsents:
    """Command: forget consent given by a user, to a client, or both; replies the count."""

    user_id: str | None
    client_id: str | None


class PeopleAdminHandlers:
    """Mixed into the Directory, which provides `store` and `audit()`."""

    store: Store
    audit: Audit

    @command(AddUser)
    def add_user(self, message: AddUser) -> UserRow | None:
        if load_user_by_email(self.store, message.email) is not None:
            return None
        user = UserRow(
            secrets.token_urlsafe(16), message.email, message.name, False, message.password_hash
        )
        insert_user(self.store, user, message.now)
        self.audit("user_added", sub=user.user_id, email=user.email)
        return user

    @query(ListUsers)
    def list_users(self, _message: ListUsers) -> list[UserListing]:
        return list_users(self.store)

    @command(RemoveUser)
    def remove_user(self, message: RemoveUser) -> UserRow | None:
        user = load_user_by_email(self.store, message.user) or load_user(self.store, message.user)
        if user is None:
            return None
        for user_id, client_id in delete_consents(self.store, user.user_id, None):
            self.audit("consent_revoked", sub=user_id, client_id=client_id)
        ended = delete_user(self.store, user.user_id)
        self.audit("user_removed", sub=user.user_id, email=user.email, signed_out=ended)
        return user

    @command(RevokeConsents)
    def revoke_consents(self, message: RevokeConsents) -> int:
        forgotten = delete_consents(self.store, message.user_id, message.client_id)
        for user_id, client_id in forgotten:
            self.audit("consent_revoked", sub=user_id, client_id=client_id)
        return len(forgotten)
