"""PostgreSQL: a pool of connections, versioned schemas, and the actor's ordered transaction.

The only importer of psycopg. What `BEGIN IMMEDIATE` gives one SQLite shard across the
processes of one host, `Database.ordered` gives one actor across hosts: a transaction whose
first statement takes a transaction-scoped advisory lock on the actor's address, so every read
after it that decides a write sees what the last message of that actor, on any host, committed.
The lock goes with COMMIT or ROLLBACK, so a host that dies mid-message holds nothing. Locks
are keyed by a 64-bit hash of the address: two addresses that collide only wait for each other.

The driver is synchronous (psycopg 3 with psycopg_pool): a caller on the event loop runs
`ordered` in a worker thread, no more threads than the pool has connections. `work` may run
more than once: a serialization failure or a deadlock (SQLSTATE 40001, 40P01) rolls the
transaction back and runs it again, up to `ATTEMPTS` times; it must do nothing outside the
transaction. A database that cannot be reached, or no connection free within the pool's
timeout, is `TemporarilyUnavailable` (503 with Retry-After), never a server error; the pool
reconnects on its own when the database is back. Once a caller has found the database
unreachable, the callers of the next `UNREACHABLE_S` get their 503 at once instead of each
waiting out the pool's timeout: requests arrive faster than a dead database answers them, and
one actor's messages each waiting in turn would make the last one wait for all of them (a
request held past HAProxy's 30 s, found by tests/interop/test_postgres_haproxy.py).

A `PgSchema` is versioned like a SQLite `Schema`: its version is the number of its migrations,
kept per schema name in `oauthd_schema`; opening runs the missing ones in one transaction under
the schema's own advisory lock, and refuses a database written by a newer oauthd. `probe` looks
without changing anything (`oauthd check-config`): one connection, the version found.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from oauthd.errors import TemporarilyUnavailable
from oauthd.storage.sqlite import SchemaError

__all__ = [
    "ATTEMPTS",
    "LOCK",
    "UNREACHABLE_S",
    "Database",
    "PgSchema",
    "Probe",
    "probe",
    "unavailable",
]

T = TypeVar("T")
ATTEMPTS = 5  # runs of one message's transaction before a conflict is answered with 503
RETRY_AFTER_S = 1  # what a 503 for an unreachable database tells the client to wait
UNREACHABLE_S = 1.0  # after the database was found unreachable, 503 at once for this long
# SQLSTATEs of a database that is not there: connection exceptions, and a server shutting
# down, crashed or still starting (57P01-57P03). A failure with no SQLSTATE is the client's
# own: refused, reset, closed.
LOST = ("08", "57P01", "57P02", "57P03")
CONFLICTS = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)  # 40001, 40P01
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
VERSIONS = "CREATE TABLE IF NOT EXISTS oauthd_schema (name text PRIMARY KEY, version int NOT NULL)"


@dataclass(frozen=True, slots=True)
class PgSchema:
    """A set of tables: its name and its ordered migrations (SQL); the version is their count.
    To change it, append a migration; never edit one that has shipped."""

    name: str
    migrations: tuple[str, ...]

    @property
    def version(self) -> int:
        return len(self.migrations)


class Database:
    """A pool of `pool_size` connections to the database at `dsn`, opened by `open()`.
    `timeout_s`: how long a caller waits for a connection before it gets a 503."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._unreachable_until = -math.inf
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=timeout_s,
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced
            kwargs={"autocommit": True},
            name="oauthd",
        )

    def open(self) -> None:
        """Start the pool; its connections are made in the background, so this does not wait
        for the database (a request that finds it down gets a 503)."""
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    def ordered(self, address: str, work: Callable[[psycopg.Connection], T]) -> T:
        """Run `work(conn)` in one transaction holding the lock of `address`, taken before
        anything else; committed when it returns, rolled back when it raises. Retried on a
        serialization failure or deadlock, at most ATTEMPTS runs in all."""
        for _ in range(ATTEMPTS - 1):
            try:
                return self._locked(address, work)
            except CONFLICTS:
                continue
        try:
            return self._locked(address, work)
        except CONFLICTS as exc:
            raise TemporarilyUnavailable(
                "the server is busy; try again", detail=f"{address}: {exc.sqlstate} after retries"
            ) from None

    def _locked(self, address: str, work: Callable[[psycopg.Connection], T]) -> T:
        with self.holding(address) as conn:
            return work(conn)

    def check_reachable(self) -> None:
        """TemporarilyUnavailable if a caller found the database unreachable less than
        UNREACHABLE_S ago (thread-safe: one float, written whole)."""
        if self._clock() < self._unreachable_until:
            raise unavailable("found unreachable a moment ago")

    @contextmanager
    def holding(self, address: str) -> Iterator[psycopg.Connection]:
        """One transaction holding the lock of `address` (no retry: see `ordered`)."""
        self.check_reachable()
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute(LOCK, (address,))
                yield conn
        except CONFLICTS:
            raise
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if _lost(exc):
                self._unreachable_until = self._clock() + UNREACHABLE_S
            raise unavailable(f"{type(exc).__name__}: {exc}") from None

    def migrate(self, schema: PgSchema) -> int:
        """Bring `schema` up to date: its missing migrations in one transaction, under its own
        lock, so two hosts starting at once run each migration once. Returns the version;
        SchemaError if the database holds a newer one."""

        def run(conn: psycopg.Connection) -> int:
            conn.execute(VERSIONS)
            row = conn.execute(
                "SELECT version FROM oauthd_schema WHERE name = %s", (schema.name,)
            ).fetchone()
            version = 0 if row is None else int(row[0])
            if version > schema.version:
                raise SchemaError(
                    f"PostgreSQL: {schema.name} schema version {version} is newer than "
                    f"this oauthd understands ({schema.version})"
                )
            for migration in schema.migrations[version:]:
                conn.execute(migration.encode())
            conn.execute(
                "INSERT INTO oauthd_schema (name, version) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET version = excluded.version",
                (schema.name, schema.version),
            )
            return schema.version

        return self.ordered(f"schema:{schema.name}", run)


def _lost(exc: Exception) -> bool:
    """Whether `exc` says the database cannot be reached (or no connection came within the
    pool's timeout), rather than that one statement failed."""
    if isinstance(exc, PoolTimeout):
        return True
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith(LOST[0]) or state in LOST[1:]


def unavailable(detail: str) -> TemporarilyUnavailable:
    """The 503 (with Retry-After) of a database that cannot serve now."""
    return TemporarilyUnavailable(
        "the server cannot reach its storage; try again",
        detail=f"PostgreSQL: {detail}",
        retry_after_s=RETRY_AFTER_S,
    )


@dataclass(frozen=True, slots=True)
class Probe:
    """What one connection to the database found: where it went (no password) and the
    version of `schema` there (0: not made yet; oauthd makes it when it starts)."""

    target: str
    version: int


def probe(dsn: str, schema: PgSchema, *, timeout_s: int) -> Probe:
    """Connect once to `dsn` and read the version of `schema`, changing nothing. SchemaError
    with a one-line reason, the DSN's password never in it, when the DSN is malformed, the
    server cannot be reached, refuses the login, or holds a newer schema than `schema`."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise SchemaError("PostgreSQL: the DSN is not a valid connection string") from None
    target = describe(params)
    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s, autocommit=True) as conn:
            version = schema_version(conn, schema.name)
    except psycopg.Error as exc:
        reason = redact(" ".join(str(exc).split()), params)
        raise SchemaError(f"PostgreSQL at {target}: {failure(exc)}: {reason}") from None
    if version > schema.version:
        raise SchemaError(
            f"PostgreSQL at {target}: {schema.name} schema version {version} is newer than "
            f"this oauthd understands ({schema.version})"
        )
    return Probe(target, version)


def failure(exc: psycopg.Error) -> str:
    """What kind of failure a connection attempt met, in words an operator acts on. A failed
    connection carries no SQLSTATE in psycopg, only the server's FATAL message: a server that
    answered refused the login (role, password, pg_hba.conf) or the database."""
    message = str(exc)
    if exc.sqlstate == "3D000" or ("FATAL:" in message and "database" in message):
        return "no such database"
    if (exc.sqlstate or "").startswith("28") or "FATAL:" in message:
        return "authentication failed"
    if isinstance(exc, psycopg.OperationalError):
        return "unreachable"
    return "cannot use the database"


def schema_version(conn: psycopg.Connection, name: str) -> int:
    """The version of schema `name` in the database; 0 when oauthd never wrote to it."""
    if conn.execute("SELECT to_regclass('oauthd_schema')").fetchone() == (None,):
        return 0
    row = conn.execute("SELECT version FROM oauthd_schema WHERE name = %s", (name,)).fetchone()
    return 0 if row is None else int(row[0])


def describe(params: Mapping[str, object]) -> str:
    """user@host:port/dbname of a parsed DSN, for messages: never its password."""
    user = f"{params['user']}@" if params.get("user") else ""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return f"{user}{host}{port}/{params.get('dbname', '')}"


def redact(message: str, params: Mapping[str, object]) -> str:
    """The server's or libpq's message with the DSN's password, should it appear, masked."""
    password = str(params.get("password") or "")
    return message.replace(password, "***") if password else message
