"""The ClientActor: owns one client's shard. Its registration is cached in memory and
re-read when another process has committed to the shard (PRAGMA data_version)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oauthd.actors.shard import ShardActor, query
from oauthd.errors import InvalidClient
from oauthd.runtime import Address
from oauthd.settings import StorageSettings
from oauthd.storage import ClientRecord, client_shard_path, load_client, shard_key_for
from oauthd.storage.clients import CLIENT

__all__ = ["ClientActor", "GetClient", "client_address"]


@dataclass(frozen=True, slots=True)
class GetClient:
    """Query: the client's registration."""


def client_address(tenant: str, client_id: str) -> Address:
    return Address(tenant, "client", shard_key_for(client_id))


class ClientActor(ShardActor):
    schema = CLIENT

    def __init__(self, tenant_dir: Path, shard_key: str, storage: StorageSettings) -> None:
        super().__init__(client_shard_path(tenant_dir, shard_key), storage, create=False)
        self._client: ClientRecord | None = None
        self._seen_version = -1

    def loaded(self) -> None:
        self._client = load_client(self.store)
        self._seen_version = self.store.data_version()

    def client(self) -> ClientRecord:
        version = self.store.data_version()
        if version != self._seen_version:
            self.loaded()
        if self._client is None:
            raise InvalidClient("unknown client", detail="shard has no registration")
        return self._client

    @query(GetClient)
    def get_client(self, _message: GetClient) -> ClientRecord:
        return self.client()
