"""ClientActor handlers for the admin CLI: a client's live grants, revoking them (all, or one
user's), and removing the client as RFC 7592 DELETE would, without its registration token."""

from __future__ import annotations

from dataclasses import dataclass

from oauthd.actors.context import ClientShard
from oauthd.actors.shard import command, query
from oauthd.runtime import Command, Query
from oauthd.storage.admin import GrantRow

__all__ = ["ListGrants", "RemoveClient", "RevokeGrants"]


@dataclass(frozen=True, slots=True)
class ListGrants(Query[list[GrantRow]]):
    """Query: the client's live grants, or one user's; replies list[GrantRow]."""

    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class RevokeGrants(Command[list[GrantRow]]):
    """Command: end the client's live grants, or one user's; replies list[GrantRow]."""

    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveClient(Command[None]):
    """Command: delete the client and end its grants (`oauthd clients remove`)."""


@query(ListGrants)
def list_grants(shard: ClientShard, message: ListGrants) -> list[GrantRow]:
    shard.client()
    return shard.store.list_grants(message.user_id, shard.now())


@command(RevokeGrants)
def revoke_grants(shard: ClientShard, message: RevokeGrants) -> list[GrantRow]:
    client_id = shard.client().client_id
    ended = shard.store.revoke_grants(message.user_id, shard.now())
    for grant in ended:
        shard.audit("grant_revoked", client_id=client_id, sub=grant.user_id, family=grant.family_id)
    return ended


@command(RemoveClient)
def remove_client(shard: ClientShard, _message: RemoveClient) -> None:
    client_id = shard.client().client_id
    shard.store.delete_client(shard.now())
    shard.forget()
    shard.audit("client_deleted", client_id=client_id, by="cli")
