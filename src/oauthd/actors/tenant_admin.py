"""Tenant administration: what `oauthd tenants`, `oauthd keys` (cli/) and the admin API
(web/admin.py) do, written once, so the command line and HTTP do the same thing and answer
the same JSON (`tenant_json`, `removal_json`, `key_json`: the CLI's `--json` output).

Every change goes through the Registry actor (a tenant's row) or the tenant's KeyManager (its
keys), in their BEGIN IMMEDIATE transactions, so a CLI, the admin API and every worker process
are ordered by SQLite's write lock; running servers see a registry change within
REGISTRY_POLL_S. Removal is the one operation of several steps: mark the tenant `removing`
(every process answers 404 for it and stops its actors), wait REMOVE_GRACE_S for the servers
to notice, delete `<data_dir>/<tenant>/`, then the row.

Errors are the actors' own: NotFound for an unknown tenant, Conflict for an id or issuer that
exists, InvalidRequest naming the faulty settings key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio

from oauthd.actors.keys import KeyInfo, ListKeys, RotateKeys, keys_address
from oauthd.actors.registry import (
    REGISTRY_POLL_S,
    AddTenant,
    DeleteTenant,
    GetTenant,
    ListTenants,
    SetTenantState,
    TenantRow,
    UpdateTenant,
    registry_address,
)
from oauthd.actors.wiring import Env
from oauthd.errors import NotFound
from oauthd.runtime import ActorSystem

__all__ = ["REMOVE_GRACE_S", "TenantAdmin", "key_json", "removal_json", "tenant_json"]

REMOVE_GRACE_S = 3 * REGISTRY_POLL_S  # every server has stopped the tenant's actors by then


def tenant_json(row: TenantRow) -> dict[str, object]:
    return dataclasses.asdict(row)


def removal_json(tenant: str, directory: Path) -> dict[str, object]:
    return {"tenant": tenant, "removed": True, "directory": str(directory)}


def key_json(info: KeyInfo) -> dict[str, object]:
    return dataclasses.asdict(info)


class TenantAdmin:
    """The operations on tenants, over one process's actor system."""

    def __init__(self, system: ActorSystem, env: Env) -> None:
        self.system = system
        self.env = env

    async def add(self, tenant: str, issuer: str = "", settings: str = "") -> TenantRow:
        """A new tenant, active; `issuer` "" is its path issuer."""
        return await self.system.ask(registry_address(), AddTenant(tenant, issuer, settings))

    async def update(self, tenant: str, issuer: str | None, settings: str | None) -> TenantRow:
        """Replace the issuer and/or the settings (None keeps them)."""
        return await self.system.ask(registry_address(), UpdateTenant(tenant, issuer, settings))

    async def disable(self, tenant: str) -> TenantRow:
        return await self.system.ask(registry_address(), SetTenantState(tenant, "disabled"))

    async def enable(self, tenant: str) -> TenantRow:
        return await self.system.ask(registry_address(), SetTenantState(tenant, "active"))

    async def tenants(self) -> list[TenantRow]:
        return await self.system.ask(registry_address(), ListTenants())

    async def show(self, tenant: str) -> TenantRow:
        row = await self.system.ask(registry_address(), GetTenant(tenant))
        if row is None:
            raise NotFound(f"no tenant {tenant!r}")
        return row

    async def remove(self, tenant: str) -> Path:
        """Stop the tenant everywhere, then delete its directory and its row; the directory."""
        registry = registry_address()
        await self.system.ask(registry, SetTenantState(tenant, "removing"))
        await trio.sleep(REMOVE_GRACE_S)  # running servers stop its actors meanwhile
        directory = self.env.tenant_dir(tenant)
        await trio.to_thread.run_sync(self.env.backend.remove_tenant, self.env.settings, tenant)
        await self.system.ask(registry, DeleteTenant(tenant))
        return directory

    async def keys(self, tenant: str) -> list[KeyInfo]:
        """A tenant's signing keys (`default` too); NotFound for a tenant not served."""
        return await self.system.ask(keys_address(tenant), ListKeys())

    async def rotate_keys(self, tenant: str, *, immediate: bool = False) -> list[KeyInfo]:
        """A new signing key, published now, signing after keys.publish_ahead_s (or at once)."""
        return await self.system.ask(keys_address(tenant), RotateKeys(immediate))
