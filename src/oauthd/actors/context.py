"""What a handler module's functions are given: the actor whose store they work in, open
inside the message's transaction. `ClientActor` implements `ClientShard` (its handlers are in
the `client_*` modules) and `Directory` implements `Shard` (`people`, `people_admin`). The
stores are the storage seam's (`storage/seam.py`): the handlers do not know the backend."""

from __future__ import annotations

from typing import Protocol

from oauthd.actors.wiring import Env
from oauthd.storage import ClientRecord, ClientStore, DirectoryStore

__all__ = ["ClientShard", "Context", "Shard"]


class Context(Protocol):
    env: Env  # settings, clock, keyring: what every actor shares

    def now(self) -> int:
        """The clock's time in whole seconds."""
        ...

    def audit(self, event: str, **fields: str | int | bool) -> None:
        """Queue an audit event, written once this message's writes have committed."""
        ...


class Shard(Context, Protocol):
    """A tenant's directory."""

    @property
    def store(self) -> DirectoryStore:
        """The directory, inside this message's transaction."""
        ...


class ClientShard(Context, Protocol):
    """One client's shard."""

    shard_key: str  # carried by every handle this shard issues

    @property
    def store(self) -> ClientStore:
        """The client's shard, inside this message's transaction."""
        ...

    def client(self) -> ClientRecord:
        """The registration in force; invalid_client once the client is deleted."""
        ...

    def forget(self) -> None:
        """The registration changed in this transaction: re-read it on next use."""
        ...
