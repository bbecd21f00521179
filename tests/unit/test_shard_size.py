"""Small client shards (docs/architecture.md "Storage"; bench/README.md "Shard size"): 1 KB
pages, grant tables created on first use, and the v7/v8 migration that brings a v6 shard there
keeping every row, safe against a kill -9 and against another connection holding the file."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from oauthd.settings import Settings
from oauthd.storage import (
    ClientRecord,
    LockBusy,
    Schema,
    Store,
    client_shard_path,
    create_client_shard,
    delete_client,
    load_client,
    remove_client_shard,
    save_client,
    shard_key_for,
    tenant_dir,
)
from oauthd.storage.admin import list_grants, revoke_grants
from oauthd.storage.clients import CLIENT, PAGE_SIZE, spend_assertion_jti
from oauthd.storage.expiry import collect_client_shard
from oauthd.storage.grant_tables import TABLES
from oauthd.storage.grants import (
    REVOKE_FAMILY_TOKENS,
    FamilyRow,
    insert_access_token,
    insert_code,
    insert_device_code,
    insert_family,
    insert_pending,
    insert_refresh,
    load_access_token,
    load_code,
    load_device_code,
    load_family,
    load_pending,
    load_refresh,
    mark_refresh_rotated,
    revoke_access_token,
    revoke_family,
)
from oauthd.storage.sqlite import Rewrite
from tests.conftest import running_server
from tests.fixtures.upgrades import materialize
from tests.flow import Authorization, register, tokens_for
from tests.spec.test_rfc7009_revocation import introspect, refresh, revoke, secret_tokens

NOW = 1_800_000_000
TARGET_BYTES = 24 * 1024  # issue 16: a registered client's shard, after a code flow and a refresh

# The client shard as oauthd wrote it before v7 (schema v6, 4 KB pages, every table made at
# once): the shipped migrations are never edited, so running the first six is the old code.
V6 = Schema("client", CLIENT.migrations[:6])


def record(client_id: str = "c1") -> ClientRecord:
    return ClientRecord(client_id, "", (), (), (), "none", "", False, "", "dynamic", NOW)


def on_disk(path: Path) -> int:
    """The shard's bytes with its -wal and -shm, as `du` would count them."""
    files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    return sum(f.stat().st_size for f in files if f.exists())


FAMILY = "idx_access_tokens_family_id"


def raw(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def tables(path: Path) -> set[str]:
    return {name for (name,) in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def contents(path: Path) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table, by table."""
    with closing(sqlite3.connect(path)) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: set(conn.execute(f'SELECT * FROM "{n}"').fetchall()) for n in names}  # noqa: S608 (names from sqlite_master)


def make_v6_shard(path: Path, rows: dict[str, set[tuple[Any, ...]]]) -> None:
    """Fixture builder: a v6 shard as the previous oauthd made it, holding `rows` (table ->
    rows, columns in table order; tables v6 lacks are an error)."""
    Store(path, V6, create=True).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        for table, values in rows.items():
            for row in values:
                marks = ",".join("?" * len(row))
                conn.execute(f"INSERT INTO {table} VALUES ({marks})", row)  # noqa: S608 (test tables)
        conn.execute("COMMIT")
    assert raw(path, "PRAGMA user_version") == [(6,)]
    assert raw(path, "PRAGMA page_size") == [(4096,)]


def fill_every_table(store: Store) -> None:
    """One row or more in each grant table, through the storage functions."""
    with store.transaction():
        insert_pending(store, "request", "browser", {"scope": "openid"}, NOW, 600)
        insert_code(store, "code", {"user_id": "u1"}, NOW + 60)
        insert_family(
            store, FamilyRow("f1", "u1", "openid", ("https://r",), NOW, NOW + 99, None), NOW
        )
        insert_refresh(store, "rt-old", "f1", NOW - 10)
        mark_refresh_rotated(store, "rt-old", NOW, "sealed-pair")
        insert_refresh(store, "rt-new", "f1", NOW)
        insert_access_token(store, "jti-1", "f1", NOW + 60)
        insert_access_token(store, "jti-2", None, NOW + 60)
        insert_device_code(store, "device", {"scope": "openid"}, NOW, NOW + 600, 5)
        spend_assertion_jti(store, "assertion", NOW + 60, NOW)


def a_full_v6_shard(tmp_path: Path) -> tuple[Path, dict[str, set[tuple[Any, ...]]]]:
    """A v6 shard with rows in every table: made by today's code, then written out by the v6
    builder (the rows are the same: v7 and v8 change no column)."""
    new = client_shard_path(tmp_path / "new", create_client_shard(tmp_path / "new", record()))
    with closing(Store(new, CLIENT, create=False)) as store:
        fill_every_table(store)
    rows = contents(new)
    path = tmp_path / "old" / "shard.sqlite"
    path.parent.mkdir()
    make_v6_shard(path, rows)
    return path, rows


# --- size -------------------------------------------------------------------------------------


async def test_new_shard_after_a_code_flow_and_a_refresh_is_at_most_24_kb(
    make_settings: Callable[..., Settings],
) -> None:
    """Issue 16: a registered client's shard, after a full code flow and a refresh, takes
    <= 24 KB on disk (file, -wal and -shm, once its actor has closed)."""
    settings = make_settings()
    async with running_server(settings) as server:
        client = await register(server.http)
        tokens = await tokens_for(server.http, Authorization(client["client_id"]))
        form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        refreshed = await server.http.post(
            "/token", data={**form, "client_id": client["client_id"]}
        )
        assert refreshed.status_code == 200, refreshed.text
    path = client_shard_path(
        tenant_dir(settings.data_dir, "default"), shard_key_for(client["client_id"])
    )
    assert raw(path, "PRAGMA page_size") == [(PAGE_SIZE,)]
    assert on_disk(path) <= TARGET_BYTES
    assert {"codes", "families", "refresh_tokens", "access_tokens"} <= tables(path)


def test_a_registration_alone_is_the_client_table(tmp_path: Path) -> None:
    """A new shard holds the client table alone, in 1 KB pages, in WAL mode, at version 8."""
    path = client_shard_path(tmp_path, create_client_shard(tmp_path, record()))
    assert tables(path) == {"client"}
    assert raw(path, "PRAGMA page_size") == [(PAGE_SIZE,)]
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]
    assert raw(path, "PRAGMA user_version") == [(CLIENT.version,)]
    assert raw(path, "PRAGMA freelist_count") == [(0,)]
    assert on_disk(path) <= 4 * PAGE_SIZE


# --- grant tables created on first use --------------------------------------------------------


def test_grant_tables_read_as_empty_before_their_first_row(tmp_path: Path) -> None:
    """Before any grant, every load finds nothing and every update, revocation, deletion and
    collection changes nothing, without creating a table."""
    path = client_shard_path(tmp_path, create_client_shard(tmp_path, record()))
    with closing(Store(path, CLIENT, create=False)) as store:
        assert load_pending(store, "r") is None
        assert load_code(store, "c") is None
        assert load_family(store, "f") is None
        assert load_refresh(store, "t") is None
        assert load_access_token(store, "j") is None
        assert load_device_code(store, "d") is None
        assert list_grants(store, None, NOW) == []
        with store.transaction():
            revoke_family(store, "f", NOW)
            revoke_access_token(store, "j", NOW)
            assert revoke_grants(store, None, NOW) == []
            assert revoke_grants(store, "u1", NOW) == []
            assert set(collect_client_shard(store, NOW).values()) == {0}
            delete_client(store, NOW)
    assert tables(path) == {"client"}


def code_then_failure(store: Store) -> None:
    with store.transaction():
        insert_code(store, "code", {"user_id": "u1"}, NOW + 60)
        raise RuntimeError("handler failed")


def test_first_row_creates_its_table_inside_the_write_transaction(tmp_path: Path) -> None:
    """The first insert creates its table; a transaction that fails takes the new table with
    it; outside a write transaction nothing is created."""
    path = client_shard_path(tmp_path, create_client_shard(tmp_path, record()))
    with closing(Store(path, CLIENT, create=False)) as store:
        with pytest.raises(RuntimeError, match="handler failed"):
            code_then_failure(store)
        assert "codes" not in tables(path)
        with pytest.raises(RuntimeError, match="outside a write transaction"):
            insert_code(store, "code", {}, NOW + 60)
        fill_every_table(store)
        assert tables(path) == {"client", *TABLES}
        assert load_code(store, "code") is not None
        assert load_access_token(store, "jti-1") is not None
        with store.transaction():
            assert spend_assertion_jti(store, "assertion", NOW + 60, NOW) is False  # a replay


def test_a_table_another_connection_created_is_seen_at_once(tmp_path: Path) -> None:
    """Two processes: a table created by one after the other opened the shard is read by the
    other on its next query (SQLite re-reads a changed schema), never taken as empty."""
    path = client_shard_path(tmp_path, create_client_shard(tmp_path, record()))
    with (
        closing(Store(path, CLIENT, create=False)) as mine,
        closing(Store(path, CLIENT, create=False)) as theirs,
    ):
        assert load_code(mine, "code") is None
        with theirs.transaction():
            insert_code(theirs, "code", {"user_id": "u1"}, NOW + 60)
        row = load_code(mine, "code")
        assert row is not None
        assert row.grant == {"user_id": "u1"}
        with mine.transaction():  # and a second creation attempt is only an insert
            insert_code(mine, "code-2", {}, NOW + 60)
        assert load_code(theirs, "code-2") is not None


# --- the migration from v6 --------------------------------------------------------------------


def test_v6_shard_migrates_keeping_every_row(tmp_path: Path) -> None:
    """A v6 shard with rows in every table opens as v8 in 1 KB pages, WAL, intact, with every
    row of every table, access tokens and assertion jtis now WITHOUT ROWID."""
    path, before = a_full_v6_shard(tmp_path)
    with closing(Store(path, CLIENT, create=False)) as store:
        assert load_client(store) == record()
        assert load_access_token(store, "jti-1") is not None
    assert raw(path, "PRAGMA user_version") == [(CLIENT.version,)]
    assert raw(path, "PRAGMA page_size") == [(PAGE_SIZE,)]
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]
    assert raw(path, "PRAGMA integrity_check") == [("ok",)]
    assert contents(path) == before
    schema = dict(raw(path, "SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    assert schema["access_tokens"].endswith("WITHOUT ROWID")
    assert schema["assertion_jtis"].endswith("WITHOUT ROWID")
    indexes = {n for (n,) in raw(path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "idx_refresh_tokens_family_id" not in indexes
    assert "idx_access_tokens_family_id" in indexes


async def test_tokens_issued_before_the_migration_still_work_over_http(
    make_settings: Callable[..., Settings],
) -> None:
    """Tokens issued into a v6 shard work after the server migrates it: the access token
    introspects active, the refresh token rotates, revoking the new one ends its grant."""
    settings = make_settings()
    async with running_server(settings) as server:
        caller, tokens = await secret_tokens(server)
    path = client_shard_path(
        tenant_dir(settings.data_dir, "default"), shard_key_for(caller.client_id)
    )
    rows = contents(path)
    old = path.with_name("old.sqlite")
    make_v6_shard(old, rows)  # the same rows, as the previous oauthd would have stored them
    os.replace(old, path)
    async with running_server(settings) as server:
        assert (await introspect(server.http, caller, tokens["access_token"]))["active"] is True
        rotated = await refresh(server.http, caller, tokens["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        pair = rotated.json()
        assert (await introspect(server.http, caller, pair["access_token"]))["active"] is True
        assert (await revoke(server.http, caller, pair["refresh_token"])).status_code == 200
        for token in (tokens["access_token"], pair["access_token"], pair["refresh_token"]):
            assert await introspect(server.http, caller, token) == {"active": False}
    assert raw(path, "PRAGMA user_version") == [(CLIENT.version,)]
    assert raw(path, "PRAGMA page_size") == [(PAGE_SIZE,)]
    assert on_disk(path) <= TARGET_BYTES
    assert contents(path)["client"] == rows["client"]


def test_v6_shard_without_grants_shrinks_to_its_registration(tmp_path: Path) -> None:
    """A v6 shard of a client that never got a token (84 KB) keeps only its client table."""
    path = tmp_path / "shard.sqlite"
    make_v6_shard(path, {})
    with closing(Store(path, CLIENT, create=False)) as store, store.transaction():
        save_client(store, record())
    assert on_disk(path) <= 4 * PAGE_SIZE
    assert tables(path) == {"client"}


def test_rewrite_waits_for_a_shard_no_other_connection_holds(tmp_path: Path) -> None:
    """While another connection (another worker) has the shard open, leaving WAL mode is
    refused: the shard opens at v7 (lean, still 4 KB pages, fully usable) and the next open
    that finds it alone finishes the rewrite."""
    path, before = a_full_v6_shard(tmp_path)
    with closing(sqlite3.connect(path)) as other:
        other.execute("SELECT count(*) FROM client").fetchall()
        with closing(Store(path, CLIENT, create=False)) as store:
            assert raw(path, "PRAGMA user_version") == [(7,)]
            assert raw(path, "PRAGMA journal_mode") == [("wal",)]
            assert load_refresh(store, "rt-new") is not None
            with store.transaction():
                insert_access_token(store, "jti-3", None, NOW + 60)
    with closing(Store(path, CLIENT, create=False)) as store:
        assert load_access_token(store, "jti-3") is not None
    assert raw(path, "PRAGMA user_version") == [(CLIENT.version,)]
    assert raw(path, "PRAGMA page_size") == [(PAGE_SIZE,)]
    after = contents(path)
    assert after.pop("access_tokens") - before.pop("access_tokens") == {
        ("jti-3", None, NOW + 60, None)
    }
    assert after == before


# A kill -9 at a chosen moment: a progress handler on every connection the child opens counts
# SQLite's work and SIGKILLs the process at tick KILL_AT (0: never, print the ticks).
KILLER = textwrap.dedent(
    """
    import os, signal, sqlite3, sys
    from pathlib import Path
    kill_at, ticks = int(sys.argv[2]), [0]
    connect = sqlite3.connect
    def counting_connect(*args, **kwargs):
        conn = connect(*args, **kwargs)
        def tick():
            ticks[0] += 1
            if ticks[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return 0
        conn.set_progress_handler(tick, 50)
        return conn
    sqlite3.connect = counting_connect
    from oauthd.storage import Store
    from oauthd.storage.clients import CLIENT
    Store(Path(sys.argv[1]), CLIENT, create=False).close()
    print(ticks[0])
    """
)


def run_killer(path: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", KILLER, str(path), str(kill_at)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_kill_9_during_the_migration_leaves_a_good_shard(tmp_path: Path) -> None:
    """Killed at any point of the v7 and v8 migrations, the shard left behind is intact and
    holds every row (the old shard or the new one); opening it again finishes the job."""
    path, before = a_full_v6_shard(tmp_path)
    pristine = path.read_bytes()
    dry_run = run_killer(path, 0)
    assert dry_run.returncode == 0, dry_run.stderr
    total = int(dry_run.stdout)

    def killed_at(kill_at: int) -> tuple[int, int]:
        """The (version, page size) a kill at `kill_at` leaves, after checking the shard."""
        for leftover in path.parent.iterdir():
            leftover.unlink()
        path.write_bytes(pristine)
        killed = run_killer(path, kill_at)
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr)
        assert raw(path, "PRAGMA integrity_check") == [("ok",)], kill_at
        left = raw(path, "SELECT * FROM pragma_user_version, pragma_page_size")[0]
        assert {t: r for t, r in contents(path).items() if r} == before, kill_at
        Store(path, CLIENT, create=False).close()
        assert raw(path, "PRAGMA user_version") == [(CLIENT.version,)], kill_at
        assert raw(path, "PRAGMA page_size") == [(PAGE_SIZE,)], kill_at
        assert raw(path, "PRAGMA journal_mode") == [("wal",)], kill_at
        assert contents(path) == before, kill_at
        return left

    # Every 4th moment, then every moment between two that left different states: each step
    # of the migration (a version recorded, the file rewritten) is killed on both sides.
    sampled = sorted({*range(1, total, 4), total})
    seen = {at: killed_at(at) for at in sampled}
    for before_at, after_at in itertools.pairwise(sampled):
        if seen[before_at] != seen[after_at]:
            seen.update({at: killed_at(at) for at in range(before_at + 1, after_at)})
    # killed in v7's transaction, before VACUUM and after it
    assert {(6, 4096), (7, 4096), (7, PAGE_SIZE)} <= set(seen.values())


def test_a_rewrite_step_gives_a_new_file_its_page_size(tmp_path: Path) -> None:
    """Schema.page_size is set on a new file before its first table; a Rewrite step leaves
    no free page behind and counts as a version."""

    def items(db: Any) -> None:
        db.execute("CREATE TABLE item (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY)")
        db.execute("DROP TABLE scratch")

    schema = Schema("items", (items, Rewrite()), page_size=512)
    path = tmp_path / "items.sqlite"
    Store(path, schema, create=True).close()
    assert raw(path, "PRAGMA page_size") == [(512,)]
    assert raw(path, "PRAGMA user_version") == [(2,)]
    assert raw(path, "PRAGMA freelist_count") == [(0,)]
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]


def test_lock_busy_is_still_what_a_taken_write_lock_raises(tmp_path: Path) -> None:
    """transaction(wait=False) against another connection's write lock raises LockBusy."""
    path = client_shard_path(tmp_path, create_client_shard(tmp_path, record()))
    with (
        closing(Store(path, CLIENT, create=False)) as mine,
        closing(sqlite3.connect(path)) as other,
    ):
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LockBusy), mine.transaction(wait=False):
            pass
        other.execute("ROLLBACK")


def test_removing_a_shard_removes_a_rollback_journal_too(tmp_path: Path) -> None:
    """A -journal left by a killed rewrite goes with its shard, so a later shard at the same
    path is never 'rolled back' with it."""
    key = create_client_shard(tmp_path, record())
    path = client_shard_path(tmp_path, key)
    journal = path.with_name(path.name + "-journal")
    journal.write_bytes(b"left by a killed rewrite")
    remove_client_shard(tmp_path, key)
    assert not path.exists()
    assert not journal.exists()


def test_v8_shard_keeps_client_credentials_tokens_out_of_the_family_index(
    tmp_path: Path,
) -> None:
    """From v9 the access tokens' family index is partial: a token without a family (a
    client_credentials token) writes no entry in it, and revoking a grant's family still
    finds its tokens through it. A v8 shard gets it on open, its rows kept."""
    materialize("client-v8-directory-v5", tmp_path)
    shards = [p for p in tmp_path.rglob("clients/*/*.sqlite") if "access_tokens" in tables(p)]
    assert shards
    for path in shards:
        rows = raw(path, "SELECT * FROM access_tokens ORDER BY jti")
        Store(path, CLIENT, create=False).close()
        assert raw(path, "PRAGMA user_version") == [(CLIENT.version,)]
        (index,) = raw(path, "SELECT sql FROM sqlite_master WHERE name = ?", (FAMILY,))
        assert index[0].endswith("WHERE family_id IS NOT NULL")
        assert raw(path, "SELECT * FROM access_tokens ORDER BY jti") == rows
        plan = raw(path, f"EXPLAIN QUERY PLAN {REVOKE_FAMILY_TOKENS}", (0, "f"))
        assert FAMILY in str(plan)
