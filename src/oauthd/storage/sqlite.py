"""One SQLite shard: connection settings, the write transaction, schema migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlite_utils

__all__ = ["LockBusy", "Migration", "Schema", "SchemaError", "Store", "tenant_dir"]

Migration = Callable[[sqlite_utils.Database], None]


class SchemaError(Exception):
    """A shard written by a newer oauthd, or one that cannot be migrated."""


class LockBusy(Exception):
    """`transaction(wait=False)`: another connection (another process) holds the write lock.
    Nothing ran; the caller may retry where waiting is harmless."""


@dataclass(frozen=True, slots=True)
class Schema:
    """A shard type: its name and its ordered migrations; the version is their count."""

    name: str
    migrations: tuple[Migration, ...]

    @property
    def version(self) -> int:
        return len(self.migrations)


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
        self._busy_timeout_ms = busy_timeout_ms
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
            self._configure(fsync, create)
            self._migrate(schema)
        except BaseException:
            self.conn.close()
            raise

    def _configure(self, fsync: bool, create: bool) -> None:
        # NORMAL in WAL survives a killed process; FULL also survives power loss. Opening a
        # shard is on the request path of every cold actor, so it runs as few statements as
        # it can: SQLite's default page cache already stays small for a small shard.
        self.conn.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")
        # WAL is a property of the file: set once, by whoever may create it.
        if create and self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.conn.execute("PRAGMA journal_mode = WAL")

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for migrations and tools."""
        return sqlite_utils.Database(self.conn)

    def _migrate(self, schema: Schema) -> None:
        if self._version(schema) == schema.version:
            return
        with self.transaction():
            # Re-read inside the write lock: another process may have migrated meanwhile,
            # perhaps a newer oauthd, whose version we must not overwrite with ours.
            version = self._version(schema)
            for migration in schema.migrations[version:]:
                migration(self.db)
            self.conn.execute(f"PRAGMA user_version = {schema.version}")

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
        at once instead of waiting up to the busy timeout for another process's write lock
        (SQLite's busy handler sleeps, which on an event loop stalls every other request)."""
        if wait:
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self._begin_or_raise()
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _begin_or_raise(self) -> None:
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
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
