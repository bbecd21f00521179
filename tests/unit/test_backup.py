"""`oauthd backup` and `oauthd restore` (storage/backup.py, README "Operations"): online copies
through SQLite's backup API with a verified manifest, incremental by change signature, a damaged
shard reported without stopping, and a restore that verifies first and never overwrites."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from oauthd.cli import main
from oauthd.settings import Settings
from oauthd.storage import client_shard_path, shard_key_for, tenant_dir
from oauthd.storage.backup import (
    MANIFEST,
    BackupError,
    backup_data_dir,
    file_digest,
    load_manifest,
    restore_data_dir,
)
from oauthd.storage.check import check_data_dir
from oauthd.storage.clients import CLIENT
from tests.conftest import running_server
from tests.flow import RESOURCE, Authorization, redeem
from tests.interop.test_cli import write_config
from tests.spec.test_rfc7009_revocation import introspect, refresh, secret_tokens
from tests.spec.test_tenants import code_at, register, two_tenants

KEK = "a" * 43  # base64url of 32 bytes: a key-encryption key for the keys shard


def shard_of(settings: Settings, client_id: str) -> Path:
    return client_shard_path(tenant_dir(settings.data_dir, "default"), shard_key_for(client_id))


def manifest(backup: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((backup / MANIFEST).read_text())
    return {entry["path"]: entry for entry in document["shards"]}


def scratch_dirs(parent: Path) -> list[str]:
    """Restores under way or left behind."""
    return [p.name for p in parent.iterdir() if ".restoring-" in p.name]


def cli(config: Path, *args: str) -> int:
    return main([*args, "--config", str(config)])


async def test_backup_copies_every_shard_with_its_manifest(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Every shard is copied while the server runs; the manifest names its tenant, kind, key,
    schema version and row counts, and the SHA-256 of a copy that is a sound database."""
    settings = make_settings()
    async with running_server(settings) as server:
        caller, _tokens = await secret_tokens(server)
        report = backup_data_dir(settings.data_dir, tmp_path / "backup")
    assert report.failed == {}
    entries = manifest(tmp_path / "backup")
    key = shard_key_for(caller.client_id)
    client = entries[f"default/clients/{key[:2]}/{key}.sqlite"]
    assert (client["tenant"], client["kind"], client["key"], client["schema"]) == (
        "default",
        "client",
        key,
        CLIENT.version,
    )
    assert client["rows"]["client"] == 1
    assert client["rows"]["refresh_tokens"] == 1
    assert {"default/keys.sqlite", "default/directory.sqlite"} <= entries.keys()
    assert report.copied == report.shards == len(entries)
    for name, entry in entries.items():
        copy = tmp_path / "backup" / "objects" / entry["sha256"][:2] / f"{entry['sha256']}.sqlite"
        assert file_digest(copy) == (entry["sha256"], entry["bytes"])
        journal = "delete" if name.endswith("/keys.sqlite") else "wal"  # the shard's own mode
        with closing(sqlite3.connect(copy)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("PRAGMA journal_mode").fetchall() == [(journal,)]


async def test_an_incremental_backup_copies_only_the_shards_that_changed(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A second backup into the same DIR copies nothing when nothing changed, then only the
    shard of the client that refreshed; --full copies everything again."""
    settings = make_settings()
    backup = tmp_path / "backup"
    async with running_server(settings) as server:
        caller, tokens = await secret_tokens(server)
        await secret_tokens(server)  # another client, left alone
        first = backup_data_dir(settings.data_dir, backup)
        assert backup_data_dir(settings.data_dir, backup).copied == 0
        assert (await refresh(server.http, caller, tokens["refresh_token"])).status_code == 200
        after_refresh = backup_data_dir(settings.data_dir, backup)
        full = backup_data_dir(settings.data_dir, backup, full=True)
    key = shard_key_for(caller.client_id)
    assert after_refresh.copied == 1
    assert (
        manifest(backup)[f"default/clients/{key[:2]}/{key}.sqlite"]["rows"]["refresh_tokens"] == 2
    )
    assert full.copied == first.copied == full.shards
    named = {e["sha256"] for e in manifest(backup).values()}
    assert {p.stem for p in (backup / "objects").glob("*/*.sqlite")} == named  # no stale copies


async def test_a_stopped_data_dir_backed_up_twice_copies_nothing_the_second_time(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The empty -wal a read-only copy leaves beside a closed shard is not a change."""
    settings = make_settings()
    async with running_server(settings) as server:
        await secret_tokens(server)
    first = backup_data_dir(settings.data_dir, tmp_path / "backup")
    second = backup_data_dir(settings.data_dir, tmp_path / "backup")
    assert (first.copied, second.copied, second.unchanged) == (first.shards, 0, first.shards)


async def test_signing_keys_stay_sealed_in_the_copy(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a key-encryption key, the copied keys shard holds JWEs, never a private JWK."""
    monkeypatch.setenv("TEST_KEK", KEK)
    settings = make_settings()
    settings = replace(settings, keys=replace(settings.keys, encryption_key_env="TEST_KEK"))
    async with running_server(settings) as server:
        await secret_tokens(server)
        backup_data_dir(settings.data_dir, tmp_path / "backup")
    entry = manifest(tmp_path / "backup")["default/keys.sqlite"]
    copy = tmp_path / "backup" / "objects" / entry["sha256"][:2] / f"{entry['sha256']}.sqlite"
    with closing(sqlite3.connect(copy)) as conn:
        private = [row[0] for row in conn.execute("SELECT private_jwk FROM keys")]
    assert private
    for sealed in private:
        assert sealed.count(".") == 4  # a compact JWE
        assert '"d"' not in sealed


async def test_a_damaged_shard_is_reported_and_the_backup_goes_on(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A client shard with garbage in its pages fails alone: every other shard is copied,
    the summary names it, the command exits 1."""
    settings = make_settings()
    async with running_server(settings) as server:
        broken, _ = await secret_tokens(server)
        sound, _ = await secret_tokens(server)
    path = shard_of(settings, broken.client_id)
    data = bytearray(path.read_bytes())
    data[1024:] = b"\xa5" * (len(data) - 1024)  # every page after the first
    path.write_bytes(bytes(data))
    report = backup_data_dir(settings.data_dir, tmp_path / "backup")
    relative = str(path.relative_to(settings.data_dir))
    assert list(report.failed) == [relative]
    assert report.copied == report.shards - 1
    entries = manifest(tmp_path / "backup")
    assert relative not in entries
    assert str(shard_of(settings, sound.client_id).relative_to(settings.data_dir)) in entries
    assert "1 failed" in report.summary()
    config = write_config(tmp_path, "")  # the same data dir, through the command
    assert cli(config.path, "backup", "--to", str(tmp_path / "again"), "--nice", "0") == 1
    out = capsys.readouterr().out
    assert f"failed {relative}: " in out
    assert "1 failed" in out


async def test_a_restored_server_refreshes_what_the_backup_holds(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Restored into an empty data dir, the server knows the same keys, clients and grants:
    the access token introspects active and the refresh token rotates."""
    settings = make_settings()
    async with running_server(settings) as server:
        caller, tokens = await secret_tokens(server)
        backup_data_dir(settings.data_dir, tmp_path / "backup")
    settings.data_dir.rename(tmp_path / "old-data")
    restore_data_dir(tmp_path / "backup", settings.data_dir)
    async with running_server(settings) as server:
        assert (await introspect(server.http, caller, tokens["access_token"]))["active"] is True
        assert (await refresh(server.http, caller, tokens["refresh_token"])).status_code == 200


async def test_tenants_are_backed_up_and_restored_with_the_registry(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The registry and a path tenant's shards are in the backup, named by tenant; restored,
    the tenant's client still gets tokens from the tenant's own keys."""
    async with two_tenants(make_settings) as (server, _ask):
        client = await register(server.http, "a")
        auth = Authorization(client["client_id"], redirect_uri="http://127.0.0.1:5555/cb")
        code = (await code_at(server.http, "a", auth))["code"]
        tokens = (await redeem(server.http, auth, code, "/t/a/token", resource=RESOURCE)).json()
        settings = server.settings
        backup_data_dir(settings.data_dir, tmp_path / "backup")
    tenants = {(e["tenant"], e["kind"]) for e in manifest(tmp_path / "backup").values()}
    assert {("", "registry"), ("a", "keys"), ("a", "directory"), ("a", "client")} <= tenants
    settings.data_dir.rename(tmp_path / "old-data")
    restore_data_dir(tmp_path / "backup", settings.data_dir)
    assert check_data_dir(settings.data_dir).findings == []  # the tenant's shards and its row
    async with running_server(settings) as server:
        form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        response = await server.http.post(
            "/t/a/token", data={**form, "client_id": client["client_id"]}
        )
        assert response.status_code == 200, response.text


async def test_restore_verifies_every_copy_before_writing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A copy whose bytes differ from the manifest's SHA-256 stops the restore before the
    data dir is made."""
    settings = make_settings()
    async with running_server(settings) as server:
        await secret_tokens(server)
    backup_data_dir(settings.data_dir, tmp_path / "backup")
    entries, _failed = load_manifest(tmp_path / "backup")
    victim = tmp_path / "backup" / entries[0].object
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(BackupError, match="SHA-256 does not match"):
        restore_data_dir(tmp_path / "backup", tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    assert scratch_dirs(tmp_path) == []


async def test_restore_refuses_a_data_dir_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`oauthd restore` into the data dir of a config whose data dir holds anything: exit 2,
    a clear message, nothing touched."""
    config = write_config(tmp_path, "")
    data = tmp_path / "data"
    (data / "default").mkdir(parents=True)
    (data / "default" / "keys.sqlite").write_bytes(b"in use")
    (tmp_path / "empty").mkdir()
    backup_data_dir(tmp_path / "empty", tmp_path / "backup")
    assert cli(config.path, "restore", "--from", str(tmp_path / "backup")) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (data / "default" / "keys.sqlite").read_bytes() == b"in use"


def test_restore_refuses_a_directory_without_a_manifest(tmp_path: Path) -> None:
    """A directory that is not a backup is refused by name."""
    with pytest.raises(BackupError, match="not a readable oauthd backup manifest"):
        restore_data_dir(tmp_path, tmp_path / "data")


def test_backup_refuses_a_target_inside_the_data_dir(tmp_path: Path) -> None:
    """A backup inside the data dir would be backed up into itself: refused."""
    (tmp_path / "data").mkdir()
    with pytest.raises(BackupError, match="inside the data dir"):
        backup_data_dir(tmp_path / "data", tmp_path / "data" / "backup")


def test_backup_lowers_its_own_cpu_priority(tmp_path: Path) -> None:
    """The command runs at nice 10 unless told otherwise: requests keep their share of a core."""
    config = write_config(tmp_path, "")
    (tmp_path / "data").mkdir()
    program = (
        "import os, sys\n"
        "from oauthd.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(os.nice(0), code)\n"
    )
    for given, expected in (((), 10), (("--nice", "3"), 3), (("--nice", "0"), 0)):
        argv = ["backup", "--config", str(config.path), "--to", str(tmp_path / "b"), *given]
        done = subprocess.run(
            [sys.executable, "-c", program, *argv], capture_output=True, text=True, check=True
        )
        started = os.nice(0)
        assert done.stdout.split()[-2:] == [str(started + expected), "0"], done.stderr
