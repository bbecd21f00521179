"""What actors share, and how the runtime makes each kind of actor.

Settings are per tenant (docs/architecture.md "Tenants"). The `Env` the server builds is the
`default` tenant's: its settings are the TOML file's. Every actor is made with the `Env` of the
tenant in its address (`env.of(tenant)`): the same clock, key-encryption key, transport and
metrics, with that tenant's settings, keyring and secrets. A tenant's `Settings` carry the
file's server-wide keys (data_dir, storage, actors, log, metrics, ...) and its own per-tenant
tables, so `env.settings` read by any actor is always the settings of that actor's tenant.
An address whose tenant this process does not know spawns nothing."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from oauthd.errors import NotFound
from oauthd.keys import KeyringHolder
from oauthd.metrics import Metrics
from oauthd.runtime import Actor, Address, Clock, Kind
from oauthd.settings import Settings
from oauthd.storage import SQLITE, Backend, tenant_dir

__all__ = ["DEFAULT_TENANT", "Env", "TenantConfig", "TenantTable", "kinds"]

DEFAULT_TENANT = "default"  # the tenant of the TOML file, at the root issuer


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """What differs between tenants: settings (per-tenant tables over the file's server-wide
    keys), the secrets those settings name, and the keyring its KeyManager fills."""

    settings: Settings
    upstream_secret: str = ""  # oauthd's client secret at this tenant's federation upstream
    initial_access_tokens: frozenset[str] = frozenset()  # RFC 7591 §3 hashes
    keyring: KeyringHolder = field(default_factory=KeyringHolder)


class TenantTable:
    """The tenants beyond `default` that this process knows, as `Env` views made on first use.
    `load(tenant)` answers a tenant's config or None (unknown, or not active); `forget` drops a
    view so the next use reloads it (its settings changed, or it was disabled or removed)."""

    def __init__(self, load: Callable[[str], TenantConfig | None] | None = None) -> None:
        self._load = load
        self._views: dict[str, Env] = {}
        self._lock = threading.Lock()

    def set_loader(self, load: Callable[[str], TenantConfig | None]) -> None:
        self._load = load
        self._views.clear()

    def view(self, root: Env, tenant: str) -> Env | None:
        found = self._views.get(tenant)
        if found is not None or self._load is None:
            return found
        config = self._load(tenant)
        if config is None:
            return None
        with self._lock:
            found = self._views.get(tenant)
            if found is None:
                found = self._views[tenant] = dataclasses.replace(
                    root,
                    tenant=tenant,
                    settings=config.settings,
                    keyring=config.keyring,
                    upstream_secret=config.upstream_secret,
                    initial_access_tokens=config.initial_access_tokens,
                )
            return found

    def forget(self, tenant: str) -> None:
        self._views.pop(tenant, None)

    def has(self, tenant: str) -> bool:
        return tenant in self._views

    def loaded(self) -> list[str]:
        return sorted(self._views)


@dataclass(frozen=True, slots=True)
class Env:
    """What actors share: settings, the clock, the keyring, the key-encryption key, the HTTP
    transport of the actors that call out (None: the network; tests pass an in-process one),
    the federation's client secret, the server's metrics (counted on committed events) and
    the storage backend every actor opens its store with (`storage/seam.py`). `settings`,
    `keyring`, `upstream_secret` and `initial_access_tokens` are `tenant`'s."""

    settings: Settings
    clock: Clock
    keyring: KeyringHolder
    kek: bytes | None
    fetch_transport: object | None = None
    upstream_secret: str = ""  # oauthd's client secret at the federation upstream
    # RFC 7591 §3: hashes of the initial access tokens /register accepts (empty: open)
    initial_access_tokens: frozenset[str] = frozenset()
    metrics: Metrics = field(default_factory=Metrics)
    tenant: str = DEFAULT_TENANT
    tenants: TenantTable = field(default_factory=TenantTable)  # shared by every view
    backend: Backend = SQLITE  # server-wide, shared by every view

    def tenant_dir(self, tenant: str) -> Path:
        return tenant_dir(self.settings.data_dir, tenant)

    def find(self, tenant: str) -> Env | None:
        """The Env of `tenant`, or None when this process does not know it."""
        if tenant == self.tenant:
            return self
        if tenant == DEFAULT_TENANT:
            return None  # only the root Env knows the file's tenant; views never answer for it
        return self.tenants.view(self, tenant)

    def of(self, tenant: str) -> Env:
        """The Env of `tenant`; NotFound when this process does not know it."""
        found = self.find(tenant)
        if found is None:
            raise NotFound("no such tenant", detail=f"unknown tenant {tenant!r}")
        return found

    def settings_of(self, tenant: str) -> Settings:
        return self.of(tenant).settings

    def knows(self, tenant: str) -> bool:
        return self.find(tenant) is not None


def kinds(env: Env) -> list[Kind]:
    from oauthd.actors.client import ClientActor
    from oauthd.actors.directory import Directory
    from oauthd.actors.federation import Federation
    from oauthd.actors.fetcher import Fetcher
    from oauthd.actors.keys import KeyManager
    from oauthd.actors.registry import Registry

    def client(address: Address) -> Actor:
        return ClientActor(env.of(address.tenant), address.tenant, address.key)

    hex_digits = frozenset("0123456789abcdef")

    def known(address: Address) -> bool:
        # An unknown tenant spawns nothing, so it creates no directory either.
        return env.knows(address.tenant)

    def client_exists(address: Address) -> bool:
        # Garbage never spawns an actor: only a shard key of hex digits naming a shard does.
        key = address.key
        if len(key) != 20 or not hex_digits.issuperset(key) or not known(address):
            return False
        return env.backend.client_exists(env.settings, address.tenant, key)

    def directory(address: Address) -> Actor:
        return Directory(env.of(address.tenant), address.tenant)

    def keys(address: Address) -> Actor:
        own = env.of(address.tenant)
        s = own.settings
        return KeyManager(
            partial(own.backend.open_keys, s, address.tenant),
            s.keys,
            own.clock,
            own.keyring,
            own.kek,
        )

    def fetcher(address: Address) -> Actor:
        own = env.of(address.tenant)
        return Fetcher(own.settings, own.clock, own.fetch_transport)

    def federation(address: Address) -> Actor:
        own = env.of(address.tenant)
        return Federation(own, address.tenant, own.upstream_secret)

    def federation_exists(address: Address) -> bool:
        own = env.find(address.tenant)
        return own is not None and own.settings.federation.enabled

    return [
        Kind("client", client, exists=client_exists),
        Kind(
            "federation",
            federation,
            exists=federation_exists,
            pinned=True,  # its caches of the upstream's metadata and keys outlive idle spells
            concurrent=True,  # logins wait on the upstream; one slow login must not queue others
        ),
        # pinned: its cache outlives idle spells; concurrent: a slow host delays only its fetch
        Kind("fetcher", fetcher, exists=known, pinned=True, concurrent=True),
        Kind("directory", directory, exists=known),
        Kind("keys", keys, pinned=True, exists=known),
        Kind("registry", lambda _address: Registry(env)),  # server-wide: registry.sqlite
    ]
