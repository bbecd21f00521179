"""ClientActor handlers for the admin CLI: a client's live grants, revoking them (all, or one
user's), and removing the client as RFC 7592 DELETE would, without its registration token."""

from __future__ import annotations

from dataclasses import dataclass

from oauthd.actors.shard import Audit, command, query
from oauthd.actors.wiring import Env
from oauthd.storage import ClientRecord, Store, delete_client
from oauthd.storage.admin import GrantRow, list_grants, revoke_grants

__all__ = ["AdminHandlers", "ListGrants", "RemoveClient", "RevokeGrants"]


@dataclass(frozen=True, slots=True)
class ListGrants:
    """Query: the client's live grants, or one user's; replies list[GrantRow]."""

    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class RevokeGrants:
    """Command: end the client's live grants, or one user's; replies list[GrantRow]."""

    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveClient:
    """Command: delete the client and end its grants (`oauthd clients remove`)."""


class AdminHandlers:
    """Mixed into ClientActor, which provides `store`, `env`, `client()`, `forget()` and
    `audit()`."""

    store: Store
    env: Env
    audit: Audit

    def client(self) -> ClientRecord:
        raise NotImplementedError

    def forget(self) -> None:
        raise NotImplementedError

    @query(ListGrants)
    def list_grants(self, message: ListGrants) -> list[GrantRow]:
        self.client()
        return list_grants(self.store, message.user_id, int(self.env.clock.now()))

    @command(RevokeGrants)
    def revoke_grants(self, message: RevokeGrants) -> list[GrantRow]:
        client_id = self.client().client_id
        ended = revoke_grants(self.store, message.user_id, int(self.env.clock.now()))
        for grant in ended:
            self.audit(
                "grant_revoked", client_id=client_id, sub=grant.user_id, family=grant.family_id
            )
        return ended

    @command(RemoveClient)
    def remove_client(self, _message: RemoveClient) -> None:
        client_id = self.client().client_id
        delete_client(self.store, int(self.env.clock.now()))
        self.forget()
        self.audit("client_deleted", client_id=client_id, by="cli")
