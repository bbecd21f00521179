"""The registry of tenants beyond `default`: `<data_dir>/registry.sqlite`, one row per tenant
(docs/architecture.md "Tenants"). Every process reads it; writers (the Registry actor of a
server or of the CLI) change it inside BEGIN IMMEDIATE, so the file's write lock orders them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sqlite_utils

from oauthd.storage.sqlite import Schema, Store

__all__ = [
    "REGISTRY",
    "TenantRow",
    "TenantState",
    "delete_tenant",
    "insert_tenant",
    "issuer_taken",
    "load_tenant",
    "load_tenants",
    "open_registry",
    "registry_file",
    "remove_tenant_dir",
    "update_tenant",
]

TenantState = Literal["active", "disabled", "removing"]


@dataclass(frozen=True, slots=True)
class TenantRow:
    tenant: str
    issuer: str
    state: TenantState
    settings: str  # TOML text of the per-tenant tables; secrets only by variable name
    created_at: int
    updated_at: int


def _v1(db: sqlite_utils.Database) -> None:
    db.table("tenants").create(
        {
            "tenant": str,
            "issuer": str,
            "state": str,
            "settings": str,
            "created_at": int,
            "updated_at": int,
        },
        pk="tenant",
    )
    db.table("tenants").create_index(["issuer"], unique=True)


REGISTRY = Schema("registry", (_v1,))
COLUMNS = "tenant, issuer, state, settings, created_at, updated_at"


def registry_file(data_dir: Path) -> Path:
    return data_dir / "registry.sqlite"


def open_registry(data_dir: Path, *, fsync: bool = False, busy_timeout_ms: int = 5000) -> Store:
    return Store(
        registry_file(data_dir),
        REGISTRY,
        create=True,
        fsync=fsync,
        busy_timeout_ms=busy_timeout_ms,
    )


def _row(values: tuple[object, ...]) -> TenantRow:
    return TenantRow(*values)  # type: ignore[arg-type]  # columns in TenantRow's order


def load_tenant(store: Store, tenant: str) -> TenantRow | None:
    rows = store.query(f"SELECT {COLUMNS} FROM tenants WHERE tenant = ?", (tenant,))  # noqa: S608
    return _row(rows[0]) if rows else None


def load_tenants(store: Store) -> list[TenantRow]:
    return [_row(r) for r in store.query(f"SELECT {COLUMNS} FROM tenants ORDER BY tenant")]  # noqa: S608


def issuer_taken(store: Store, issuers: tuple[str, ...], tenant: str) -> str | None:
    """The first of `issuers` that a tenant other than `tenant` has (an indexed lookup)."""
    marks = ",".join("?" * len(issuers))
    rows = store.query(
        f"SELECT issuer FROM tenants WHERE issuer IN ({marks}) AND tenant != ? LIMIT 1",  # noqa: S608
        (*issuers, tenant),
    )
    return str(rows[0][0]) if rows else None


def insert_tenant(store: Store, row: TenantRow) -> None:
    store.conn.execute(
        f"INSERT INTO tenants ({COLUMNS}) VALUES (?,?,?,?,?,?)",  # noqa: S608
        (row.tenant, row.issuer, row.state, row.settings, row.created_at, row.updated_at),
    )


def update_tenant(store: Store, row: TenantRow) -> None:
    store.conn.execute(
        "UPDATE tenants SET issuer = ?, state = ?, settings = ?, updated_at = ? WHERE tenant = ?",
        (row.issuer, row.state, row.settings, row.updated_at, row.tenant),
    )


def delete_tenant(store: Store, tenant: str) -> None:
    store.conn.execute("DELETE FROM tenants WHERE tenant = ?", (tenant,))


def remove_tenant_dir(directory: Path) -> None:
    """Delete a removed tenant's shards; nothing there is kept."""
    shutil.rmtree(directory, ignore_errors=True)
