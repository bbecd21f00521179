"""What actors share, and how the runtime makes each kind of actor."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from oauthd.keys import KeyringHolder
from oauthd.metrics import Metrics
from oauthd.runtime import Actor, Address, Clock, Kind
from oauthd.settings import Settings
from oauthd.storage import client_shard_file, tenant_dir

__all__ = ["Env", "kinds"]


@dataclass(frozen=True, slots=True)
class Env:
    """What actors share: settings, the clock, the keyring, the key-encryption key, the HTTP
    transport of the actors that call out (None: the network; tests pass an in-process one),
    the federation's client secret, and the server's metrics (counted on committed events)."""

    settings: Settings
    clock: Clock
    keyring: KeyringHolder
    kek: bytes | None
    fetch_transport: object | None = None
    upstream_secret: str = ""  # oauthd's client secret at the federation upstream
    # RFC 7591 §3: hashes of the initial access tokens /register accepts (empty: open)
    initial_access_tokens: frozenset[str] = frozenset()
    metrics: Metrics = field(default_factory=Metrics)

    def tenant_dir(self, tenant: str) -> Path:
        return tenant_dir(self.settings.data_dir, tenant)


def kinds(env: Env) -> list[Kind]:
    from oauthd.actors.client import ClientActor
    from oauthd.actors.directory import Directory
    from oauthd.actors.federation import Federation
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

    def federation(address: Address) -> Actor:
        return Federation(env, address.tenant, env.upstream_secret)

    return [
        Kind("client", client, exists=client_exists),
        Kind(
            "federation",
            federation,
            exists=lambda _address: s.federation.enabled,
            pinned=True,  # its caches of the upstream's metadata and keys outlive idle spells
            concurrent=True,  # logins wait on the upstream; one slow login must not queue others
        ),
        # pinned: its cache outlives idle spells; concurrent: a slow host delays only its fetch
        Kind("fetcher", fetcher, pinned=True, concurrent=True),
        Kind("directory", directory),
        Kind("keys", keys, pinned=True),
    ]
