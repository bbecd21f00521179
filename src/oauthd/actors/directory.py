"""The Directory actor: the tenant's index of clients and of device user codes. Registering a
client indexes it and creates its shard in one message: the index row commits only after the
shard holds its registration, so the index never names a shard that does not exist; and a
failure on the way rolls the row back while `create_client_shard` removes the shard it made,
so no shard outlives a failed registration (one left by a crash in between is not indexed,
and the janitor removes it). Dynamic registrations past `registration.max_clients` are
refused here, in the index's own transaction, so concurrent registrations cannot overshoot
the cap."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from oauthd.actors import people, people_admin
from oauthd.actors.context import Shard
from oauthd.actors.shard import ShardActor, command, query
from oauthd.actors.wiring import Env
from oauthd.errors import TemporarilyUnavailable
from oauthd.oauth.rfc8628_device import issue_user_code
from oauthd.runtime import Address, Command, Query
from oauthd.storage import ClientRecord, DirectoryStore, shard_key_for

__all__ = [
    "CollectDirectory",
    "CountClients",
    "Directory",
    "FindUserCode",
    "IndexUserCode",
    "ListClients",
    "RegisterClient",
    "UnindexClient",
    "directory_address",
]


@dataclass(frozen=True, slots=True)
class RegisterClient(Command[str]):
    """Command: create or replace a client's registration; replies with its shard key."""

    record: ClientRecord


@dataclass(frozen=True, slots=True)
class CountClients(Query[int]):
    """Query: how many clients are registered."""


@dataclass(frozen=True, slots=True)
class IndexUserCode(Command[str]):
    """Command: draw a user code for a device code (RFC 8628 §6.1), unique among outstanding
    ones; replies with the 8 letters."""

    shard_key: str
    code_hash: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class FindUserCode(Query[tuple[str, str] | None]):
    """Query: (shard key, device-code hash) of an outstanding, normalised user code, or None."""

    user_code: str


USER_CODE_DRAWS = 20  # 20^8 ≈ 2.6e10 codes: twenty collisions in a row do not happen


def directory_address(tenant: str) -> Address:
    return Address(tenant, "directory", "")


@dataclass(frozen=True, slots=True)
class ListClients(Query[list[tuple[str, str, int]]]):
    """Query: every registered client as (client_id, source, created_at)."""


@dataclass(frozen=True, slots=True)
class UnindexClient(Command[None]):
    """Command: drop a deregistered client from the index."""

    client_id: str


@dataclass(frozen=True, slots=True)
class CollectDirectory(Command[dict[str, int]]):
    """Command: delete expired browser sessions and device user codes; replies with counts."""


class Directory(ShardActor[DirectoryStore], Shard):
    """Its handlers for people are in `people` and `people_admin`."""

    handler_modules = (people, people_admin)

    def __init__(self, env: Env, tenant: str) -> None:
        super().__init__(
            partial(env.backend.open_directory, env.settings, tenant),
            observe=env.metrics.observer(tenant),
        )
        self.env = env
        self._tenant = tenant

    def now(self) -> int:
        return int(self.env.clock.now())

    @command(RegisterClient)
    def register(self, message: RegisterClient) -> str:
        record = message.record
        self.check_quota(record)
        shard_key = shard_key_for(record.client_id)
        self.store.index_client(record.client_id, shard_key, record.source, self.now())
        self.env.backend.create_client(self.env.settings, self._tenant, record)
        self.audit("client_registered", client_id=record.client_id, source=record.source)
        return shard_key

    def check_quota(self, record: ClientRecord) -> None:
        """Dynamic registrations past `registration.max_clients`, and document clients past
        `client_metadata.max_clients`, are refused (`Settings.client_quota`)."""
        quota = self.env.settings.client_quota(record.source)
        if quota is None:
            return
        table, limits = quota
        if self.store.count_clients(record.source) >= limits.max_clients:
            # 503, not RFC 7591's 400: nothing is wrong with the request, and the janitor's
            # next pass may free room by deleting unused and expired clients.
            raise TemporarilyUnavailable(
                "this server is not accepting new client registrations right now",
                detail=f"{table}.max_clients ({limits.max_clients}) reached",
                retry_after_s=math.ceil(self.env.settings.janitor.interval_s),
            )

    @command(UnindexClient)
    def unindex(self, message: UnindexClient) -> None:
        self.store.unindex_client(message.client_id)

    @command(CollectDirectory)
    def collect(self, _message: CollectDirectory) -> dict[str, int]:
        return self.store.collect_directory(self.now())

    @query(ListClients)
    def list_clients(self, _message: ListClients) -> list[tuple[str, str, int]]:
        return self.store.list_clients()

    @query(CountClients)
    def count(self, _message: CountClients) -> int:
        return self.store.count_clients()

    @command(IndexUserCode)
    def draw_user_code(self, message: IndexUserCode) -> str:
        now = self.now()
        for _ in range(USER_CODE_DRAWS):
            code = issue_user_code()
            if self.store.index_user_code(
                code, message.shard_key, message.code_hash, message.expires_at, now
            ):
                return code
        raise TemporarilyUnavailable("too many device authorizations are outstanding")

    @query(FindUserCode)
    def find_user_code(self, message: FindUserCode) -> tuple[str, str] | None:
        return self.store.load_user_code(message.user_code, self.now())
