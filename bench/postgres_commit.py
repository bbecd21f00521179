"""What one actor message's write transaction costs on PostgreSQL against SQLite (issue 19).

    .venv/bin/python bench/postgres_commit.py [COUNT]

Starts a throwaway PostgreSQL (tests/postgres.py, PostgreSQL's durable defaults: fsync and
synchronous_commit on) and a SQLite shard in WAL with oauthd's defaults (synchronous=NORMAL),
each holding one counter row per actor, and times COUNT messages of each row below, in
rounds interleaved so that background load skews every row alike:

- sqlite, on the loop: `Store.transaction()` (BEGIN IMMEDIATE), a read, an update, COMMIT,
  called on the event loop as `ShardActor` calls it;
- postgres, sync: `Database.ordered()` (the advisory lock on the actor's address, the same
  read and update) called directly, no thread;
- postgres, to_thread: the same through `trio.to_thread.run_sync` under a CapacityLimiter of
  the pool's size, as an actor on the event loop would call it;
- postgres, 32 tasks: 32 actors at once, each through to_thread, pool and limiter of 4 and 8:
  messages per second.

Prints p50 and p99 per message (single rows) or messages/s (concurrent rows).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.postgres: the cluster

from tests.postgres import server_binaries, throwaway_cluster

from oauthd.storage import Schema, Store
from oauthd.storage.postgres import Database, PgSchema

ROUNDS = 5
ACTORS = 32
TABLE = "CREATE TABLE counter (actor text PRIMARY KEY, n int NOT NULL)"
PG_SCHEMA = PgSchema("bench", (TABLE,))
SQLITE_SCHEMA = Schema("bench", (lambda db: db.execute(TABLE),))


def pg_bump(actor: str) -> Callable[[psycopg.Connection], None]:
    """One message: a deciding read, then a write from it."""

    def work(conn: psycopg.Connection) -> None:
        row = conn.execute("SELECT n FROM counter WHERE actor = %s", (actor,)).fetchone()
        conn.execute(
            "INSERT INTO counter VALUES (%s, %s) ON CONFLICT (actor) DO UPDATE SET n = excluded.n",
            (actor, 0 if row is None else row[0] + 1),
        )

    return work


def sqlite_bump(store: Store, actor: str) -> None:
    with store.transaction() as conn:
        row = conn.execute("SELECT n FROM counter WHERE actor = ?", (actor,)).fetchone()
        conn.execute(
            "INSERT INTO counter VALUES (?, ?) ON CONFLICT (actor) DO UPDATE SET n = excluded.n",
            (actor, 0 if row is None else row[0] + 1),
        )


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


async def timed(count: int, one: Callable[[], Awaitable[object]]) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await one()
        times.append(time.perf_counter() - start)
    return times


async def on_loop(run: Callable[[], object]) -> None:
    """A synchronous call, timed as made on the event loop."""
    run()


async def concurrent(database: Database, limiter: trio.CapacityLimiter, count: int) -> float:
    """Messages per second with ACTORS actors sending `count` messages each at once."""

    async def actor(name: str) -> None:
        work = pg_bump(name)
        for _ in range(count):
            await trio.to_thread.run_sync(database.ordered, name, work, limiter=limiter)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(ACTORS):
            nursery.start_soon(actor, f"default/client/{i:020x}")
    return ACTORS * count / (time.perf_counter() - start)


async def main(count: int) -> None:
    binaries = server_binaries()
    if binaries is None:
        sys.exit("no PostgreSQL: apt-get install postgresql")
    with throwaway_cluster(binaries, durable=True) as cluster, tempfile.TemporaryDirectory() as d:
        dsn = cluster.create_database()
        store = Store(Path(d) / "bench.sqlite", SQLITE_SCHEMA, create=True)
        pools = {size: Database(dsn, pool_size=size, timeout_s=30) for size in (1, 4, 8)}
        for database in pools.values():
            database.open()
        pools[1].migrate(PG_SCHEMA)
        limiters = {size: trio.CapacityLimiter(size) for size in pools}
        single: dict[str, list[float]] = {"sqlite": [], "pg sync": [], "pg to_thread": []}
        rates: dict[int, list[float]] = {4: [], 8: []}
        actor, work = "default/client/0", pg_bump("default/client/0")
        for _ in range(ROUNDS):
            single["sqlite"] += await timed(
                count, lambda: on_loop(lambda: sqlite_bump(store, actor))
            )
            single["pg sync"] += await timed(
                count, lambda: on_loop(lambda: pools[1].ordered(actor, work))
            )
            single["pg to_thread"] += await timed(
                count,
                lambda: trio.to_thread.run_sync(pools[1].ordered, actor, work, limiter=limiters[1]),
            )
            for size in rates:
                rates[size].append(
                    await concurrent(pools[size], limiters[size], max(count // ACTORS, 5))
                )
        for database in pools.values():
            database.close()
        store.close()
    print(f"{'row':<34} {'p50':>9} {'p99':>9}")
    for name, samples in single.items():
        p50, p99 = percentiles(samples)
        print(f"{name + ', one message':<34} {p50 * 1000:>7.2f}ms {p99 * 1000:>7.2f}ms")
    for size, measured in rates.items():
        label = f"pg, {ACTORS} actors, pool {size}"
        print(f"{label:<34} {statistics.median(measured):>9,.0f} messages/s")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 300)
