"""storage/postgres.py against a real PostgreSQL: versioned schemas, one actor's transactions
ordered across processes by its lock, bounded retries, and a database that is down (503 at
once for a moment once it is found unreachable, and a bounded wait for a turn of the pool)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from textwrap import dedent

import psycopg
import pytest
import trio
import trio.testing
from psycopg import errors as pg_errors

from oauthd.errors import TemporarilyUnavailable
from oauthd.storage import SchemaError
from oauthd.storage.pg_stores import PgBackend
from oauthd.storage.postgres import ATTEMPTS, UNREACHABLE_S, Database, PgSchema
from tests.postgres import Cluster, server_binaries, throwaway_cluster

COUNTER = PgSchema(
    "counter",
    (
        "CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL);"
        " INSERT INTO counter VALUES (1, 0)",
    ),
)


class Clock:
    """The breaker's clock, moved by the test (the pool's own timeout stays real)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def opened(dsn: str, timeout_s: float = 5.0, clock: Clock | None = None) -> Database:
    database = Database(dsn, pool_size=2, timeout_s=timeout_s, clock=clock or Clock())
    database.open()
    return database


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[Database]:
    database = opened(postgres_dsn)
    try:
        yield database
    finally:
        database.close()


def versions(dsn: str) -> list[tuple[str, int]]:
    with psycopg.connect(dsn) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT name, version FROM oauthd_schema")]


def test_migrations_run_once_each_and_record_the_version(
    database: Database, postgres_dsn: str
) -> None:
    """A schema is brought up to its version by its missing migrations only, as for SQLite."""
    assert database.migrate(COUNTER) == 1
    assert database.migrate(COUNTER) == 1  # nothing ran twice: the INSERT would conflict
    grown = PgSchema("counter", (*COUNTER.migrations, "ALTER TABLE counter ADD note text"))
    assert database.migrate(grown) == 2
    assert versions(postgres_dsn) == [("counter", 2)]


def test_a_database_from_a_newer_oauthd_is_refused(database: Database, postgres_dsn: str) -> None:
    """A schema version past the code's is refused (SchemaError) and left unchanged."""
    database.migrate(PgSchema("counter", (*COUNTER.migrations, "SELECT 1")))
    with pytest.raises(SchemaError, match="newer"):
        database.migrate(COUNTER)
    assert versions(postgres_dsn) == [("counter", 2)]


RACER = dedent(
    """
    import sys
    from oauthd.storage.postgres import Database

    def bump(conn):
        # A deciding read, then a write from it: without the actor's lock two processes
        # would read the same n and one increment would be lost.
        (n,) = conn.execute("SELECT n FROM counter WHERE id = 1").fetchone()
        conn.execute("UPDATE counter SET n = %s WHERE id = 1", (n + 1,))

    database = Database(sys.argv[1], pool_size=1, timeout_s=30)
    database.open()
    for _ in range(int(sys.argv[2])):
        database.ordered("default/client/0123456789abcdef0123", bump)
    database.close()
    """
)


def test_one_actor_is_ordered_across_processes(database: Database, postgres_dsn: str) -> None:
    """Two processes each run 300 read-then-write messages for one actor: none is lost, as
    each transaction takes the actor's lock before its deciding read."""
    database.migrate(COUNTER)
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, postgres_dsn, "300"]) for _ in range(2)
    ]
    assert [racer.wait(timeout=120) for racer in racers] == [0, 0]
    assert database.ordered("check", lambda c: c.execute("SELECT n FROM counter").fetchone()) == (
        600,
    )


def test_a_serialization_failure_or_deadlock_is_run_again(database: Database) -> None:
    """SQLSTATE 40001 and 40P01 roll the transaction back and run it again."""
    database.migrate(COUNTER)
    failures = [pg_errors.SerializationFailure, pg_errors.DeadlockDetected]

    def conflicted_twice(conn: psycopg.Connection) -> int:
        conn.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
        if failures:
            raise failures.pop(0)()
        (n,) = conn.execute("SELECT n FROM counter").fetchone() or (None,)
        return int(n)

    assert database.ordered("default/client/x", conflicted_twice) == 1  # two runs rolled back


def test_conflicts_past_the_bound_are_temporarily_unavailable(database: Database) -> None:
    """A conflict that persists is retried a bounded number of times, then answered 503."""
    runs: list[int] = []

    def always_conflicted(conn: psycopg.Connection) -> None:
        runs.append(1)
        raise pg_errors.SerializationFailure()

    with pytest.raises(TemporarilyUnavailable):
        database.ordered("default/client/x", always_conflicted)
    assert len(runs) == ATTEMPTS


@pytest.fixture
def own_cluster(postgres_cluster: Cluster) -> Iterator[Cluster]:
    """A cluster of this test's own, which it may stop and start."""
    binaries = server_binaries()
    assert binaries is not None  # postgres_cluster skipped or failed otherwise
    with throwaway_cluster(binaries) as cluster:
        yield cluster


def served_again(database: Database, clock: Clock) -> object:
    """What a client retrying after each 503 gets once the database is back: the pool
    reconnects in the background, each try waiting at most the pool's timeout for it (each
    try made past the moment in which a 503 comes at once)."""
    for _ in range(120):
        clock.now += UNREACHABLE_S
        try:
            return database.ordered("a", lambda c: c.execute("SELECT 1").fetchone())
        except TemporarilyUnavailable:
            continue
    raise AssertionError("the pool did not reconnect within a minute")


def test_database_down_is_503_with_retry_after_then_recovers(own_cluster: Cluster) -> None:
    """A database that is down answers temporarily_unavailable with Retry-After, never a
    server error; once it is back the same pool serves again, without a restart."""
    clock = Clock()
    database = opened(own_cluster.dsn(), timeout_s=0.5, clock=clock)
    try:
        assert database.ordered("a", lambda c: c.execute("SELECT 1").fetchone()) == (1,)
        own_cluster.stop()
        with pytest.raises(TemporarilyUnavailable) as down:
            database.ordered("a", lambda c: c.execute("SELECT 1").fetchone())
        assert down.value.status == 503
        assert down.value.headers() == {"Retry-After": "1"}
        own_cluster.start()
        assert served_again(database, clock) == (1,)
    finally:
        database.close()


def test_once_found_unreachable_the_next_callers_get_503_without_waiting_on_the_pool(
    own_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests come faster than a dead database answers them: after one caller waited out
    the pool's timeout, those of the next UNREACHABLE_S get their 503 at once, without asking
    the pool; past it, the pool is asked again, and serves once the database is back."""
    clock = Clock()
    database = opened(own_cluster.dsn(), timeout_s=0.5, clock=clock)
    asked: list[float] = []
    connection = database._pool.connection

    def counting(*args: object, **kwargs: object) -> object:
        asked.append(clock.now)
        return connection(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(database._pool, "connection", counting)
    select = lambda c: c.execute("SELECT 1").fetchone()  # noqa: E731
    try:
        own_cluster.stop()
        with pytest.raises(TemporarilyUnavailable):
            database.ordered("a", select)  # waits out the pool's timeout
        assert len(asked) == 1
        clock.now += UNREACHABLE_S / 2
        with pytest.raises(TemporarilyUnavailable) as fast:
            database.ordered("b", select)
        assert len(asked) == 1  # answered without the pool
        assert fast.value.headers() == {"Retry-After": "1"}
        clock.now += UNREACHABLE_S
        with pytest.raises(TemporarilyUnavailable):
            database.ordered("a", select)
        assert len(asked) == 2  # the moment passed: the pool was asked again
        own_cluster.start()
        assert served_again(database, clock) == (1,)
    finally:
        database.close()


async def test_a_message_waits_for_a_turn_of_the_pool_at_most_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With every connection's thread taken, a message waits for a turn at most the pool's
    timeout, then is answered 503: the wait does not grow with the messages queued ahead
    (each of which may itself wait that long for a connection)."""
    database = Database("postgresql:///unused", pool_size=1, timeout_s=5.0)  # never opened
    backend = PgBackend(database, threads=1)
    store = backend.open_registry(object())  # type: ignore[arg-type]
    held = trio.Event()
    async with trio.open_nursery() as nursery:

        async def taking_the_only_turn() -> None:
            async with backend._limiter:
                held.set()
                await trio.sleep(60)

        nursery.start_soon(taking_the_only_turn)
        await held.wait()
        started = trio.current_time()
        with pytest.raises(TemporarilyUnavailable) as waited:
            await store.run(lambda: None, writes=False)
        assert trio.current_time() - started == pytest.approx(5.0)
        assert waited.value.status == 503
        nursery.cancel_scope.cancel()
