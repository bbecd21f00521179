"""Shard storage (docs/architecture.md "Storage"): WAL (a rollback journal for the keys shard),
versioned schemas with ordered migrations, transactions that roll back, no file for a shard
that does not exist, hashed secrets."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlite_utils

from oauthd.storage import (
    DIRECTORY,
    KEYS,
    ClientRecord,
    Schema,
    SchemaError,
    Store,
    check_password,
    check_secret,
    client_shard_path,
    create_client_shard,
    hash_password,
    hash_secret,
    load_client,
    shard_key_for,
)
from oauthd.storage.clients import CLIENT
from oauthd.storage.sqlite import WAL_AUTOCHECKPOINT_PAGES

ran: list[str] = []


def _v1(db: sqlite_utils.Database) -> None:
    ran.append("v1")
    db.table("item").create({"id": int, "name": str}, pk="id")


def _v2(db: sqlite_utils.Database) -> None:
    ran.append("v2")
    db.table("item").add_column("colour", str)
    db.table("item").create_index(["name"])


def _v3_fails_half_way(db: sqlite_utils.Database) -> None:
    db.table("half").create({"id": int}, pk="id")
    raise RuntimeError("migration bug")


V1 = Schema("items", (_v1,))
V2 = Schema("items", (_v1, _v2))
V3_BROKEN = Schema("items", (_v1, _v2, _v3_fails_half_way))


@pytest.fixture(autouse=True)
def _clear_ran() -> None:
    ran.clear()


@contextmanager
def opened(path: Path, schema: Schema, *, create: bool = True) -> Iterator[Store]:
    store = Store(path, schema, create=create)
    try:
        yield store
    finally:
        store.close()


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read a shard through a plain sqlite3 connection, as an operator would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("schema", "journal"), [(CLIENT, "wal"), (DIRECTORY, "wal"), (KEYS, "delete")]
)
def test_shards_are_in_their_journal_mode_and_record_their_schema_version(
    tmp_path: Path, schema: Schema, journal: str
) -> None:
    """Shards written on the request path are in WAL mode, the keys shard (read when its actor
    opens, written at a rotation) in a rollback journal; PRAGMA user_version records the
    schema version."""
    assert schema.journal == journal
    path = tmp_path / "nested" / "dir" / "shard.sqlite"
    with opened(path, schema) as store:
        assert store.query("PRAGMA journal_mode") == [(journal,)]
        assert store.closes_slowly is (journal == "wal")  # a WAL file's close checkpoints
    assert raw(path, "PRAGMA journal_mode") == [(journal,)]  # persistent in the file
    assert raw(path, "PRAGMA user_version") == [(schema.version,)]
    assert schema.version >= 1


def test_a_writer_checkpoints_its_wal_past_wal_autocheckpoint_pages(tmp_path: Path) -> None:
    """A shard's -wal is checkpointed by the commit that takes it past WAL_AUTOCHECKPOINT_PAGES
    pages, not at SQLite's default of 1,000 (so a hot shard copies and syncs a page written
    again and again a quarter as often), and not later."""
    path = tmp_path / "s.sqlite"
    wal = path.with_name("s.sqlite-wal")
    frame = 4096 + 24  # a frame: the page and its header (the test schema's default pages)
    largest = 0
    with opened(path, V1) as store:
        for i in range(WAL_AUTOCHECKPOINT_PAGES + 500):
            with store.transaction():
                store.conn.execute("INSERT INTO item (id, name) VALUES (?, ?)", (i, "x" * 3000))
            largest = max(largest, wal.stat().st_size)
        assert store.query("PRAGMA wal_autocheckpoint") == [(WAL_AUTOCHECKPOINT_PAGES,)]
    frames = largest // frame
    assert WAL_AUTOCHECKPOINT_PAGES <= frames < WAL_AUTOCHECKPOINT_PAGES + 10


def test_a_wal_keys_shard_moves_to_a_rollback_journal_when_opened_alone(tmp_path: Path) -> None:
    """A keys shard written by an older oauthd (WAL) keeps its keys and moves to a rollback
    journal on open; while another connection has it open it stays in WAL, works, and moves
    at a later open."""
    path = tmp_path / "keys.sqlite"
    with opened(path, Schema("keys", KEYS.migrations)) as store:  # as an older oauthd made it
        store.conn.execute("INSERT INTO keys (kid, alg) VALUES ('k1', 'ES256')")
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]
    other = sqlite3.connect(path)
    other.execute("SELECT count(*) FROM keys").fetchall()  # holds the file open
    try:
        with opened(path, KEYS) as store:
            assert store.query("PRAGMA journal_mode") == [("wal",)]
            assert store.closes_slowly  # still WAL: its actor closes it in a thread
            with store.transaction():
                store.conn.execute("INSERT INTO keys (kid, alg) VALUES ('k2', 'ES256')")
    finally:
        other.close()
    with opened(path, KEYS) as store:
        assert store.query("PRAGMA journal_mode") == [("delete",)]
        assert not store.closes_slowly
        assert store.query("SELECT kid FROM keys ORDER BY kid") == [("k1",), ("k2",)]
    assert not path.with_name("keys.sqlite-wal").exists()


def test_migrations_run_in_order_on_a_new_shard(tmp_path: Path) -> None:
    """A new shard runs every migration, in order, once."""
    path = tmp_path / "s.sqlite"
    with opened(path, V2):
        pass
    assert ran == ["v1", "v2"]
    assert raw(path, "PRAGMA user_version") == [(2,)]
    with opened(path, V2):
        pass
    assert ran == ["v1", "v2"]  # nothing to do the second time


def test_opening_an_old_shard_applies_only_the_missing_migrations(tmp_path: Path) -> None:
    """A shard at v1 opened by a v2 schema is migrated to v2 by the v2 migration alone, keeping
    its rows."""
    path = tmp_path / "s.sqlite"
    with opened(path, V1) as store, store.transaction() as conn:
        conn.execute("INSERT INTO item (id, name) VALUES (1, 'kept')")
    assert raw(path, "PRAGMA user_version") == [(1,)]
    ran.clear()

    with opened(path, V2) as store:
        assert ran == ["v2"]
        assert store.query("SELECT id, name, colour FROM item") == [(1, "kept", None)]
    assert raw(path, "PRAGMA user_version") == [(2,)]


def test_shard_newer_than_the_schema_raises_schema_error(tmp_path: Path) -> None:
    """A shard written by a newer oauthd is refused with SchemaError, not downgraded."""
    path = tmp_path / "s.sqlite"
    with opened(path, V2):
        pass
    with pytest.raises(SchemaError, match="newer"), opened(path, V1):
        pass
    assert raw(path, "PRAGMA user_version") == [(2,)]


def test_shard_migrated_by_a_newer_process_meanwhile_is_not_downgraded(tmp_path: Path) -> None:
    """The version is re-read under the write lock: if another (newer) process migrated the
    shard between our first look and our lock, we refuse it instead of writing our version."""
    path = tmp_path / "s.sqlite"
    with opened(path, V1):
        pass

    class RacingStore(Store):
        @contextmanager
        def transaction(self) -> Iterator[sqlite3.Connection]:
            other = sqlite3.connect(path)  # a newer oauthd wins the race to the write lock
            other.execute("PRAGMA user_version = 9")
            other.close()
            with super().transaction() as conn:
                yield conn

    with pytest.raises(SchemaError, match="newer"):
        RacingStore(path, V2, create=True)
    assert raw(path, "PRAGMA user_version") == [(9,)]


def test_failed_migration_is_rolled_back_whole(tmp_path: Path) -> None:
    """A migration that raises leaves the shard at its previous version with none of its
    changes, and the shard still opens at that version."""
    path = tmp_path / "s.sqlite"
    with opened(path, V1):
        pass
    with pytest.raises(RuntimeError, match="migration bug"), opened(path, V3_BROKEN):
        pass
    assert raw(path, "PRAGMA user_version") == [(1,)]
    assert raw(path, "SELECT name FROM sqlite_master WHERE name IN ('half')") == []
    assert [c[1] for c in raw(path, "PRAGMA table_info(item)")] == ["id", "name"]
    with opened(path, V2):
        pass
    assert raw(path, "PRAGMA user_version") == [(2,)]


def test_opening_a_missing_shard_without_create_makes_no_file(tmp_path: Path) -> None:
    """create=False never creates a file (garbage must not make files), nor its folder."""
    path = tmp_path / "clients" / "ab" / "abcdef.sqlite"
    with pytest.raises(sqlite3.OperationalError):
        Store(path, CLIENT, create=False)
    assert not path.exists()
    assert not (tmp_path / "clients").exists()

    path.parent.mkdir(parents=True)
    with pytest.raises(sqlite3.OperationalError):
        Store(path, CLIENT, create=False)
    assert list(path.parent.iterdir()) == []


def test_transaction_that_raises_is_rolled_back(tmp_path: Path) -> None:
    """Every write of a transaction that raises is undone, and the shard stays usable."""

    def write_two_rows_then_fail(store: Store) -> None:
        with store.transaction() as conn:
            conn.execute("INSERT INTO item (id, name) VALUES (1, 'first')")
            conn.execute("INSERT INTO item (id, name) VALUES (2, 'second')")
            raise ValueError("half way")

    path = tmp_path / "s.sqlite"
    with opened(path, V1) as store:
        with pytest.raises(ValueError, match="half way"):
            write_two_rows_then_fail(store)
        assert not store.conn.in_transaction
        assert store.query("SELECT count(*) FROM item") == [(0,)]
        with store.transaction() as conn:
            conn.execute("INSERT INTO item (id, name) VALUES (3, 'third')")
    assert raw(path, "SELECT id FROM item") == [(3,)]


def test_transaction_holds_the_write_lock_until_commit(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a second writer cannot start while a transaction is open; readers see
    only committed rows."""
    path = tmp_path / "s.sqlite"
    with opened(path, V1) as first, opened(path, V1) as second:
        second.conn.execute("PRAGMA busy_timeout = 0")
        with first.transaction() as conn:
            conn.execute("INSERT INTO item (id, name) VALUES (1, 'x')")
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                second.conn.execute("BEGIN IMMEDIATE")
            assert second.query("SELECT count(*) FROM item") == [(0,)]
        assert second.query("SELECT count(*) FROM item") == [(1,)]


def test_data_version_changes_when_another_connection_commits(tmp_path: Path) -> None:
    """PRAGMA data_version tells an actor that another process changed its shard."""
    path = tmp_path / "s.sqlite"
    with opened(path, V1) as mine, opened(path, V1) as theirs:
        before = mine.data_version()
        with mine.transaction() as conn:
            conn.execute("INSERT INTO item (id, name) VALUES (1, 'mine')")
        assert mine.data_version() == before  # my own commits do not count
        with theirs.transaction() as conn:
            conn.execute("INSERT INTO item (id, name) VALUES (2, 'theirs')")
        assert mine.data_version() != before


def test_client_shard_lives_at_its_shard_key_and_round_trips(tmp_path: Path) -> None:
    """A client's shard is <tenant>/clients/<2 chars>/<shardkey>.sqlite, keyed by 20 hex digits
    derived from its client_id, and stores its registration with the secret's hash only."""
    record = ClientRecord(
        client_id="my app",
        client_name="My App",
        redirect_uris=("https://app.example/cb",),
        grant_types=("authorization_code", "refresh_token"),
        response_types=("code",),
        token_endpoint_auth_method="client_secret_basic",
        scope="openid",
        first_party=True,
        secret_hash=hash_secret("s3cret-value"),
        source="cli",
        created_at=1_700_000_000,
    )
    key = create_client_shard(tmp_path, record)
    assert key == shard_key_for("my app")
    assert len(key) == 20
    assert all(c in "0123456789abcdef" for c in key)
    path = client_shard_path(tmp_path, key)
    assert path == tmp_path / "clients" / key[:2] / f"{key}.sqlite"
    assert b"s3cret-value" not in path.read_bytes()
    with opened(path, CLIENT, create=False) as store:
        assert load_client(store) == record


# --- secrets at rest -----------------------------------------------------------------------------


def test_secrets_are_stored_as_hashes_and_checked_against_them() -> None:
    """High-entropy secrets are stored as SHA-256 hashes; only the right secret matches."""
    stored = hash_secret("correct horse")
    assert stored != "correct horse"
    assert "correct horse" not in stored
    assert stored.startswith("sha256:")
    assert check_secret("correct horse", stored)
    assert not check_secret("correct horsE", stored)
    assert not check_secret("", stored)


@pytest.mark.parametrize("stored", ["correct horse", "", "sha256:", "md5:abc"])
def test_plaintext_or_foreign_stored_secret_never_matches(stored: str) -> None:
    """A stored value that is not one of our hashes never matches, even the same text."""
    assert not check_secret("correct horse", stored)


def test_passwords_are_hashed_with_argon2_and_checked() -> None:
    """Passwords are argon2id hashes; a wrong password or a broken hash never matches."""
    stored = hash_password("password")
    assert stored.startswith("$argon2id$")
    assert "password" not in stored
    assert check_password("password", stored)
    assert not check_password("Password", stored)
    assert not check_password("password", "not a hash")
    assert not check_password("password", hash_secret("password"))


@pytest.mark.parametrize("make", [Path.mkdir, Path.touch])
def test_store_rejects_a_path_that_is_not_a_database(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    """A folder, or a file that is not SQLite, is refused without being overwritten."""
    path = tmp_path / "s.sqlite"
    make(path)
    if path.is_file():
        path.write_bytes(b"not a database at all, just some bytes" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        Store(path, V1, create=True)
    if path.is_file():
        assert path.read_bytes().startswith(b"not a database")
