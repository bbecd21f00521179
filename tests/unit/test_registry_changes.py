"""The registry's numbered changes (storage/registry.py): a process brings its view up to date
by reading only the changes after the last one it read, and sees exactly what a whole read
would (`RegistryReader.refresh`)."""

from __future__ import annotations

from dataclasses import astuple, replace
from pathlib import Path

from oauthd.actors.registry import RegistryReader
from oauthd.settings import settings_for_tests
from oauthd.storage import SQLITE
from oauthd.storage.registry import (
    REGISTRY,
    TenantRow,
    changes_since,
    delete_tenant,
    insert_tenant,
    load_tenants,
    open_registry,
    registry_file,
    update_tenant,
)
from oauthd.storage.sqlite import Schema, Store


def reader_of(data_dir: Path) -> RegistryReader:
    return RegistryReader(settings_for_tests(data_dir=data_dir), SQLITE)


def row(tenant: str, updated_at: int = 0) -> TenantRow:
    return TenantRow(tenant, f"https://auth.example/t/{tenant}", "active", "", 1, updated_at)


def write(store: Store, change: str, tenant: str, updated_at: int = 0) -> None:
    with store.transaction():
        if change == "insert":
            insert_tenant(store, row(tenant, updated_at))
        elif change == "update":
            update_tenant(store, row(tenant, updated_at))
        else:
            delete_tenant(store, tenant)


def whole(store: Store) -> dict[str, TenantRow]:
    return {r.tenant: r for r in load_tenants(store)}


def test_a_refresh_reads_what_changed_and_agrees_with_a_whole_read(tmp_path: Path) -> None:
    """Inserts, updates, deletes and a tenant added again after its removal: each refresh
    answers the tenants changed, and the view equals a whole read of the registry."""
    writer = open_registry(tmp_path)
    reader = reader_of(tmp_path)
    steps = [
        ([("insert", "a"), ("insert", "b"), ("insert", "c")], {"a", "b", "c"}),
        ([("update", "b", 5)], {"b"}),
        ([("delete", "a")], {"a"}),
        ([("insert", "a", 9), ("update", "c", 2), ("delete", "c")], {"a", "c"}),
        ([], set()),
        ([("update", "b", 5)], set()),  # numbered, but the row is as it was
    ]
    for changes, expected in steps:
        for change, tenant, *updated in changes:
            write(writer, change, tenant, *updated)
        assert reader.refresh() == expected
        assert reader.rows == whole(writer)
    assert reader.rows["a"].updated_at == 9
    late = reader_of(tmp_path)  # a process started after all of it
    assert late.refresh() == {"a", "b"}
    assert late.rows == whole(writer)


def test_changes_since_names_only_later_changes(tmp_path: Path) -> None:
    """A change is read once: after the number a reader has, only newer rows and tombstones."""
    writer = open_registry(tmp_path)
    write(writer, "insert", "a")
    first = changes_since(writer, -1)
    write(writer, "insert", "b")
    write(writer, "delete", "a")
    later = changes_since(writer, first.seq)
    assert [r.tenant for r in later.rows] == ["b"]
    assert later.removed == ["a"]
    assert later.seq == first.seq + 2
    assert changes_since(writer, later.seq) == replace(later, rows=[], removed=[])


def test_a_version_1_registry_is_migrated_with_its_rows(tmp_path: Path) -> None:
    """A registry written before changes were numbered keeps its rows (number 0): a whole first
    read sees them, and later changes are read one by one."""
    version_1 = Schema("registry", REGISTRY.migrations[:1])
    old = Store(registry_file(tmp_path), version_1, create=True)
    old.conn.execute("INSERT INTO tenants VALUES (?, ?, ?, ?, ?, ?)", astuple(row("old")))
    old.close()
    reader = reader_of(tmp_path)
    assert reader.refresh() == {"old"}
    writer = open_registry(tmp_path)
    assert writer.query("PRAGMA user_version") == [(REGISTRY.version,)]
    write(writer, "insert", "new")
    assert reader.refresh() == {"new"}
    assert reader.rows == whole(writer)
