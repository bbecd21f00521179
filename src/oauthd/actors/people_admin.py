"""Directory handlers for the admin CLI: local users (`oauthd users`) and remembered consent
(`oauthd grants revoke`). Passwords arrive hashed: argon2 runs in the CLI, not in the actor."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from oauthd.actors.context import Shard
from oauthd.actors.people import create_user
from oauthd.actors.shard import command, query
from oauthd.runtime import Command, Query
from oauthd.storage.admin import UserListing
from oauthd.storage.people import UserRow

__all__ = ["AddUser", "ListUsers", "RemoveUser", "RevokeConsents"]


@dataclass(frozen=True, slots=True)
class AddUser(Command[UserRow | None]):
    """Command: a new local user; replies UserRow, or None if the email is taken."""

    email: str
    name: str
    password_hash: str
    now: int


@dataclass(frozen=True, slots=True)
class ListUsers(Query[list[UserListing]]):
    """Query: every user; replies list[UserListing]."""


@dataclass(frozen=True, slots=True)
class RemoveUser(Command[UserRow | None]):
    """Command: delete a user (by email or id) with their sessions, identities and consents;
    replies the removed UserRow, or None if there is no such user. Their grants live in the
    client shards: the caller revokes those (RevokeGrants)."""

    user: str


@dataclass(frozen=True, slots=True)
class RevokeConsents(Command[int]):
    """Command: forget consent given by a user, to a client, or both; replies the count."""

    user_id: str | None
    client_id: str | None


@command(AddUser)
def add_user(shard: Shard, message: AddUser) -> UserRow | None:
    if shard.store.load_user_by_email(message.email) is not None:
        return None
    user = UserRow(
        secrets.token_urlsafe(16), message.email, message.name, False, message.password_hash
    )
    create_user(shard, user, message.now)
    shard.audit("user_added", sub=user.user_id, email=user.email)
    return user


@query(ListUsers)
def list_users(shard: Shard, _message: ListUsers) -> list[UserListing]:
    return shard.store.list_users()


@command(RemoveUser)
def remove_user(shard: Shard, message: RemoveUser) -> UserRow | None:
    user = shard.store.load_user_by_email(message.user) or shard.store.load_user(message.user)
    if user is None:
        return None
    for user_id, client_id in shard.store.delete_consents(user.user_id, None):
        shard.audit("consent_revoked", sub=user_id, client_id=client_id)
    ended = shard.store.delete_user(user.user_id)
    shard.audit("user_removed", sub=user.user_id, email=user.email, signed_out=ended)
    return user


@command(RevokeConsents)
def revoke_consents(shard: Shard, message: RevokeConsents) -> int:
    forgotten = shard.store.delete_consents(message.user_id, message.client_id)
    for user_id, client_id in forgotten:
        shard.audit("consent_revoked", sub=user_id, client_id=client_id)
    return len(forgotten)
