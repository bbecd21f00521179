"""One SQLite shard: connection settings, the write transaction, schema migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

__all__ = [
    "WAL_AUTOCHECKPOINT_PAGES",
    "LockBusy",
    "Migration",
    "Rewrite",
    "Schema",
    "SchemaError",
    "Store",
    "tenant_dir",
]

Migration = Callable[[sqlite_utils.Database], None]

# A WAL file is checkpointed (its pages copied back into the database file, both fsynced: under
# `synchronous = NORMAL` the only fsyncs) by the COMMIT that takes it past this many pages.
# SQLite's default, 1,000, made that work 7-10% of a token's CPU on a hot shard (bench/README.md
# "Part 5b"): at 4,000, a page written by many commits (a table's last leaf, an index's
# inner pages) is copied and synced once where it was four times. A hot shard's -wal file grows
# to ~4 MB (at a client shard's 1 KB pages) while it is open; the last connection's close
# still checkpoints and deletes it. Durability as configured: under FULL every commit is
# synced anyway; under NORMAL a commit survives a killed process either way (it is in the
# -wal), and a power cut may lose the commits since the last sync, as before.
WAL_AUTOCHECKPOINT_PAGES = 4000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A migration step that rewrites the whole file (VACUUM) at the schema's page size, which
    a WAL file cannot change in place. It runs outside any transaction, so it is built to be
    repeated: each statement it runs is atomic on its own, and the version moves past it only
    once the file is rewritten and back in WAL mode (`Store._rewrite`)."""


class SchemaError(Exception):
    """A shard written by a newer oauthd, or one that cannot be migrated."""


class LockBusy(Exception):
    """`transaction(wait=False)` or `reading(wait=False)`: another connection (another
    process) holds a lock this needs; `run_now` (storage/seam.py): the message would wait.
    Nothing was committed (a write transaction is rolled back); the caller may retry where
    waiting is harmless."""


@dataclass(frozen=True, slots=True)
class Schema:
    """A shard type: its name and its ordered migrations; the version is their count.
    `page_size`: the page size of a new file (None: SQLite's default, 4096), and the one a
    `Rewrite` step brings an older file to.

    `journal`: "wal" for a shard written on the request path (a commit appends to the -wal,
    no fsync under `synchronous = NORMAL`, and readers never wait for the writer), or
    "delete" (a rollback journal) for one that is read when its actor opens and written
    rarely, e.g. the keys shard: opening a WAL file makes its -wal and -shm again, and the
    last connection's close checkpoints and deletes them, some 0.2 ms per open on this
    kind of machine; a rollback-journal file is just opened. Its commits fsync (a
    rotation: rare)."""

    name: str
    migrations: tuple[Migration | Rewrite, ...]
    page_size: int | None = None
    journal: str = "wal"

    @property
    def version(self) -> int:
        return len(self.migrations)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


def tenant_dir(data_dir: Path, tenant: str) -> Path:
    return data_dir / tenant


class Store:
    """An open shard. Use `transaction()` for every read that decides a write (BEGIN IMMEDIATE),
    so that two processes sharing the data dir order one shard's changes (docs/architecture.md)."""

    def __init__(
        self,
        path: Path,
        schema: Schema,
        *,
        create: bool,
        fsync: bool = False,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = path
        # Unless known otherwise, the file is in WAL mode, whose last close checkpoints it,
        # fsyncs and deletes its -wal and -shm (`closes_slowly`: its actor closes it in a
        # thread); one in a rollback journal closes in microseconds.
        self.closes_slowly = True
        self._busy_timeout_ms = busy_timeout_ms
        self._waiting = True  # the connection's busy timeout: busy_timeout_ms (True) or 0
        self._wrote = False  # whether a write transaction ran yet (`transaction`)
        self._synchronous = "FULL" if fsync else "NORMAL"
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            uri = f"file:{path}?mode=rwc"
        else:
            uri = f"file:{path}?mode=rw"  # never creates: garbage must not make files
        # The busy timeout is set by connect() itself, without a statement.
        self.conn = sqlite3.connect(
            uri,
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout_ms / 1000,
        )
        try:
            self._configure(create, schema)
            self._migrate(schema)
        except BaseException:
            self.conn.close()
            raise

    def _configure(self, create: bool, schema: Schema) -> None:
        # NORMAL in WAL survives a killed process; FULL also survives power loss (and in a
        # rollback journal, NORMAL syncs each commit as FULL does, less often). Opening a
        # shard is on the request path of every cold actor, so it runs as few statements as
        # it can: SQLite's default page cache already stays small for a small shard.
        self.conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        # The journal mode and the page size are properties of the file: set by whoever may
        # create it. The page size only takes on an empty file, before WAL (SQLite ignores it
        # later).
        if create and schema.page_size is not None:
            self.conn.execute(f"PRAGMA page_size = {int(schema.page_size)}")
        if create:
            mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != schema.journal:
                mode = self._set_journal(schema.journal, mode)
            self.closes_slowly = mode == "wal"

    def _set_journal(self, journal: str, current: str) -> str:
        """Put the file, in `current` mode, in `journal` mode; answers the mode it is in then.
        Leaving WAL needs the file alone: while another connection (another process) has it
        open, SQLite refuses at once, and the file stays in WAL, which is as correct, only
        slower to open; the next open tries again."""
        if journal == "wal":
            return str(self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        with suppress(LockBusy):
            return str(self._without_waiting(f"PRAGMA journal_mode = {journal.upper()}")[0][0])
        return current

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for migrations and tools."""
        return sqlite_utils.Database(self.conn)

    def _migrate(self, schema: Schema) -> None:
        version = self._version(schema)
        while version < schema.version:
            if isinstance(schema.migrations[version], Rewrite):
                if not self._rewrite(schema, version):
                    return  # another connection has the file open: the next open tries again
            else:
                self._run_migrations(schema)
            version = self._version(schema)

    def _run_migrations(self, schema: Schema) -> None:
        """The missing migrations up to the next `Rewrite`, in one write transaction."""
        with self.transaction():
            # Re-read inside the write lock: another process may have migrated meanwhile,
            # perhaps a newer oauthd, whose version we must not overwrite with ours.
            version = self._version(schema)
            while version < schema.version:
                migration = schema.migrations[version]
                if isinstance(migration, Rewrite):
                    break
                migration(self.db)
                version += 1
            self.conn.execute(f"PRAGMA user_version = {version}")

    def _rewrite(self, schema: Schema, version: int) -> bool:
        """Rewrite the file at the schema's page size, then record `version + 1`. False if
        another connection has the file open: leaving WAL mode needs it alone, and SQLite
        refuses at once (busy) rather than let it happen under a reader or a writer.

        Crash-safe by construction: each step is one atomic SQLite operation and the version
        moves last. Killed before VACUUM commits, the file is the old one (its rollback
        journal is undone by the next connection); killed after it, the rewritten one, perhaps
        still in rollback-journal mode. Either way it is a good shard at the old version, and
        the next open runs these steps again: none of them minds running twice."""
        try:
            if self._without_waiting("PRAGMA journal_mode = DELETE") != [("delete",)]:
                return False
        except LockBusy:
            return False
        try:
            if schema.page_size is not None:
                self.conn.execute(f"PRAGMA page_size = {int(schema.page_size)}")
            # Outside WAL, NORMAL could lose the file to a power cut mid-VACUUM: FULL for it.
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("VACUUM")
        finally:
            self.conn.execute(f"PRAGMA journal_mode = {schema.journal.upper()}")
            self.conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        if schema.page_size is not None and page_size != schema.page_size:
            return False  # another process put the file back in WAL before VACUUM ran
        with self.transaction():
            if self._version(schema) == version:  # not moved on by another process meanwhile
                self.conn.execute(f"PRAGMA user_version = {version + 1}")
        return True

    def _version(self, schema: Schema) -> int:
        version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        if version > schema.version:
            raise SchemaError(
                f"{self.path}: {schema.name} schema version {version} is newer than "
                f"this oauthd understands ({schema.version})"
            )
        return version

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any exception. `wait=False`: raise LockBusy
        (rolled back) instead of waiting up to the busy timeout for another process's lock
        (SQLite's busy handler sleeps, which on an event loop stalls every other request)."""
        if not self._wrote:  # only a writer checkpoints: set before its first write, not at open
            if self.closes_slowly:  # in WAL (or not known otherwise): a rollback journal has none
                self.conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            self._wrote = True
        with self._busy_raises(wait):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")  # a busy COMMIT leaves the transaction open
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    @contextmanager
    def reading(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """Reads without the write lock (WAL: they wait for nobody, but for another connection
        recovering or checkpointing the file). `wait=False`: LockBusy instead of waiting."""
        with self._busy_raises(wait):
            yield self.conn

    def read(self, work: Callable[[], T], *, wait: bool) -> T:
        """`work()` under `reading`'s rules, as a plain call: an actor's read (every query
        message) costs two generator context managers less (~2 us of a ~3 us read)."""
        self._wait_for_locks(wait)
        try:
            return work()
        except sqlite3.OperationalError as exc:
            if not wait and _is_busy(exc):
                raise LockBusy(str(self.path)) from None
            raise

    @contextmanager
    def _busy_raises(self, wait: bool) -> Iterator[None]:
        """The connection's busy timeout set for `wait`, and SQLITE_BUSY as LockBusy when not
        waiting."""
        self._wait_for_locks(wait)
        try:
            yield
        except sqlite3.OperationalError as exc:
            if not wait and _is_busy(exc):
                raise LockBusy(str(self.path)) from None
            raise

    def _wait_for_locks(self, wait: bool) -> None:
        """The busy timeout for `wait`. It is a PRAGMA statement (~15 us): it changes only
        when `wait` does, so the loop's transactions, all wait=False, run none."""
        if wait != self._waiting:
            self.conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms if wait else 0}")
            self._waiting = wait

    def _without_waiting(self, sql: str) -> list[tuple[Any, ...]]:
        """Run `sql` without waiting for another connection's lock: LockBusy at once (nothing
        ran) if it is held."""
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            return self.conn.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise LockBusy(str(self.path)) from None
            raise
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")

    def data_version(self) -> int:
        """Changes when another connection commits to this file (PRAGMA data_version)."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.conn.close()
