"""The ClientActor: owns one client's shard. Its registration is cached in memory and
re-read when another process has committed to the shard (the store's `data_version`).

Its handlers are plain functions over the `ClientShard` it implements, one module per
concern: the browser part of the code flow (`client_authz`: pending requests, codes), the
token endpoint's grants (`client_tokens`), the device grant (`client_device`, RFC 8628),
revocation and introspection (`client_lifecycle`), the registration itself
(`client_registration`, RFC 7592) and the admin CLI's (`client_admin`). The ones that
authenticate the client share `client_auth.authenticate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from oauthd.actors import (
    client_admin,
    client_authz,
    client_device,
    client_lifecycle,
    client_registration,
    client_tokens,
)
from oauthd.actors.context import ClientShard
from oauthd.actors.shard import ShardActor, command, query
from oauthd.actors.wiring import Env
from oauthd.errors import InvalidClient
from oauthd.runtime import Address, Command, Query
from oauthd.storage import ClientRecord, ClientStore, shard_key_for

__all__ = ["ClientActor", "Collect", "Collected", "GetClient", "client_address"]


@dataclass(frozen=True, slots=True)
class Collected:
    """How many rows of each kind went; `deleted_client` names a client deregistered over
    RFC 7592, whose shard may now be removed from disk once its actor has closed."""

    counts: dict[str, int] = field(default_factory=dict)
    deleted_client: str | None = None


@dataclass(frozen=True, slots=True)
class GetClient(Query[ClientRecord]):
    """Query: the client's registration."""


@dataclass(frozen=True, slots=True)
class Collect(Command[Collected]):
    """Command: delete the shard's expired rows (the janitor, `storage.expiry`), and the
    registration itself if it is a dynamic or document client's that has lapsed
    (`ClientRecord.expires_at`)."""


def client_address(tenant: str, client_id: str) -> Address:
    return Address(tenant, "client", shard_key_for(client_id))


class ClientActor(ShardActor[ClientStore], ClientShard):
    handler_modules = (
        client_admin,
        client_authz,
        client_device,
        client_lifecycle,
        client_registration,
        client_tokens,
    )

    def __init__(self, env: Env, tenant: str, shard_key: str) -> None:
        super().__init__(
            partial(env.backend.open_client, env.settings, tenant, shard_key),
            observe=env.metrics.observer(tenant),
        )
        self.env = env
        self.shard_key = shard_key
        self._client: ClientRecord | None = None
        self._seen_version = -1

    def loaded(self) -> None:
        self._client = self.store.load_client()
        self._seen_version = self.store.data_version()

    def now(self) -> int:
        return int(self.env.clock.now())

    def forget(self) -> None:
        """The registration changed in this transaction: reload it on next use."""
        self._seen_version = -1

    def client(self) -> ClientRecord:
        """The registration, re-read whenever another process has committed to the shard since
        (PRAGMA data_version: one statement, no I/O, about a microsecond). Every use checks,
        reads included, so an RFC 7592 update or delete served by another worker holds here
        at once; a write checks inside its write lock, so no stale copy decides a write."""
        if self.store.data_version() != self._seen_version:
            self.loaded()
        client = self._client
        if client is None or client.deleted_at is not None:
            raise InvalidClient("unknown client", detail="no registration in the shard")
        return client

    @query(GetClient)
    def get_client(self, _message: GetClient) -> ClientRecord:
        return self.client()

    @command(Collect)
    def collect(self, _message: Collect) -> Collected:
        now = self.now()
        counts = self.store.collect_client_shard(now)
        record = self.store.load_client()  # not client(): a deleted client must answer too
        quota = self.env.settings.client_quota(record.source) if record else None
        if record is not None and record.deleted_at is None and quota is not None:
            # A dynamic or document client never used, or idle past its lifetime, goes the
            # way of an RFC 7592 deletion: its grants end now and the janitor removes its
            # shard (a document client is fetched again when next used).
            expires_at = record.expires_at(quota[1].unused_ttl_s, quota[1].idle_ttl_s)
            expired = now >= expires_at
            counts["expired_clients"] = int(expired)
            if expired:
                self.store.delete_client(now)
                self.forget()
                record = self.store.load_client()
        deleted = record.client_id if record is not None and record.deleted_at is not None else None
        return Collected(counts, deleted)
