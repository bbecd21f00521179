"""What a data dir holds (docs/architecture.md "Storage"): every shard, named by its tenant,
kind and key, and every file that is not oauthd's. `oauthd backup`, `restore` and `check-data`
walk a data dir through `take_inventory`; the layout is written down here once.

    registry.sqlite                              kind "registry", tenant ""
    <tenant>/directory.sqlite | keys.sqlite | federation.sqlite
    <tenant>/clients/<2 hex>/<shard key>.sqlite  kind "client", key = the shard key
    <tenant>/clients/.template-v<N>.sqlite       an empty client shard: remade on demand

Beside each database, its `-wal`, `-shm` and (after a killed rewrite) `-journal` are oauthd's,
and so are the scratch copies a registration renames into place (`.<file>.<16 hex>`), which
a killed process can leave behind. Anything else is not oauthd's.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from oauthd.storage.clients import CLIENT
from oauthd.storage.directory import DIRECTORY
from oauthd.storage.federation import FEDERATION
from oauthd.storage.keys import KEYS
from oauthd.storage.registry import REGISTRY, REGISTRY_FILE, TENANT_ID, registry_file
from oauthd.storage.sqlite import Schema, SchemaError

__all__ = [
    "SCHEMAS",
    "Inventory",
    "ShardFile",
    "open_read_only",
    "refuse_newer_data",
    "schema_version",
    "take_inventory",
]

SCHEMAS: dict[str, Schema] = {s.name: s for s in (REGISTRY, DIRECTORY, KEYS, FEDERATION, CLIENT)}
TENANT_FILES = {
    "directory.sqlite": "directory",
    "keys.sqlite": "keys",
    "federation.sqlite": "federation",
}
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
SHARD_NAME = re.compile(r"([0-9a-f]{20})\.sqlite")
TEMPLATE_NAME = re.compile(r"\.template-v(\d+)\.sqlite")
SCRATCH_NAME = re.compile(r"\..+\.sqlite\.[0-9a-f]{16}")


@dataclass(frozen=True, slots=True)
class ShardFile:
    """One shard of a data dir: `path` is relative to it, '/'-separated."""

    path: str
    tenant: str  # "" for the registry, which is no tenant's
    kind: str  # a key of SCHEMAS
    key: str = ""  # a client shard's shard key

    @property
    def schema(self) -> Schema:
        return SCHEMAS[self.kind]


@dataclass(slots=True)
class Inventory:
    shards: list[ShardFile] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)  # the tenant directories found
    templates: dict[str, int] = field(default_factory=dict)  # path -> its schema version
    foreign: list[str] = field(default_factory=list)  # paths that are not oauthd's


def take_inventory(data_dir: Path) -> Inventory:
    inventory = Inventory()
    for entry in sorted(data_dir.iterdir()) if data_dir.is_dir() else ():
        if entry.is_dir() and TENANT_ID.fullmatch(entry.name):
            inventory.tenants.append(entry.name)
            _tenant(data_dir, entry, inventory)
        elif entry.name == REGISTRY_FILE:
            inventory.shards.append(ShardFile(entry.name, "", "registry"))
        elif not _side_file(entry.name):
            inventory.foreign.append(entry.name)
    return inventory


def _side_file(name: str) -> bool:
    """A database's -wal, -shm or -journal, or a scratch copy: oauthd's."""
    if SCRATCH_NAME.fullmatch(name):
        return True
    return any(name.endswith(".sqlite" + suffix) for suffix in SIDE_SUFFIXES)


def _tenant(data_dir: Path, directory: Path, inventory: Inventory) -> None:
    tenant = directory.name
    for entry in sorted(directory.iterdir()):
        relative = f"{tenant}/{entry.name}"
        if entry.name in TENANT_FILES and entry.is_file():
            inventory.shards.append(ShardFile(relative, tenant, TENANT_FILES[entry.name]))
        elif entry.name == "clients" and entry.is_dir():
            _clients(entry, tenant, inventory)
        elif not _side_file(entry.name):
            inventory.foreign.append(relative)


def _clients(clients: Path, tenant: str, inventory: Inventory) -> None:
    for entry in sorted(clients.iterdir()):
        relative = f"{tenant}/clients/{entry.name}"
        template = TEMPLATE_NAME.fullmatch(entry.name)
        if template and entry.is_file():
            inventory.templates[relative] = int(template.group(1))
        elif entry.is_dir() and re.fullmatch(r"[0-9a-f]{2}", entry.name):
            inventory.shards.extend(_shards_in(entry, tenant, inventory))
        elif not _side_file(entry.name):
            inventory.foreign.append(relative)


def _shards_in(bucket: Path, tenant: str, inventory: Inventory) -> Iterator[ShardFile]:
    for entry in sorted(bucket.iterdir()):
        relative = f"{tenant}/clients/{bucket.name}/{entry.name}"
        shard = SHARD_NAME.fullmatch(entry.name)
        if shard and shard.group(1)[:2] == bucket.name and entry.is_file():
            yield ShardFile(relative, tenant, "client", shard.group(1))
        elif not _side_file(entry.name):
            inventory.foreign.append(relative)


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes the file, not even a checkpoint when it closes: in WAL
    mode it reads the last committed state beside live writers without blocking them."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def refuse_newer_data(data_dir: Path, tenant: str) -> None:
    """SchemaError if the registry or `tenant`'s shards were written by a newer oauthd (one
    whose client template is newer counts too): checked before anything opens them for
    writing, so a newer data dir is refused whole instead of served in part."""
    paths = [registry_file(data_dir), *(data_dir / tenant / n for n in TENANT_FILES)]
    for path in paths:
        try:
            version = stored_version(path)
        except (FileNotFoundError, sqlite3.DatabaseError):
            continue  # none yet, or damaged: opening it reports that
        _check_version(path, SCHEMAS[_kind_of(path.name)], version)
    for template in (data_dir / tenant / "clients").glob(".template-v*.sqlite"):
        match = TEMPLATE_NAME.fullmatch(template.name)
        if match:
            _check_version(template, CLIENT, int(match.group(1)))


def stored_version(path: Path) -> int:
    """The file's `user_version`, without a connection when there is no -wal (the file is then
    the whole database, and opening it even read-only would leave a -wal and -shm behind)."""
    if not path.with_name(path.name + "-wal").exists():
        with path.open("rb") as f:
            header = f.read(64)
        if len(header) == 64 and header.startswith(b"SQLite format 3\0"):
            return int.from_bytes(header[60:64], "big")
    with closing(open_read_only(path)) as conn:
        return schema_version(conn)


def _kind_of(name: str) -> str:
    return TENANT_FILES.get(name, "registry")


def _check_version(path: Path, schema: Schema, version: int) -> None:
    if version > schema.version:
        raise SchemaError(
            f"{path}: {schema.name} schema version {version} was written by a newer oauthd "
            f"(this one knows up to {schema.version}); upgrade oauthd, or restore a backup "
            f"made by this version"
        )
