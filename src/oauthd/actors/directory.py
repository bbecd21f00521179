"""The Directory actor: the tenant's index of clients. Registering a client creates its shard
first and indexes it second, so the index never names a shard that does not exist."""

from __future__ import annotations

from dataclasses import dataclass

from oauthd.actors.people import PeopleHandlers
from oauthd.actors.shard import ShardActor, command, query
from oauthd.actors.wiring import Env
from oauthd.runtime import Address
from oauthd.storage import (
    DIRECTORY,
    ClientRecord,
    count_clients,
    create_client_shard,
    index_client,
    list_clients,
    load_shard_key,
    unindex_client,
)

__all__ = [
    "CountClients",
    "Directory",
    "ListClients",
    "LookupClient",
    "RegisterClient",
    "UnindexClient",
    "directory_address",
]


@dataclass(frozen=True, slots=True)
class RegisterClient:
    """Command: create or replace a client's registration; replies with its shard key."""

    record: ClientRecord


@dataclass(frozen=True, slots=True)
class LookupClient:
    """Query: the shard key of a registered client, or None."""

    client_id: str


@dataclass(frozen=True, slots=True)
class CountClients:
    """Query: how many clients are registered."""


def directory_address(tenant: str) -> Address:
    return Address(tenant, "directory", "")


@dataclass(frozen=True, slots=True)
class ListClients:
    """Query: every registered client as (client_id, source, created_at)."""


@dataclass(frozen=True, slots=True)
class UnindexClient:
    """Command: drop a deregistered client from the index."""

    client_id: str


class Directory(PeopleHandlers, ShardActor):
    schema = DIRECTORY

    def __init__(self, env: Env, tenant: str) -> None:
        tenant_dir = env.tenant_dir(tenant)
        super().__init__(tenant_dir / "directory.sqlite", env.settings.storage, create=True)
        self.env = env
        self._tenant_dir = tenant_dir
        self._clock = env.clock

    @command(RegisterClient)
    def register(self, message: RegisterClient) -> str:
        record = message.record
        shard_key = create_client_shard(self._tenant_dir, record, fsync=self._storage.fsync)
        index_client(self.store, record.client_id, shard_key, record.source, int(self._clock.now()))
        return shard_key

    @command(UnindexClient)
    def unindex(self, message: UnindexClient) -> None:
        unindex_client(self.store, message.client_id)

    @query(LookupClient)
    def lookup(self, message: LookupClient) -> str | None:
        return load_shard_key(self.store, message.client_id)

    @query(ListClients)
    def list_clients(self, _message: ListClients) -> list[tuple[str, str, int]]:
        return list_clients(self.store)

    @query(CountClients)
    def count(self, _message: CountClients) -> int:
        return count_clients(self.store)
