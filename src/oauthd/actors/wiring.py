"""What actors share, and how the runtime makes each kind of actor."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from oauthd.keys import KeyringHolder
from oauthd.runtime import Actor, Address, Clock, Kind
from oauthd.settings import Settings
from oauthd.storage import client_shard_file, tenant_dir

__all__ = ["Env", "kinds"]


@dataclass(frozen=True, slots=True)
class Env:
    """What actors share: settings, the clock, the keyring, the key-encryption key, and the
    HTTP transport of the Fetcher (None: the network; tests pass an in-process one)."""

    settings: Settings
    clock: Clock
    keyring: KeyringHolder
    kek: bytes | None
    fetch_transport: object | None = None

    def tenant_dir(self, tenant: str) -> Path:
        return tenant_dir(self.settings.data_dir, tenant)


def kinds(env: Env) -> list[Kind]:
    from oauthd.actors.client import ClientActor
    from oauthd.actors.directory import Directory
    from oauthd.actors.fetcher import Fetcher
    from oauthd.actors.keys import KeyManager

    s = env.settings

    def client(address: Address) -> Actor:
        return ClientActor(env, address.tenant, address.key)

    hex_digits = frozenset("0123456789abcdef")
    roots: dict[str, str] = {}  # tenant -> its directory as a string, for the spawn check

    def client_exists(address: Address) -> bool:
        # Garbage never spawns an actor: only a shard key of hex digits naming a file does.
        key = address.key
        if len(key) != 20 or not hex_digits.issuperset(key):
            return False
        root = roots.get(address.tenant)
        if root is None:
            root = roots[address.tenant] = str(env.tenant_dir(address.tenant))
        return os.path.isfile(client_shard_file(root, key))

    def directory(address: Address) -> Actor:
        return Directory(env, address.tenant)

    def keys(address: Address) -> Actor:
        return KeyManager(
            env.tenant_dir(address.tenant), s.keys, s.storage, env.clock, env.keyring, env.kek
        )

    def fetcher(_address: Address) -> Actor:
        return Fetcher(s, env.clock, env.fetch_transport)

    return [
        Kind("client", client, exists=client_exists),
        Kind("fetcher", fetcher, pinned=True),  # pinned: its cache outlives idle spells
        Kind("directory", directory),
        Kind("keys", keys, pinned=True),
    ]
