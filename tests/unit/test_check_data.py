"""`oauthd check-data` (storage/check.py, README "Operations"): integrity of every shard, the
layout against the directory and the registry, and a repair that removes orphan shards and
migrates old schemas, and nothing else."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from oauthd.cli import main
from oauthd.settings import Settings
from oauthd.storage import (
    ClientRecord,
    client_shard_path,
    create_client_shard,
    shard_key_for,
    tenant_dir,
)
from oauthd.storage.check import CheckOptions, Finding, check_data_dir
from oauthd.storage.clients import CLIENT
from oauthd.storage.directory import DIRECTORY
from oauthd.storage.keys import KEYS
from oauthd.storage.sqlite import Schema, Store
from tests.conftest import running_server
from tests.flow import register
from tests.interop.test_cli import write_config

LONG_AGO = time.time() - 3600


def record(client_id: str) -> ClientRecord:
    return ClientRecord(client_id, "", (), (), (), "none", "", False, "", "dynamic", 0)


def problems(findings: list[Finding]) -> set[tuple[str, str, bool]]:
    return {(f.problem, f.path, f.repaired) for f in findings}


async def served_data_dir(settings: Settings, clients: int) -> list[str]:
    """A data dir as a server leaves it: keys, directory, `clients` registered clients."""
    async with running_server(settings) as server:
        return [(await register(server.http))["client_id"] for _ in range(clients)]


def relative(settings: Settings, path: Path) -> str:
    return str(path.relative_to(settings.data_dir))


def inject_damage(settings: Settings, client_ids: list[str]) -> dict[str, str]:
    """An orphan shard (old), a truncated shard, a directory at an old schema, a foreign file."""
    default = tenant_dir(settings.data_dir, "default")
    orphan = client_shard_path(default, create_client_shard(default, record("orphan")))
    os.utime(orphan, (LONG_AGO, LONG_AGO))
    truncated = client_shard_path(default, shard_key_for(client_ids[0]))
    with truncated.open("r+b") as f:
        f.truncate(truncated.stat().st_size // 2)
    directory = default / "directory.sqlite"
    with closing(sqlite3.connect(directory)) as conn:
        conn.execute("PRAGMA user_version = 3")  # as if written before the v4, v5 migrations
        conn.execute("DROP TABLE user_codes")
        conn.execute("DROP TABLE identities")
    (default / "notes.txt").write_text("an operator's file")
    return {
        "orphan": relative(settings, orphan),
        "truncated": relative(settings, truncated),
        "directory": relative(settings, directory),
        "foreign": "default/notes.txt",
    }


async def test_a_sound_data_dir_has_no_findings(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A data dir a server wrote: every shard passes integrity_check; exit 0."""
    config = write_config(tmp_path, "")
    settings = make_settings(data_dir=tmp_path / "data")
    await served_data_dir(settings, 2)
    report = check_data_dir(settings.data_dir)
    assert report.findings == []
    assert report.shards == 4  # keys, directory, two clients
    assert main(["check-data", "--config", str(config.path)]) == 0
    assert "4 shards, 0 findings" in capsys.readouterr().out


async def test_check_data_finds_an_orphan_a_truncated_shard_and_an_old_schema(
    make_settings: Callable[..., Settings],
) -> None:
    """The injected orphan shard, truncated shard, old directory schema and foreign file are
    each reported; nothing is changed without --repair."""
    settings = make_settings()
    client_ids = await served_data_dir(settings, 2)
    paths = inject_damage(settings, client_ids)
    before = {p: (settings.data_dir / p).read_bytes() for p in paths.values()}
    for quick in (False, True):
        report = check_data_dir(settings.data_dir, CheckOptions(quick=quick))
        found = {(f.problem, f.path) for f in report.findings}
        assert ("orphan_shard", paths["orphan"]) in found
        assert ("old_schema", paths["directory"]) in found
        assert ("foreign_file", paths["foreign"]) in found
        assert {p for p, path in found if path == paths["truncated"]} & {"damaged", "unreadable"}
    assert {p: (settings.data_dir / p).read_bytes() for p in paths.values()} == before


async def test_repair_removes_orphans_and_migrates_old_schemas_only(
    make_settings: Callable[..., Settings],
) -> None:
    """--repair removes the old orphan and migrates the directory; the truncated shard, the
    foreign file and a young orphan (a registration perhaps in flight) stay, reported."""
    settings = make_settings()
    client_ids = await served_data_dir(settings, 2)
    paths = inject_damage(settings, client_ids)
    default = tenant_dir(settings.data_dir, "default")
    young = client_shard_path(default, create_client_shard(default, record("young")))
    report = check_data_dir(settings.data_dir, CheckOptions(repair=True, orphan_after_s=600))
    assert ("orphan_shard", paths["orphan"], True) in problems(report.findings)
    assert ("old_schema", paths["directory"], True) in problems(report.findings)
    assert ("orphan_shard", relative(settings, young), False) in problems(report.unresolved)
    assert not (settings.data_dir / paths["orphan"]).exists()
    assert young.exists()
    assert (settings.data_dir / paths["truncated"]).exists()
    assert (settings.data_dir / paths["foreign"]).exists()
    with closing(Store(default / "directory.sqlite", DIRECTORY, create=False)) as store:
        assert store.query("PRAGMA user_version") == [(DIRECTORY.version,)]
    again = {(f.problem, f.path) for f in check_data_dir(settings.data_dir).findings}
    assert ("old_schema", paths["directory"]) not in again
    assert ("orphan_shard", paths["orphan"]) not in again


async def test_a_directory_row_without_its_shard_is_reported(
    make_settings: Callable[..., Settings],
) -> None:
    """A client the directory indexes whose shard file is gone: reported, never invented."""
    settings = make_settings()
    (client_id,) = await served_data_dir(settings, 1)
    path = client_shard_path(tenant_dir(settings.data_dir, "default"), shard_key_for(client_id))
    path.unlink()
    report = check_data_dir(settings.data_dir, CheckOptions(repair=True))
    (missing,) = report.findings
    assert (missing.problem, missing.path, missing.repaired) == (
        "missing_shard",
        "default/directory.sqlite",
        False,
    )
    assert client_id in missing.detail


def test_an_old_client_shard_is_migrated_by_repair(tmp_path: Path) -> None:
    """A client shard of schema v6 is reported as behind and brought to the code's version."""
    default = tenant_dir(tmp_path, "default")
    Store(default / "directory.sqlite", DIRECTORY, create=True).close()
    old = Schema("client", CLIENT.migrations[:6])
    path = client_shard_path(default, "0" * 20)
    Store(path, old, create=True).close()
    os.utime(path, (LONG_AGO, LONG_AGO))
    report = check_data_dir(tmp_path, CheckOptions(repair=True))
    assert ("old_schema", "default/clients/00/" + "0" * 20 + ".sqlite", True) in problems(
        report.findings
    )
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchall() == [(CLIENT.version,)]


def test_a_tenant_directory_the_registry_does_not_name_is_reported(tmp_path: Path) -> None:
    """A tenant directory with no registry row is reported and kept."""
    Store(tmp_path / "ghost" / "keys.sqlite", KEYS, create=True).close()
    report = check_data_dir(tmp_path, CheckOptions(repair=True))
    assert ("unknown_tenant", "ghost", False) in problems(report.findings)
    assert (tmp_path / "ghost" / "keys.sqlite").exists()
