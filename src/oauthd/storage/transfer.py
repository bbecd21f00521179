"""`oauthd migrate`: a SQLite data dir copied into another backend (PostgreSQL), shard by shard,
through the seam: each shard is read by its SQLite store (`dump_rows`) and written by the
target's store of the same kind (`load_rows`), so what a row holds (hashes, sealed private keys,
byte for byte) is decided by the stores alone, never here.

Two passes. The first compares every shard of the data dir (the registry, each tenant's
directory, keys and federation, every client shard; `inventory.take_inventory` finds them) with
what the target holds under the same address: the same rows, nothing to do; none, to copy;
others, a conflict. A conflict writes nothing at all unless `replace` is given, and then the
target's rows of that shard are replaced. The second pass copies, one transaction per shard.
Then every shard is read back from the target, so the counts printed per table are what the
target holds, not what was sent. Running it again finds every shard the same and writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oauthd.settings import Settings
from oauthd.storage.embedded import SQLITE
from oauthd.storage.inventory import ShardFile, take_inventory
from oauthd.storage.seam import Backend, Ordered, Rows

__all__ = ["Transfer", "transfer_data_dir"]


@dataclass(slots=True)
class Transfer:
    """What a migration found and did. `read`/`stored`: rows per table in the data dir and in
    the target afterwards (for the shards of the data dir)."""

    read: Counter[str] = field(default_factory=Counter)
    stored: Counter[str] = field(default_factory=Counter)
    copied: list[str] = field(default_factory=list)  # shards written
    unchanged: list[str] = field(default_factory=list)  # shards the target already held
    conflicts: list[str] = field(default_factory=list)  # shards the target holds otherwise

    @property
    def verified(self) -> bool:
        return not self.conflicts and self.read == self.stored


def transfer_data_dir(
    source: Path, settings: Settings, target: Backend, *, replace: bool
) -> Transfer:
    """Copy the SQLite data dir `source` into `target` (blocking: run it in a thread).
    `settings` are the configuration's; the data dir is read as SQLite whatever they say."""
    embedded = dataclasses.replace(
        settings,
        data_dir=source,
        storage=dataclasses.replace(settings.storage, backend="sqlite"),
    )
    shards = take_inventory(source).shards
    report = Transfer()
    pending: list[ShardFile] = []
    for shard in shards:
        rows = dump(open_store(SQLITE, embedded, shard))
        held = dump(open_store(target, settings, shard))
        report.read.update({table: len(found) for table, found in rows.items()})
        if same(rows, held):
            report.unchanged.append(shard.path)
        elif any(held.values()) and not replace:
            report.conflicts.append(shard.path)
        else:
            pending.append(shard)
    if report.conflicts:
        return report
    for shard in pending:
        copy(open_store(SQLITE, embedded, shard), open_store(target, settings, shard))
        report.copied.append(shard.path)
    for shard in shards:
        stored = dump(open_store(target, settings, shard))
        report.stored.update({table: len(found) for table, found in stored.items()})
    return report


def open_store(backend: Backend, settings: Settings, shard: ShardFile) -> Ordered:
    """The store of `backend` holding the shard `shard` names."""
    if shard.kind == "registry":
        return backend.open_registry(settings)
    if shard.kind == "directory":
        return backend.open_directory(settings, shard.tenant)
    if shard.kind == "keys":
        return backend.open_keys(settings, shard.tenant)
    if shard.kind == "federation":
        return backend.open_federation(settings, shard.tenant)
    return backend.open_client(settings, shard.tenant, shard.key)


def dump(store: Ordered) -> Rows:
    try:
        with store.reading():
            return store.dump_rows()
    finally:
        store.close()


def copy(source: Ordered, target: Ordered) -> None:
    """One shard's rows from `source` into `target` in one transaction, replacing its own."""
    rows = dump(source)
    try:
        with target.transaction():
            target.load_rows(rows)
    finally:
        target.close()


def same(a: Rows, b: Rows) -> bool:
    """The same rows in every table, whatever their order."""
    return all(ordered(a.get(t, [])) == ordered(b.get(t, [])) for t in a.keys() | b.keys())


def ordered(rows: list[dict[str, Any]]) -> list[list[tuple[str, Any]]]:
    return sorted((sorted(row.items()) for row in rows), key=repr)
