"""The Registry actor: the tenants beyond `default` (docs/architecture.md "Tenants").

It owns `<data_dir>/registry.sqlite`: id, issuer, state and per-tenant settings (TOML text in
the file's shape, checked by the same loader and checks as the file). Each change is one
BEGIN IMMEDIATE transaction, so a CLI beside a running server and the server's own actor are
ordered by the file's write lock. Readers in every process (`RegistryReader`) notice a commit
by any connection through `PRAGMA data_version`, a cheap check that `server.Tenancy` makes at
most `REGISTRY_POLL_S` apart for tenant requests (and at once for an unknown tenant), so every
worker acts on a change within that bound."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from oauthd.actors.shard import ShardActor, command, query
from oauthd.actors.wiring import DEFAULT_TENANT, Env
from oauthd.errors import ConfigError, Conflict, InvalidRequest, NotFound
from oauthd.runtime import Address, Command, Query
from oauthd.settings import Settings, load_tenant_settings
from oauthd.storage import Store
from oauthd.storage.registry import (
    REGISTRY,
    TenantRow,
    TenantState,
    delete_tenant,
    insert_tenant,
    issuer_taken,
    load_tenant,
    load_tenants,
    open_registry,
    registry_file,
    update_tenant,
)

__all__ = [
    "REGISTRY_POLL_S",
    "TENANT_ID",
    "AddTenant",
    "DeleteTenant",
    "GetTenant",
    "ListTenants",
    "Registry",
    "RegistryReader",
    "SetTenantState",
    "TenantRow",
    "UpdateTenant",
    "check_tenant_id",
    "path_issuer",
    "registry_address",
    "tenant_settings",
]

TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
REGISTRY_POLL_S = 1.0  # every process sees a registry change within this long


def registry_address() -> Address:
    return Address(DEFAULT_TENANT, "registry", "")


def check_tenant_id(tenant: str) -> None:
    if not TENANT_ID.fullmatch(tenant):
        raise InvalidRequest(
            f"tenant id must match [a-z0-9][a-z0-9-]{{0,62}}, got {tenant!r}",
        )
    if tenant == DEFAULT_TENANT:
        raise InvalidRequest("tenant id 'default' is reserved for the file's tenant")


def path_issuer(root: Settings, tenant: str) -> str:
    """A path tenant's issuer: `<root issuer>/t/<tenant>`."""
    return f"{root.issuer}/t/{tenant}"


def tenant_settings(root: Settings, row: TenantRow) -> Settings:
    """The tenant's settings over the file's server-wide keys; ConfigError names the key."""
    return load_tenant_settings(root, row.issuer, row.settings, f"tenant {row.tenant}")


def _checked(root: Settings, row: TenantRow) -> None:
    """The same checks as the file: a fault is an invalid_request whose text names the key."""
    if row.issuer != path_issuer(root, row.tenant):
        own = urlsplit(row.issuer)
        raise InvalidRequest(
            f"issuer: only path tenants ({path_issuer(root, row.tenant)}) are served; "
            f"an issuer on its own origin ({own.scheme}://{own.netloc}) is not supported yet"
        )
    try:
        tenant_settings(root, row)
    except ConfigError as exc:
        raise InvalidRequest(str(exc)) from None


@dataclass(frozen=True, slots=True)
class AddTenant(Command[TenantRow]):
    """Command: create a tenant, active. `issuer` "" is the path issuer."""

    tenant: str
    issuer: str = ""
    settings: str = ""


@dataclass(frozen=True, slots=True)
class UpdateTenant(Command[TenantRow]):
    """Command: replace a tenant's issuer and/or settings (None keeps them)."""

    tenant: str
    issuer: str | None = None
    settings: str | None = None


@dataclass(frozen=True, slots=True)
class SetTenantState(Command[TenantRow]):
    """Command: active, disabled (403, data kept) or removing (404; its directory goes next)."""

    tenant: str
    state: TenantState


@dataclass(frozen=True, slots=True)
class DeleteTenant(Command[None]):
    """Command: forget a tenant whose directory is gone."""

    tenant: str


@dataclass(frozen=True, slots=True)
class GetTenant(Query[TenantRow | None]):
    tenant: str


@dataclass(frozen=True, slots=True)
class ListTenants(Query[list[TenantRow]]):
    pass


class Registry(ShardActor):
    schema = REGISTRY

    def __init__(self, env: Env) -> None:
        super().__init__(registry_file(env.settings.data_dir), env.settings.storage, create=True)
        self.env = env

    def now(self) -> int:
        return int(self.env.clock.now())

    def _existing(self, tenant: str) -> TenantRow:
        row = load_tenant(self.store, tenant)
        if row is None or row.state == "removing":
            raise NotFound(f"no tenant {tenant!r}")
        return row

    def _check_issuer(self, row: TenantRow) -> None:
        _checked(self.env.settings, row)
        if issuer_taken(self.store, row.issuer, row.tenant):
            raise Conflict(f"issuer {row.issuer} belongs to another tenant")

    @command(AddTenant)
    def add(self, message: AddTenant) -> TenantRow:
        check_tenant_id(message.tenant)
        if load_tenant(self.store, message.tenant) is not None:
            raise Conflict(f"tenant {message.tenant!r} already exists")
        now = self.now()
        issuer = message.issuer or path_issuer(self.env.settings, message.tenant)
        row = TenantRow(message.tenant, issuer, "active", message.settings, now, now)
        self._check_issuer(row)
        insert_tenant(self.store, row)
        self.audit("tenant_added", tenant=row.tenant)
        return row

    @command(UpdateTenant)
    def update(self, message: UpdateTenant) -> TenantRow:
        old = self._existing(message.tenant)
        row = TenantRow(
            old.tenant,
            old.issuer if message.issuer is None else message.issuer,
            old.state,
            old.settings if message.settings is None else message.settings,
            old.created_at,
            self.now(),
        )
        self._check_issuer(row)
        update_tenant(self.store, row)
        self.audit("tenant_updated", tenant=row.tenant)
        return row

    @command(SetTenantState)
    def set_state(self, message: SetTenantState) -> TenantRow:
        old = self._existing(message.tenant)
        row = TenantRow(
            old.tenant, old.issuer, message.state, old.settings, old.created_at, self.now()
        )
        update_tenant(self.store, row)
        self.audit("tenant_state", tenant=row.tenant, state=row.state)
        return row

    @command(DeleteTenant)
    def delete(self, message: DeleteTenant) -> None:
        delete_tenant(self.store, message.tenant)
        self.audit("tenant_removed", tenant=message.tenant)

    @query(GetTenant)
    def get(self, message: GetTenant) -> TenantRow | None:
        row = load_tenant(self.store, message.tenant)
        return None if row is None or row.state == "removing" else row

    @query(ListTenants)
    def list_all(self, _message: ListTenants) -> list[TenantRow]:
        return [row for row in load_tenants(self.store) if row.state != "removing"]


class RegistryReader:
    """This process's snapshot of the registry, re-read when another connection committed
    (`PRAGMA data_version` changed). `refresh()` answers the tenants whose row changed."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._store: Store | None = None
        self._version = -1
        self.rows: dict[str, TenantRow] = {}

    def _open(self) -> Store:
        if self._store is None:
            self._store = open_registry(self._data_dir)
        return self._store

    def refresh(self) -> set[str]:
        if self._store is None and not registry_file(self._data_dir).exists():
            return set()  # no tenant was ever added: a single-tenant data dir gains no file
        store = self._open()
        version = store.data_version()
        if version == self._version:
            return set()
        self._version = version
        rows = {row.tenant: row for row in load_tenants(store)}
        changed = {t for t in rows.keys() | self.rows.keys() if rows.get(t) != self.rows.get(t)}
        self.rows = rows
        return changed

    def get(self, tenant: str) -> TenantRow | None:
        return self.rows.get(tenant)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
