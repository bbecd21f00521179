"""The actor kernel (docs/architecture.md "Actors"): input gate, ordering, eviction, supervision,
back-pressure, cancellation, and that garbage never spawns an actor."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
import trio
import trio.testing

from oauthd.actors import (
    ClientActor,
    Env,
    GetClient,
    RegisterClient,
    client_address,
    directory_address,
    kinds,
)
from oauthd.actors.shard import ShardActor, command, query
from oauthd.errors import InvalidGrant, NotFound, ServerError, TemporarilyUnavailable
from oauthd.keys import KeyringHolder
from oauthd.runtime import Actor, ActorSystem, Address, Kind, TrioClock
from oauthd.settings import ActorSettings, Settings, StorageSettings, settings_for_tests
from oauthd.storage import ClientRecord, LockBusy, Schema, Store
from oauthd.storage.embedded import SqliteShard

# --- a small shard actor: a counter per name, on its own SQLite file ----------------------------


def _v1(db: sqlite_utils.Database) -> None:
    db.table("counter").create({"name": str, "value": int}, pk="name")


COUNTER = Schema("counter", (_v1,))


@dataclass(frozen=True, slots=True)
class Add:
    """Command: add one to a counter; replies with its new value."""

    name: str


@dataclass(frozen=True, slots=True)
class Get:
    """Query: (the counter's value on disk, messages this actor instance has handled)."""

    name: str


@dataclass(frozen=True, slots=True)
class AddThenCrash:
    """Command: add one, then raise a non-OAuth exception before COMMIT."""

    name: str


@dataclass(frozen=True, slots=True)
class AddThenRefuse:
    """Command: add one, then answer an OAuth error (a normal reply)."""

    name: str


@dataclass(frozen=True, slots=True)
class Hold:
    """Async: wait for `Tally.release` without touching the shard (keeps the actor busy)."""


@dataclass(frozen=True, slots=True)
class AddInTwoSteps:
    """Async: in one transaction add to `first`, wait for `Tally.release`, add to `second`."""

    first: str
    second: str


@dataclass
class Tally:
    """What the test sees of its actors' lives."""

    opens: int = 0
    closes: int = 0
    release: trio.Event = field(default_factory=trio.Event)


def _add(conn: sqlite3.Connection, name: str) -> None:
    conn.execute(
        "INSERT INTO counter VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
        (name,),
    )


class Counter(ShardActor[SqliteShard]):
    def __init__(self, path: Path, tally: Tally) -> None:
        super().__init__(lambda: SqliteShard(path, COUNTER, create=True))
        self.tally = tally
        self.handled = 0  # in-memory state: a restart resets it

    async def open(self) -> None:
        self.tally.opens += 1
        await super().open()

    async def close(self) -> None:
        self.tally.closes += 1
        await super().close()

    async def receive(self, message: Any) -> Any:
        self.handled += 1
        if isinstance(message, Hold):
            await self.tally.release.wait()
            return None
        if isinstance(message, AddInTwoSteps):
            with self.store.transaction() as conn:
                _add(conn, message.first)
                await self.tally.release.wait()
                _add(conn, message.second)
            return None
        return await super().receive(message)

    def _value(self, name: str) -> int:
        rows = self.store.query("SELECT value FROM counter WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    @command(Add)
    def add(self, message: Add) -> int:
        _add(self.store.conn, message.name)
        return self._value(message.name)

    @command(AddThenCrash)
    def add_then_crash(self, message: AddThenCrash) -> None:
        _add(self.store.conn, message.name)
        raise RuntimeError("boom")

    @command(AddThenRefuse)
    def add_then_refuse(self, message: AddThenRefuse) -> None:
        _add(self.store.conn, message.name)
        raise InvalidGrant("refused")

    @query(Get)
    def get(self, message: Get) -> tuple[int, int]:
        return self._value(message.name), self.handled


def counter_kind(tmp_path: Path, tally: Tally) -> Kind:
    return Kind("counter", lambda address: Counter(tmp_path / f"{address.key}.sqlite", tally))


def on_disk(path: Path, name: str) -> int:
    """The committed value, read through a separate connection."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchall()
    return int(rows[0][0]) if rows else 0


def counter(key: str) -> Address:
    return Address("default", "counter", key)


# --- a scripted actor: each message is a coroutine function run inside `receive` ---------------


@dataclass(frozen=True, slots=True)
class Run:
    fn: Callable[[], Awaitable[Any]]


class Scripted:
    async def open(self) -> None:
        pass

    async def receive(self, message: Run) -> Any:
        return await message.fn()

    async def close(self) -> None:
        pass


SCRIPTED = Kind("scripted", lambda _address: Scripted())


@asynccontextmanager
async def running(*actor_kinds: Kind, **settings: Any) -> AsyncIterator[ActorSystem]:
    """An ActorSystem serving in a nursery; cancelled (actors closed) on exit."""
    system = ActorSystem(ActorSettings(**settings), list(actor_kinds))
    async with trio.open_nursery() as nursery:
        await nursery.start(system.run)
        yield system
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def stoppable(
    system: ActorSystem,
) -> AsyncIterator[tuple[trio.Nursery, trio.CancelScope]]:
    """`system` serving under a scope the test cancels to stop it, and an outer nursery whose
    tasks (asks in flight) outlive that stop."""
    async with trio.open_nursery() as outer:
        server = trio.CancelScope()

        async def serve(*, task_status: trio.TaskStatus[None]) -> None:
            with server:
                async with trio.open_nursery() as nursery:
                    await nursery.start(system.run)
                    task_status.started()

        await outer.start(serve)
        yield outer, server


# --- the input gate: one message at a time, in arrival order -------------------------------------


class Serial:
    """Records every message it handles, and whether two were ever inside `receive` at once."""

    def __init__(self) -> None:
        self.inside = False
        self.overlaps = 0
        self.seen: list[int] = []
        self.depth: Callable[[], int] = lambda: 0
        self.max_depth = 0

    async def open(self) -> None:
        pass

    async def receive(self, message: int) -> int:
        self.overlaps += self.inside
        self.inside = True
        self.max_depth = max(self.max_depth, self.depth())
        for _ in range(3):
            await trio.lowlevel.checkpoint()  # let every other task run while we are inside
        self.seen.append(message)
        self.inside = False
        return message * 2

    async def close(self) -> None:
        pass


async def test_one_actor_handles_concurrent_asks_one_at_a_time_in_arrival_order() -> None:
    """An actor handles one message at a time (input gate), in the order messages arrived."""
    serial = Serial()
    arrived: list[int] = []
    replies: dict[int, int] = {}

    async def send(system: ActorSystem, n: int) -> None:
        arrived.append(n)  # ask() queues before its first checkpoint: this is the arrival order
        replies[n] = await system.ask(Address("default", "serial", ""), n)

    async with running(Kind("serial", lambda _a: serial), mailbox_size=1000) as system:
        serial.depth = lambda: system.stats().mailbox_depth
        async with trio.open_nursery() as nursery:
            for n in range(1000):
                nursery.start_soon(send, system, n)
        stats = system.stats()

    assert serial.max_depth > 900  # the asks really were queued together
    assert serial.overlaps == 0
    assert serial.seen == arrived
    assert sorted(arrived) == list(range(1000))
    assert replies == {n: n * 2 for n in range(1000)}
    assert stats.activations == 1
    assert stats.restarts == 0


async def test_different_actors_progress_concurrently() -> None:
    """One actor blocked in a slow receive does not hold up another actor."""
    a_may_finish = trio.Event()
    a_done = trio.Event()

    async def slow() -> str:
        await a_may_finish.wait()
        return "a"

    async def fast() -> str:
        return "b"

    async with running(SCRIPTED) as system:
        async with trio.open_nursery() as nursery:

            async def ask_a() -> None:
                assert await system.ask(Address("default", "scripted", "a"), Run(slow)) == "a"
                a_done.set()

            nursery.start_soon(ask_a)
            await trio.testing.wait_all_tasks_blocked()
            assert await system.ask(Address("default", "scripted", "b"), Run(fast)) == "b"
            assert not a_done.is_set()
            a_may_finish.set()
        assert a_done.is_set()


# --- eviction: idle time and the LRU cap; state survives on disk ---------------------------------


async def test_idle_actor_is_evicted_and_reactivates_with_its_state(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """An actor idle for idle_timeout_s is evicted (shard closed); the next message re-opens it
    from disk with the state written before eviction."""
    tally = Tally()
    async with running(counter_kind(tmp_path, tally), idle_timeout_s=60.0) as system:
        assert await system.ask(counter("c"), Add("x")) == 1
        assert await system.ask(counter("c"), Add("x")) == 2
        await trio.sleep(30)
        assert system.is_live(counter("c"))
        await trio.sleep(60)
        assert not system.is_live(counter("c"))
        assert (tally.opens, tally.closes) == (1, 1)

        assert await system.ask(counter("c"), Get("x")) == (2, 1)  # fresh instance, same disk
        assert await system.ask(counter("c"), Add("x")) == 3
        stats = system.stats()
        assert (stats.activations, stats.evictions, stats.live) == (2, 1, 1)
        assert (tally.opens, tally.closes) == (2, 1)
    assert tally.closes == 2  # shutdown closes the live actor


@pytest.mark.parametrize("warm", [False, True])
async def test_busy_actor_is_not_evicted_for_idleness(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, warm: bool
) -> None:
    """An actor in the middle of a message is never evicted, however long the message takes;
    also when the message runs on its asker's task (`warm`: the actor was idle)."""
    tally = Tally()
    async with running(counter_kind(tmp_path, tally), idle_timeout_s=60.0) as system:
        if warm:
            await system.ask(counter("c"), Add("warm-up"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(system.ask, counter("c"), Hold())
            await trio.sleep(600)
            assert system.is_live(counter("c"))
            assert tally.closes == 0
            tally.release.set()
        await trio.sleep(100)
        assert not system.is_live(counter("c"))


async def test_live_actor_cap_evicts_the_least_recently_used(tmp_path: Path) -> None:
    """Past max_live the least recently used actor is evicted; its state is read back later."""
    tally = Tally()
    async with running(counter_kind(tmp_path, tally), max_live=2) as system:
        await system.ask(counter("a"), Add("x"))
        await system.ask(counter("b"), Add("x"))
        await system.ask(counter("a"), Add("x"))  # now b is the least recently used
        await system.ask(counter("c"), Add("x"))
        await trio.testing.wait_all_tasks_blocked()  # let b's task close its shard
        assert system.is_live(counter("a"))
        assert not system.is_live(counter("b"))
        assert system.is_live(counter("c"))
        assert (tally.opens, tally.closes) == (3, 1)

        assert await system.ask(counter("b"), Get("x")) == (1, 1)  # re-opened from disk
        await trio.testing.wait_all_tasks_blocked()
        assert not system.is_live(counter("a"))  # a was least recently used this time
        stats = system.stats()
        assert (stats.live, stats.activations, stats.evictions) == (2, 4, 2)
        assert (tally.opens, tally.closes) == (4, 2)


async def test_evicted_client_actor_reopens_its_registration_from_disk(
    make_settings: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """A real ClientActor evicted for idleness serves the same registration when re-activated."""
    settings = make_settings(actors=ActorSettings(idle_timeout_s=60.0))
    env = Env(settings, TrioClock(), KeyringHolder(), None)
    record = _record("app")
    system = ActorSystem(settings.actors, kinds(env))
    async with trio.open_nursery() as nursery:
        await nursery.start(system.run)
        await system.ask(directory_address("default"), RegisterClient(record))
        address = client_address("default", "app")
        assert await system.ask(address, GetClient()) == record
        await trio.sleep(120)
        assert not system.is_live(address)
        assert not system.is_live(directory_address("default"))
        assert await system.ask(address, GetClient()) == record
        assert system.stats().activations == 3  # directory, client, client again
        nursery.cancel_scope.cancel()


def _record(client_id: str) -> ClientRecord:
    return ClientRecord(
        client_id=client_id,
        client_name="App",
        redirect_uris=("http://127.0.0.1/callback",),
        grant_types=("authorization_code",),
        response_types=("code",),
        token_endpoint_auth_method="none",
        scope="",
        first_party=False,
        secret_hash="",
        source="config",
        created_at=0,
    )


# --- supervision: a crash fails one request and restarts the actor from disk ---------------------


async def _queue_in_order(
    nursery: trio.Nursery, senders: list[Callable[[], Awaitable[None]]]
) -> None:
    """Start each sender only after the previous one is parked in the mailbox."""
    for send in senders:
        nursery.start_soon(send)
        await trio.testing.wait_all_tasks_blocked()


async def test_crash_fails_only_its_request_and_restarts_the_actor_from_disk(
    tmp_path: Path,
) -> None:
    """A non-OAuth exception fails that one message with server_error and rolls its write back;
    queued messages succeed on a fresh actor opened from disk (memory reset, disk kept)."""
    tally = Tally()
    results: dict[str, Any] = {}

    def sender(label: str, message: Any) -> Callable[[], Awaitable[None]]:
        async def send() -> None:
            try:
                results[label] = await system.ask(counter("c"), message)
            except ServerError as exc:
                results[label] = exc

        return send

    async with running(counter_kind(tmp_path, tally)) as system:
        async with trio.open_nursery() as nursery:
            await _queue_in_order(
                nursery,
                [
                    sender("hold", Hold()),
                    sender("add", Add("x")),
                    sender("crash", AddThenCrash("x")),
                    sender("add again", Add("x")),
                    sender("get", Get("x")),
                ],
            )
            assert system.stats().mailbox_depth == 4
            tally.release.set()
        stats = system.stats()

    assert results["add"] == 1
    assert isinstance(results["crash"], ServerError)
    assert results["crash"].status == 500
    assert results["add again"] == 2  # the crashed write was rolled back
    assert results["get"] == (2, 2)  # a fresh instance: it has handled two messages
    assert stats.restarts == 1
    assert stats.activations == 1
    assert (tally.opens, tally.closes) == (2, 2)
    assert on_disk(tmp_path / "c.sqlite", "x") == 2


async def test_oauth_error_is_a_normal_reply_that_rolls_back_and_keeps_the_actor(
    tmp_path: Path,
) -> None:
    """An OAuth error is answered as is: no restart; the message's transaction is rolled back."""
    tally = Tally()
    async with running(counter_kind(tmp_path, tally)) as system:
        await system.ask(counter("c"), Add("x"))
        with pytest.raises(InvalidGrant):
            await system.ask(counter("c"), AddThenRefuse("x"))
        assert await system.ask(counter("c"), Get("x")) == (1, 3)  # same instance
        assert system.stats().restarts == 0
        assert tally.opens == 1


async def test_factory_or_open_failure_answers_server_error_and_spares_the_system(
    tmp_path: Path,
) -> None:
    """An actor that cannot be made or opened fails its requests with server_error; other actors
    and later requests are unaffected."""

    class FailsToOpen(Scripted):
        async def open(self) -> None:
            raise OSError("disk on fire")

    def broken_factory(_address: Address) -> Actor:
        raise OSError("no such thing")

    async with running(
        SCRIPTED, Kind("broken", lambda _a: FailsToOpen()), Kind("unmakeable", broken_factory)
    ) as system:

        async def ok() -> str:
            return "ok"

        for kind in ("broken", "unmakeable"):
            for _ in range(2):
                with pytest.raises(ServerError):
                    await system.ask(Address("default", kind, "k"), Run(ok))
            assert not system.is_live(Address("default", kind, "k"))
        assert await system.ask(Address("default", "scripted", "k"), Run(ok)) == "ok"


# --- back-pressure -------------------------------------------------------------------------------


async def test_full_mailbox_answers_temporarily_unavailable_with_retry_after(
    tmp_path: Path,
) -> None:
    """A full mailbox answers temporarily_unavailable (503, Retry-After) at once."""
    tally = Tally()
    async with running(counter_kind(tmp_path, tally), mailbox_size=2, retry_after_s=7) as system:
        async with trio.open_nursery() as nursery:
            await _queue_in_order(
                nursery,
                [
                    lambda: system.ask(counter("c"), Hold()),
                    lambda: system.ask(counter("c"), Add("x")),
                    lambda: system.ask(counter("c"), Add("x")),
                ],
            )
            with pytest.raises(TemporarilyUnavailable) as caught:
                await system.ask(counter("c"), Add("x"))
            tally.release.set()
        assert await system.ask(counter("c"), Get("x")) == (2, 4)

    assert caught.value.status == 503
    assert caught.value.code == "temporarily_unavailable"
    assert caught.value.headers() == {"Retry-After": "7"}


# --- a caller that goes away ---------------------------------------------------------------------


@pytest.mark.parametrize("warm", [False, True])
async def test_caller_cancelled_mid_message_leaves_the_message_to_complete(
    tmp_path: Path, warm: bool
) -> None:
    """A caller cancelled while its message runs does not abort it: the whole transaction
    commits, and the reply is dropped. Run in the actor's task (the first message, which
    waits for the actor to open), the caller leaves at once; run on its own task (`warm`: the
    actor was idle), it is cancelled once the message is done."""
    tally = Tally()
    shard = tmp_path / "c.sqlite"
    caller = trio.CancelScope()
    async with running(counter_kind(tmp_path, tally)) as system:
        if warm:
            await system.ask(counter("c"), Add("warm-up"))
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                with caller:
                    await system.ask(counter("c"), AddInTwoSteps("a", "b"))
                    pytest.fail("the cancelled caller got a reply")

            nursery.start_soon(ask)
            await trio.testing.wait_all_tasks_blocked()  # first write done, waiting for release
            caller.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert caller.cancelled_caught is not warm
            assert (on_disk(shard, "a"), on_disk(shard, "b")) == (0, 0)  # not committed yet
            tally.release.set()
        assert caller.cancelled_caught
        # Asked after it, Get runs after the message (which may still be queued to run).
        assert await system.ask(counter("c"), Get("a")) == (1, 3 if warm else 2)
        assert system.stats().restarts == 0
    assert (on_disk(shard, "a"), on_disk(shard, "b")) == (1, 1)


async def test_caller_cancelled_while_queued_leaves_the_message_to_run(tmp_path: Path) -> None:
    """A caller cancelled while its message waits in the mailbox: the message still runs in
    full, in its turn, and its reply is dropped."""
    tally = Tally()
    caller = trio.CancelScope()
    async with running(counter_kind(tmp_path, tally)) as system:
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                with caller:
                    await system.ask(counter("c"), AddInTwoSteps("a", "b"))

            await _queue_in_order(nursery, [lambda: system.ask(counter("c"), Hold()), ask])
            caller.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert caller.cancelled_caught
            assert system.stats().mailbox_depth == 1
            tally.release.set()
        assert await system.ask(counter("c"), Get("b")) == (1, 3)
    assert on_disk(tmp_path / "c.sqlite", "a") == 1


# --- an idle actor: the message runs on the asking task (no task switch) -------------------------


async def test_idle_actor_runs_the_message_on_the_asking_task_a_busy_one_queues_it() -> None:
    """A warm actor with nothing in hand or queued handles a message on the asker's task; one
    that arrives meanwhile waits in the mailbox and runs after it, on the actor's task."""
    release = trio.Event()
    ran_on: dict[str, trio.lowlevel.Task] = {}
    order: list[str] = []

    def recording(label: str, wait: bool = False) -> Run:
        async def fn() -> str:
            ran_on[label] = trio.lowlevel.current_task()
            if wait:
                await release.wait()
            order.append(label)
            return label

        return Run(fn)

    async with running(SCRIPTED) as system:
        address = Address("default", "scripted", "")
        assert await system.ask(address, recording("spawn")) == "spawn"
        assert await system.ask(address, recording("idle")) == "idle"
        assert ran_on["idle"] is trio.lowlevel.current_task()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(system.ask, address, recording("first", wait=True))
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(system.ask, address, recording("queued"))
            await trio.testing.wait_all_tasks_blocked()
            assert system.stats().mailbox_depth == 1  # not run beside "first"
            release.set()
    assert order == ["spawn", "idle", "first", "queued"]
    assert ran_on["queued"] is ran_on["spawn"]  # the actor's own task
    assert ran_on["first"] is not ran_on["spawn"]


async def test_asks_during_an_inline_message_run_one_at_a_time_in_arrival_order() -> None:
    """While a message runs on its asker's task, the others queue: no two are ever inside
    `receive` at once, and they run in the order they arrived."""
    serial = Serial()
    arrived: list[int] = []

    async def send(system: ActorSystem, n: int) -> None:
        arrived.append(n)
        assert await system.ask(Address("default", "serial", ""), n) == n * 2

    async with running(Kind("serial", lambda _a: serial), mailbox_size=1000) as system:
        await system.ask(Address("default", "serial", ""), -1)  # spawned: idle from now on
        async with trio.open_nursery() as nursery:
            for n in range(200):
                nursery.start_soon(send, system, n)
    assert serial.overlaps == 0
    assert serial.seen == [-1, *arrived]


async def test_inline_crash_fails_only_its_message_and_restarts_the_actor_from_disk(
    tmp_path: Path,
) -> None:
    """A crash in a message run on the asking task is supervised as in the actor's task:
    server_error for that message, its write rolled back, a fresh actor opened from disk."""
    tally = Tally()
    async with running(counter_kind(tmp_path, tally)) as system:
        assert await system.ask(counter("c"), Add("x")) == 1
        with pytest.raises(ServerError):
            await system.ask(counter("c"), AddThenCrash("x"))
        assert await system.ask(counter("c"), Get("x")) == (1, 1)  # rolled back; fresh instance
        assert await system.ask(counter("c"), Add("x")) == 2
        stats = system.stats()
    assert (stats.restarts, stats.activations) == (1, 1)
    assert (tally.opens, tally.closes) == (2, 2)
    assert on_disk(tmp_path / "c.sqlite", "x") == 2


class PlainCounter(ShardActor[SqliteShard]):
    """A shard actor as the server's are: no `receive` of its own, so an inline message goes
    through `receive_now` (no cancel scope) unless its store must wait."""

    def __init__(self, path: Path, tally: Tally) -> None:
        super().__init__(lambda: SqliteShard(path, COUNTER, create=True))
        self.tally = tally

    async def open(self) -> None:
        self.tally.opens += 1
        await super().open()

    @command(Add)
    def add(self, message: Add) -> int:
        _add(self.store.conn, message.name)
        rows = self.store.query("SELECT value FROM counter WHERE name = ?", (message.name,))
        return int(rows[0][0])

    @command(AddThenCrash)
    def add_then_crash(self, message: AddThenCrash) -> None:
        _add(self.store.conn, message.name)
        raise RuntimeError("boom")


def plain_kind(tmp_path: Path, tally: Tally) -> Kind:
    return Kind("plain", lambda address: PlainCounter(tmp_path / f"{address.key}.sqlite", tally))


async def test_inline_message_run_at_once_commits_and_a_crash_restarts_the_actor(
    tmp_path: Path,
) -> None:
    """An idle shard actor's message that its store runs at once (`receive_now`) commits before
    the reply; a crash there is supervised as anywhere: server_error, rolled back, reopened."""
    tally = Tally()
    plain = Address("default", "plain", "p")
    async with running(plain_kind(tmp_path, tally)) as system:
        assert await system.ask(plain, Add("x")) == 1
        assert await system.ask(plain, Add("x")) == 2  # inline
        assert on_disk(tmp_path / "p.sqlite", "x") == 2
        with pytest.raises(ServerError):
            await system.ask(plain, AddThenCrash("x"))
        assert await system.ask(plain, Add("x")) == 3
        assert system.stats().restarts == 1
    assert tally.opens == 2


async def test_inline_message_whose_store_must_wait_completes_for_a_cancelled_caller(
    tmp_path: Path,
) -> None:
    """An idle shard actor's message that finds the shard's write lock held by another process
    waits for it in a thread, shielded: its caller cancelled meanwhile, it still commits."""
    tally = Tally()
    plain = Address("default", "plain", "p")
    caller = trio.CancelScope()
    async with running(plain_kind(tmp_path, tally)) as system:
        assert await system.ask(plain, Add("x")) == 1
        other = sqlite3.connect(tmp_path / "p.sqlite", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            async with trio.open_nursery() as nursery:

                async def ask() -> None:
                    with caller:
                        await system.ask(plain, Add("x"))
                        pytest.fail("the cancelled caller got a reply")

                nursery.start_soon(ask)
                await trio.testing.wait_all_tasks_blocked()  # in a thread, waiting for the lock
                caller.cancel()
                await trio.testing.wait_all_tasks_blocked()
                assert not caller.cancelled_caught  # held until its message is done
                other.execute("COMMIT")
            assert caller.cancelled_caught
        finally:
            other.close()
        assert await system.ask(plain, Add("x")) == 3


class OpensOnce(Scripted):
    """Opens the first time only: a restart after a crash fails to open."""

    opened = 0

    async def open(self) -> None:
        OpensOnce.opened += 1
        if OpensOnce.opened > 1:
            raise RuntimeError("the shard is gone")


async def test_inline_crash_whose_restart_fails_retires_the_actor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crashed actor that cannot reopen is gone: the next message spawns a new one."""
    monkeypatch.setattr(OpensOnce, "opened", 0)
    kind = Kind("scripted", lambda _address: OpensOnce())
    address = Address("default", "scripted", "")

    async def crash() -> None:
        raise RuntimeError("boom")

    async def ok() -> str:
        return "ok"

    async with running(kind) as system:
        assert await system.ask(address, Run(ok)) == "ok"
        with pytest.raises(ServerError):
            await system.ask(address, Run(crash))
        await trio.testing.wait_all_tasks_blocked()
        assert not system.is_live(address)
        monkeypatch.setattr(OpensOnce, "opened", 0)
        assert await system.ask(address, Run(ok)) == "ok"
        assert system.stats().activations == 2


async def test_retire_tenant_survives_an_actor_that_ends_itself_while_it_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`retire_tenant` waits for a busy actor; if that actor's message crashes and its restart
    fails, the actor ends by itself (unlisted by its own task): the retirement then finds it
    gone and returns, instead of evicting it a second time."""
    monkeypatch.setattr(OpensOnce, "opened", 0)
    address = Address("acme", "scripted", "")
    release = trio.Event()

    async def crash_later() -> None:
        await release.wait()
        raise RuntimeError("boom")

    async def ask_crash(system: ActorSystem) -> None:
        with pytest.raises(ServerError):
            await system.ask(address, Run(crash_later))

    async with running(Kind("scripted", lambda _address: OpensOnce())) as system:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_crash, system)
            await trio.testing.wait_all_tasks_blocked()
            retired = trio.Event()

            async def retire() -> None:
                await system.retire_tenant("acme")
                retired.set()

            nursery.start_soon(retire)
            await trio.testing.wait_all_tasks_blocked()
            assert not retired.is_set()  # the message in hand finishes first
            release.set()
        assert retired.is_set()
        assert not system.is_live(address)


class ClosesSlowly(Scripted):
    """Its close waits for the test's gate (a shard's checkpoint, in a thread)."""

    def __init__(self, gate: trio.Event, closed: list[str]) -> None:
        self.gate, self.closed = gate, closed

    async def close(self) -> None:
        await self.gate.wait()
        self.closed.append("closed")


async def test_retire_tenant_waits_for_an_actor_another_eviction_is_closing() -> None:
    """An actor already being closed (evicted past `max_live`) when its tenant is retired is
    waited for too: a removed tenant's directory goes only once every shard of it is closed."""
    gate, closed = trio.Event(), []
    kind = Kind("scripted", lambda _address: ClosesSlowly(gate, closed))

    async def ok() -> str:
        return "ok"

    retired = trio.Event()
    async with running(kind, max_live=1) as system:
        try:
            await system.ask(Address("acme", "scripted", "a"), Run(ok))
            await system.ask(Address("other", "scripted", "b"), Run(ok))  # evicts acme's
            await trio.testing.wait_all_tasks_blocked()
            assert closed == []  # its close is still running
            async with trio.open_nursery() as nursery:

                async def retire() -> None:
                    await system.retire_tenant("acme")
                    retired.set()

                nursery.start_soon(retire)
                await trio.testing.wait_all_tasks_blocked()
                assert not retired.is_set()
                gate.set()
            assert closed == ["closed"]
        finally:
            gate.set()  # else a failed assertion leaves the close waiting, and the test hangs
    assert retired.is_set()


# --- addresses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        Address("default", "client", "../../etc/passwd"),
        Address("default", "client", "ABCDEF0123456789ABCD"),  # not lower-case hex
        Address("default", "client", "0123456789abcdef"),  # too short
        Address("default", "client", "0123456789abcdef0123"),  # well formed, no shard file
        Address("default", "no-such-kind", "x"),
    ],
)
async def test_garbage_address_never_spawns_an_actor(
    address: Address, make_settings: Callable[..., Settings]
) -> None:
    """Garbage never spawns an actor: an address whose shard does not exist answers not_found,
    counts no activation and creates no file."""
    settings = make_settings()
    env = Env(settings, TrioClock(), KeyringHolder(), None)
    async with running(*kinds(env)) as system:
        with pytest.raises(NotFound):
            await system.ask(address, GetClient())
        stats = system.stats()
    assert (stats.activations, stats.live) == (0, 0)
    assert not settings.data_dir.exists()


async def test_client_actor_never_creates_a_missing_shard(tmp_path: Path) -> None:
    """A ClientActor opened on a shard key with no file fails to open instead of creating it."""
    settings = settings_for_tests(data_dir=tmp_path / "data")
    env = Env(settings, TrioClock(), KeyringHolder(), None)
    actor = ClientActor(env, "default", "0123456789abcdef0123")
    with pytest.raises(sqlite3.OperationalError):
        await actor.open()
    assert list(await trio.Path(tmp_path).iterdir()) == []


async def test_shutdown_closes_every_live_actor(tmp_path: Path) -> None:
    """When the system stops, every live actor closes its shard."""
    tally = Tally()
    async with running(counter_kind(tmp_path, tally)) as system:
        for key in "abc":
            await system.ask(counter(key), Add("x"))
    assert (tally.opens, tally.closes) == (3, 3)
    with pytest.raises(TemporarilyUnavailable):
        await system.ask(counter("a"), Add("x"))


@pytest.mark.parametrize("warm", [False, True])
async def test_shutdown_lets_a_message_in_progress_commit_before_closing(
    tmp_path: Path, warm: bool
) -> None:
    """Stopping the system does not cut a message half way: it commits whole, then the actor
    closes its shard; also when it runs on its asker's task (`warm`: the actor was idle)."""
    tally = Tally()
    shard = tmp_path / "c.sqlite"
    system = ActorSystem(ActorSettings(), [counter_kind(tmp_path, tally)])
    async with stoppable(system) as (outer, server):
        if warm:
            await system.ask(counter("c"), Add("warm-up"))
        outer.start_soon(system.ask, counter("c"), AddInTwoSteps("a", "b"))
        await trio.testing.wait_all_tasks_blocked()
        server.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert tally.closes == 0  # still inside the message
        assert (on_disk(shard, "a"), on_disk(shard, "b")) == (0, 0)
        tally.release.set()
    assert (on_disk(shard, "a"), on_disk(shard, "b")) == (1, 1)
    assert (tally.opens, tally.closes) == (1, 1)


async def test_an_ask_that_would_spawn_while_the_system_shuts_down_is_503_not_a_crash() -> None:
    """Once the system is stopping, an ask for an actor not yet live (a janitor's pass, a
    request in flight) is told the server is not running; it never spawns into the closing
    nursery (which raised RuntimeError and took the whole runtime down with it)."""
    system = ActorSystem(ActorSettings(), [SCRIPTED])
    release = trio.Event()

    async def held() -> str:
        await release.wait()
        return "done"

    async def quick() -> str:
        return "ran"

    async with stoppable(system) as (outer, server):
        outer.start_soon(system.ask, Address("default", "scripted", "busy"), Run(held))
        await trio.testing.wait_all_tasks_blocked()
        server.cancel()  # the busy actor's message keeps the system's nursery closing
        await trio.testing.wait_all_tasks_blocked()
        try:
            with pytest.raises(TemporarilyUnavailable):
                await system.ask(Address("default", "scripted", "new"), Run(quick))
        finally:
            release.set()


# --- concurrent kinds: actors that mostly wait on the network ----------------------------------

CONCURRENT = Kind("scripted", lambda _address: Scripted(), pinned=True, concurrent=True)


async def test_concurrent_kind_a_slow_message_does_not_hold_up_the_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Kind(concurrent=True): a message waiting on the network does not queue the others."""
    release = trio.Event()
    order: list[str] = []

    async def slow() -> str:
        await release.wait()
        order.append("slow")
        return "slow"

    async def fast() -> str:
        order.append("fast")
        release.set()
        return "fast"

    address = Address("default", "scripted", "net")
    async with running(CONCURRENT) as system, trio.open_nursery() as nursery:
        nursery.start_soon(system.ask, address, Run(slow))
        await trio.testing.wait_all_tasks_blocked()
        assert await system.ask(address, Run(fast)) == "fast"
    assert order == ["fast", "slow"]


async def test_concurrent_kind_a_crash_fails_only_its_message() -> None:
    """A non-OAuth exception answers server_error to its caller; the actor keeps serving."""

    async def crash() -> None:
        raise RuntimeError("boom")

    async def fine() -> str:
        return "ok"

    address = Address("default", "scripted", "net")
    async with running(CONCURRENT) as system:
        with pytest.raises(ServerError):
            await system.ask(address, Run(crash))
        assert await system.ask(address, Run(fine)) == "ok"
        assert system.stats().restarts == 0


async def test_concurrent_kind_shutdown_answers_the_messages_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At shutdown a caller still waiting is told the server is going away, not left hanging."""
    answers: list[type[BaseException]] = []

    async def forever() -> None:
        await trio.sleep_forever()

    async def caller(system: ActorSystem) -> None:
        try:
            await system.ask(Address("default", "scripted", "net"), Run(forever))
        except TemporarilyUnavailable as exc:
            answers.append(type(exc))

    system = ActorSystem(ActorSettings(), [CONCURRENT])
    async with trio.open_nursery() as callers, trio.open_nursery() as nursery:
        await nursery.start(system.run)
        callers.start_soon(caller, system)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert answers == [TemporarilyUnavailable]


# --- another process holding a shard's write lock ---------------------------------------------


async def test_write_waits_for_another_process_lock_off_the_event_loop(tmp_path: Path) -> None:
    """A write to a shard whose write lock another process holds (another worker) waits in a
    thread: the event loop keeps running other tasks, and the write lands after their COMMIT."""
    actor = Counter(tmp_path / "counter.sqlite", Tally())
    await actor.open()
    other = sqlite3.connect(tmp_path / "counter.sqlite", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO counter VALUES ('a', 10)")
        replies: list[int] = []

        async def add() -> None:
            replies.append(await actor.receive(Add("a")))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(add)
            # Reached only because the loop is free while the write waits (on the loop, SQLite
            # would sleep through its busy timeout, then fail).
            await trio.testing.wait_all_tasks_blocked()
            assert replies == []
            other.execute("COMMIT")
        assert replies == [11]
        busy_ms = actor.store.query("PRAGMA busy_timeout")[0][0]
        assert busy_ms == StorageSettings().busy_timeout_ms  # restored after the attempt
    finally:
        other.close()
        await actor.close()


def test_transactions_on_the_loop_run_no_busy_timeout_statements(tmp_path: Path) -> None:
    """The busy timeout is a PRAGMA statement: set when wait= changes, not per transaction."""
    store = Store(tmp_path / "s.sqlite", COUNTER, create=True)
    statements: list[str] = []
    try:
        with store.transaction(wait=False) as conn:
            _add(conn, "a")
        store.conn.set_trace_callback(statements.append)
        for _ in range(3):
            with store.transaction(wait=False) as conn:
                _add(conn, "a")
        assert not [s for s in statements if "busy_timeout" in s]
        assert store.query("PRAGMA busy_timeout") == [(0,)]
        with store.transaction() as conn:  # waiting again: the configured timeout
            _add(conn, "a")
        assert store.query("PRAGMA busy_timeout") == [(StorageSettings().busy_timeout_ms,)]
    finally:
        store.close()


def test_read_without_wait_raises_lock_busy(tmp_path: Path) -> None:
    """Store.read(wait=False), an actor's read on the loop, turns a lock another connection
    holds into LockBusy at once (no busy wait), and runs once it is let go."""
    store = Store(tmp_path / "s.sqlite", COUNTER, create=True, busy_timeout_ms=60_000)
    other = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)

    def locking() -> None:  # a statement that needs the write lock
        _add(store.conn, "a")

    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LockBusy):
            store.read(locking, wait=False)
        other.execute("COMMIT")
        store.read(locking, wait=False)
        assert store.query("SELECT value FROM counter") == [(1,)]
    finally:
        other.close()
        store.close()


def test_transaction_without_wait_raises_lock_busy(tmp_path: Path) -> None:
    """Store.transaction(wait=False) raises LockBusy at once, with nothing run, while another
    connection holds the write lock."""
    store = Store(tmp_path / "s.sqlite", COUNTER, create=True, busy_timeout_ms=60_000)
    other = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LockBusy), store.transaction(wait=False):
            raise AssertionError("the body must not run")
        other.execute("COMMIT")
        with store.transaction(wait=False) as conn:
            _add(conn, "a")
        assert store.query("SELECT value FROM counter") == [(1,)]
    finally:
        other.close()
        store.close()
