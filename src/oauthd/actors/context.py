"""What a handler module's functions are given: the actor whose shard they work in, open
inside the message's transaction. `ClientActor` implements `ClientShard` (its handlers are in
the `client_*` modules) and `Directory` implements `Shard` (`people`, `people_admin`)."""

from __future__ import annotations

from typing import Protocol

from oauthd.actors.wiring import Env
from oauthd.storage import ClientRecord, Store

__all__ = ["ClientShard", "Shard"]


class Shard(Protocol):
    env: Env  # settings, clock, keyring: what every actor shares

    @property
    def store(self) -> Store:
        """The shard, inside this message's transaction."""
        ...

    def now(self) -> int:
        """The clock's time in whole seconds."""
        ...

    def audit(self, event: str, **fields: str | int | bool) -> None:
        """Queue an audit event, written once this message's writes have committed."""
        ...


class ClientShard(Shard, Protocol):
    """One client's shard."""

    shard_key: str  # carried by every handle this shard issues

    def client(self) -> ClientRecord:
        """The registration in force; invalid_client once the client is deleted."""
        ...

    def forget(self) -> None:
        """The registration changed in this transaction: re-read it on next use."""
        ...
