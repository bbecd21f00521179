"""`oauthd check-data`: is a data dir whole? Every shard (the registry, each tenant's directory,
keys, federation and client shards) gets SQLite's `integrity_check` (or `quick_check`) from a
read-only connection, and its schema version is compared with the code's. Then the layout:
client shards no directory row names (orphans), directory rows whose shard is missing, tenant
directories the registry does not name, and files that are not oauthd's.

`repair=True` does two things and nothing else: it removes orphan client shards older than
`orphan_after_s` (a younger one may be a registration still in flight in a running server, as
for the janitor's strays), and it migrates shards whose schema is behind the code (the same
`Store` open that a server does). A damaged shard, a missing one, a foreign file or an unknown
tenant directory is reported for a person to decide.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from oauthd.storage.clients import remove_client_shard
from oauthd.storage.inventory import (
    Inventory,
    ShardFile,
    open_read_only,
    schema_version,
    take_inventory,
)
from oauthd.storage.registry import REGISTRY_FILE, registry_file
from oauthd.storage.sqlite import SchemaError, Store

__all__ = ["CheckOptions", "CheckReport", "Finding", "check_data_dir", "registered_tenants"]


@dataclass(frozen=True, slots=True)
class Finding:
    problem: str  # damaged | unreadable | old_schema | newer_schema | orphan_shard |
    # missing_shard | unknown_tenant | foreign_file
    path: str  # relative to the data dir
    detail: str = ""
    repaired: bool = False


@dataclass(slots=True)
class CheckReport:
    shards: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def unresolved(self) -> list[Finding]:
        return [f for f in self.findings if not f.repaired]


@dataclass(frozen=True, slots=True)
class CheckOptions:
    quick: bool = False
    repair: bool = False
    orphan_after_s: float = 600.0


def check_data_dir(data_dir: Path, options: CheckOptions = CheckOptions()) -> CheckReport:
    inventory = take_inventory(data_dir)
    report = CheckReport()
    for shard in inventory.shards:
        report.shards += 1
        finding = _check_shard(data_dir, shard, options)
        if finding is not None:
            report.findings.append(finding)
    damaged = {f.path for f in report.findings if f.problem in ("damaged", "unreadable")}
    tenants = set() if REGISTRY_FILE in damaged else registered_tenants(data_dir)
    for tenant in inventory.tenants:
        report.findings += _check_index(data_dir, tenant, inventory, damaged, options)
        if tenant != "default" and tenant not in tenants:
            report.findings.append(Finding("unknown_tenant", tenant, "not in the registry"))
    report.findings += [Finding("foreign_file", path, "not oauthd's") for path in inventory.foreign]
    return report


def registered_tenants(data_dir: Path) -> set[str]:
    """The tenants the registry names; none if there is no registry yet."""
    path = registry_file(data_dir)
    if not path.is_file():
        return set()
    with closing(open_read_only(path)) as conn:
        return {str(t) for (t,) in conn.execute("SELECT tenant FROM tenants")}


def _check_shard(data_dir: Path, shard: ShardFile, options: CheckOptions) -> Finding | None:
    path = data_dir / shard.path
    try:
        with closing(open_read_only(path)) as conn:
            problems = _integrity(conn, quick=options.quick)
            version = schema_version(conn)
    except sqlite3.DatabaseError as exc:
        return Finding("unreadable", shard.path, str(exc))
    if problems:
        return Finding("damaged", shard.path, "; ".join(problems[:5]))
    if version > shard.schema.version:
        return Finding(
            "newer_schema", shard.path, f"v{version}, newer than v{shard.schema.version}"
        )
    if version < shard.schema.version:
        detail = f"v{version}, the code is at v{shard.schema.version}"
        return Finding("old_schema", shard.path, detail, options.repair and _migrate(path, shard))
    return None


def _integrity(conn: sqlite3.Connection, *, quick: bool) -> list[str]:
    pragma = "quick_check" if quick else "integrity_check"
    problems = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}")]
    return [] if problems == ["ok"] else problems


def _migrate(path: Path, shard: ShardFile) -> bool:
    try:
        Store(path, shard.schema, create=False).close()
    except (sqlite3.Error, SchemaError):
        return False
    with closing(open_read_only(path)) as conn:
        return schema_version(conn) == shard.schema.version


def _check_index(
    data_dir: Path, tenant: str, inventory: Inventory, damaged: set[str], options: CheckOptions
) -> list[Finding]:
    """Orphan client shards and directory rows without a shard, for one tenant."""
    directory = f"{tenant}/directory.sqlite"
    if directory in damaged or not (data_dir / directory).is_file():
        return []  # nothing to compare with: the directory's own finding says why
    with closing(open_read_only(data_dir / directory)) as conn:
        indexed = dict(conn.execute("SELECT shard_key, client_id FROM clients").fetchall())
    on_disk = {s.key for s in inventory.shards if s.tenant == tenant and s.kind == "client"}
    findings = [
        Finding("missing_shard", directory, f"client {indexed[key]!r} has no shard file")
        for key in sorted(indexed.keys() - on_disk)
    ]
    for key in sorted(on_disk - indexed.keys()):
        path = f"{tenant}/clients/{key[:2]}/{key}.sqlite"
        repaired = options.repair and _remove_orphan(data_dir / tenant, key, options)
        findings.append(Finding("orphan_shard", path, "no directory row names it", repaired))
    return findings


def _remove_orphan(tenant_dir: Path, shard_key: str, options: CheckOptions) -> bool:
    path = tenant_dir / "clients" / shard_key[:2] / f"{shard_key}.sqlite"
    if path.stat().st_mtime > time.time() - options.orphan_after_s:
        return False  # perhaps a registration in flight: left for a later check or the janitor
    remove_client_shard(tenant_dir, shard_key)
    return True
