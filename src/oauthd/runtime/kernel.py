"""Spawn-on-demand actors with one message at a time, bounded mailboxes, eviction, supervision.

The contract (docs/architecture.md "Actors"):

- `ask(address, message)` spawns the actor on its first message and waits for its reply; a
  `Query[R]` or `Command[R]` (runtime/messages.py) replies an R.
- An actor handles one message at a time, in arrival order; `Actor.receive` is expected to run
  the message in one transaction and return only after it committed (the output gate).
- A caller that is cancelled does not abort its message: the message completes, shielded from
  cancellation, and the reply is dropped.
- A full mailbox answers `TemporarilyUnavailable` (503 with Retry-After) at once.
- An actor idle for `idle_timeout_s`, or the least recently used one when `max_live` actors are
  live, is evicted: its task ends and `Actor.close` releases its resources. State is on disk.
- A non-OAuth exception in `receive` fails that one message with `ServerError`, the traceback
  goes to the log, and the actor is replaced by a fresh one opened from disk.

The caller/actor hand-off uses trio's low-level park/reschedule rather than channels and events:
an ask is two task switches and no allocation beyond the message tuple and its reply slot. An
ask to an idle actor (opened, waiting for mail, nothing queued) skips even those: the message
runs on the asking task, with the cell marked busy so that others queue behind it, the actor's
task held parked and shielded (it neither takes mail nor is cancelled meanwhile), and a crash
supervised as in the actor's task (`_run_inline`). A cancelled caller's message then completes
on the caller's own task, which is cancelled once it is done: a handler that waits (another
process's write lock, fsync, PostgreSQL) holds its cancelled caller that long. An actor may
also offer `receive_now`, the message run to its end without waiting (no checkpoint, so
nothing can cancel it) or not at all (`NOT_NOW`): an inline message it answers needs no cancel
scope of its own, ~5 us of trio's work per ask; one it does not runs shielded as above.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import outcome
import trio

from oauthd.errors import NotFound, OAuthError, ServerError, TemporarilyUnavailable
from oauthd.runtime.messages import Message
from oauthd.settings import ActorSettings

__all__ = ["NOT_NOW", "Actor", "ActorSystem", "Address", "Kind", "SystemStats"]

log = logging.getLogger("oauthd.runtime")

R = TypeVar("R")

# What an actor's `receive_now(message)` answers when the message would have to wait (nothing
# of it done): the kernel then runs it with `receive`, shielded.
NOT_NOW: Any = object()


@dataclass(frozen=True, slots=True)
class Address:
    """Who an actor is: tenant, kind and key (docs/architecture.md "Actors")."""

    tenant: str
    kind: str
    key: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.kind}/{self.key}" if self.key else f"{self.tenant}/{self.kind}"


class Actor(Protocol):
    async def open(self) -> None:
        """Load state from disk; messages wait in the mailbox until this returns."""

    async def receive(self, message: Any) -> Any:
        """Handle one message and return its reply after its writes committed."""

    async def close(self) -> None:
        """Release what `open` acquired; called on eviction, restart and shutdown."""


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of actor: how to make one, and whether an address may exist at all."""

    name: str
    factory: Callable[[Address], Actor]
    exists: Callable[[Address], bool] | None = None  # None: every key is valid
    pinned: bool = False  # pinned actors are never evicted (singletons with timers)
    # Concurrent actors take their next message without waiting for the last reply: for
    # actors that mostly wait on the network. Their handlers must keep every transaction
    # free of awaits (a synchronous SQLite call cannot interleave), and a crash fails only
    # its own message: there is no restart while other messages are in flight.
    concurrent: bool = False


@dataclass(frozen=True, slots=True)
class SystemStats:
    live: int
    activations: int
    evictions: int
    restarts: int
    mailbox_depth: int


class _Reply:
    """Where an actor puts the answer for one parked caller."""

    __slots__ = ("abandoned", "task")

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.abandoned = False

    def abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self.abandoned = True  # the message still runs; its reply is dropped
        return trio.lowlevel.Abort.SUCCEEDED

    def send(self, result: outcome.Outcome[Any]) -> None:
        if not self.abandoned:
            self.abandoned = True
            trio.lowlevel.reschedule(self.task, result)


class _Cell:
    """One live actor: its mailbox and bookkeeping, owned by the system."""

    __slots__ = (
        "actor",
        "address",
        "busy",
        "closed",
        "closing",
        "gate",
        "kind",
        "last_used",
        "mailbox",
        "parked",
    )

    def __init__(self, address: Address, kind: Kind, now: float) -> None:
        self.address = address
        self.kind = kind
        self.actor: Actor | None = None  # once open() has returned, until it is closed
        self.gate: trio.CancelScope | None = None  # the actor task's scope (see _run_actor)
        self.mailbox: deque[tuple[Any, _Reply]] = deque()
        self.parked: trio.lowlevel.Task | None = None
        self.busy = True  # until open() has returned
        self.closing = False
        self.closed = trio.Event()  # set once the actor task has closed its resources
        self.last_used = now

    def idle(self) -> bool:
        """Whether the actor's task waits for mail with nothing in hand or queued: a message
        may then run on the asking task (`ActorSystem._run_inline`)."""
        return self.parked is not None and not (
            self.busy or self.mailbox or self.closing or self.kind.concurrent
        )

    def wake(self) -> None:
        task, self.parked = self.parked, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def _abort_park(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self.parked = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def wait_for_mail(self) -> None:
        self.parked = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort_park)


class ActorSystem:
    """Runs actors of registered kinds inside `run()`'s nursery."""

    def __init__(self, settings: ActorSettings, kinds: list[Kind]) -> None:
        self._settings = settings
        self._kinds = {kind.name: kind for kind in kinds}
        self._live: OrderedDict[Address, _Cell] = OrderedDict()
        # Each tenant's cells whose task has not finished closing: live, or evicted and still
        # closing their resources (retire_tenant waits for both).
        self._by_tenant: dict[str, set[_Cell]] = {}
        self._nursery: trio.Nursery | None = None
        self._activations = 0
        self._evictions = 0
        self._restarts = 0

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[ActorSystem] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve actors until cancelled; then every actor closes its resources."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._reap_idle)
                task_status.started(self)
                try:
                    await trio.sleep_forever()
                finally:
                    # Stopping: the nursery waits for its actors to close from here on, and
                    # an ask meanwhile (a janitor's pass, a request in flight) must not spawn
                    # into it: into a closing nursery an actor starts cancelled, into a
                    # closed one start_soon raises RuntimeError.
                    self._nursery = None
        finally:
            self._nursery = None

    # --- asking ------------------------------------------------------------------------------

    async def ask(self, address: Address, message: Message[R]) -> R:
        """Send `message` to the actor at `address` and wait for its reply."""
        cell = self._live.get(address)
        if cell is None or cell.closing:
            cell = self._spawn(address)
        else:
            self._live.move_to_end(address)
        if len(cell.mailbox) >= self._settings.mailbox_size:
            raise TemporarilyUnavailable(
                "the server is busy, retry later",
                detail=f"mailbox of {address} is full",
                retry_after_s=self._settings.retry_after_s,
            )
        if cell.idle():
            answer: R = await self._run_inline(cell, message)
            return answer
        # No timestamp here: a cell with mail is never evicted, and the actor stamps
        # last_used when it finishes the message.
        reply = _Reply(trio.lowlevel.current_task())
        cell.mailbox.append((message, reply))
        cell.wake()
        result: R = await trio.lowlevel.wait_task_rescheduled(reply.abort)  # what receive() gave
        return result

    async def _run_inline(self, cell: _Cell, message: Any) -> Any:
        """Handle `message` on the asking task, the actor being idle: no task switch. The
        contract holds as in the actor's task: the cell is busy (others queue behind it, in
        order, and it is not evicted), the actor's task is kept from its mail (its park is
        held here) and from cancellation (its gate shielded: shutdown waits for this message
        as for any other), the message runs shielded from the asker's cancellation, and a
        crash restarts the actor from disk. Mail queued meanwhile goes to the actor's task."""
        actor, gate, parked = cell.actor, cell.gate, cell.parked
        assert actor is not None  # parked for mail: opened, and its gate made
        assert gate is not None
        cell.busy, cell.parked, gate.shield = True, None, True
        receive_now = getattr(actor, "receive_now", None)
        try:
            try:
                reply = NOT_NOW if receive_now is None else receive_now(message)
                if reply is NOT_NOW:
                    with trio.CancelScope(shield=True):
                        reply = await actor.receive(message)
            except OAuthError:
                raise
            except Exception:
                log.exception("actor %s crashed on %s", cell.address, type(message).__name__)
                with trio.CancelScope(shield=True):
                    cell.actor = await self._restart(cell, actor)
                raise ServerError("internal error", detail="actor crashed") from None
            else:
                return reply
        finally:
            cell.busy, cell.parked, gate.shield = False, parked, False
            cell.last_used = trio.current_time()
            if cell.mailbox or cell.actor is None:
                cell.wake()
            await trio.lowlevel.checkpoint_if_cancelled()

    def is_live(self, address: Address) -> bool:
        return address in self._live

    async def retire(self, address: Address) -> bool:
        """Evict the actor at `address` and wait until it has closed its resources; True when
        none is live any more, False when it is busy or has mail (try again later). A new
        message after this spawns a fresh actor, if its kind still says it exists."""
        cell = self._live.get(address)
        if cell is None:
            return True
        if not self._evictable(cell):
            return False
        self._evict(cell)
        await cell.closed.wait()
        return True

    async def retire_tenant(self, tenant: str) -> None:
        """Stop the actors of `tenant` live now, pinned ones too, each once it has no message
        in hand or in its mailbox, and wait until they have closed their resources (a tenant
        changed, disabled or removed: its shards are closed before its directory goes).
        Actors spawned meanwhile, by a request for the tenant as it is now, are left alone."""
        waiting = list(self._by_tenant.get(tenant, ()))
        while waiting:
            busy = []
            for cell in waiting:
                # Closing already (evicted, or its task ended: a crash it could not reopen
                # from, shutdown): waited for all the same, its shard may still be closing.
                if not cell.closing and (cell.busy or cell.mailbox):
                    busy.append(cell)
                    continue
                if not cell.closing:
                    self._evict(cell)
                await cell.closed.wait()
            waiting = busy
            if waiting:
                await trio.sleep(0.01)  # their messages finish first

    def stats(self) -> SystemStats:
        return SystemStats(
            live=len(self._live),
            activations=self._activations,
            evictions=self._evictions,
            restarts=self._restarts,
            mailbox_depth=sum(len(c.mailbox) for c in self._live.values()),
        )

    # --- spawning, eviction ------------------------------------------------------------------

    def _spawn(self, address: Address) -> _Cell:
        if self._nursery is None:
            raise TemporarilyUnavailable("the server is not running", detail="actor system down")
        kind = self._kinds.get(address.kind)
        if kind is None:
            raise NotFound("no such actor", detail=f"unknown kind {address.kind!r}")
        if kind.exists is not None and not kind.exists(address):
            raise NotFound("no such actor", detail=f"{address} does not exist")  # no spawn
        self._evict_over_cap()
        cell = _Cell(address, kind, trio.current_time())
        self._live[address] = cell
        self._by_tenant.setdefault(address.tenant, set()).add(cell)
        self._activations += 1
        self._nursery.start_soon(self._run_actor, cell, name=f"actor {address}")
        return cell

    def _evictable(self, cell: _Cell) -> bool:
        return not (cell.busy or cell.mailbox or cell.kind.pinned or cell.closing)

    def _unlist(self, cell: _Cell) -> None:
        """No message reaches `cell` any more (the next spawns afresh): it is closing."""
        del self._live[cell.address]
        cell.closing = True

    def _evict(self, cell: _Cell) -> None:
        self._unlist(cell)
        self._evictions += 1
        cell.wake()

    def _evict_over_cap(self) -> None:
        excess = len(self._live) - self._settings.max_live + 1
        if excess <= 0:
            return
        victims = []
        for cell in self._live.values():  # least recently used first
            if self._evictable(cell):
                victims.append(cell)
                if len(victims) == excess:
                    break
        for cell in victims:
            self._evict(cell)

    async def _reap_idle(self) -> None:
        idle_s = self._settings.idle_timeout_s
        while True:
            await trio.sleep(max(idle_s / 4, 0.01))
            cutoff = trio.current_time() - idle_s
            stale = [c for c in self._live.values() if c.last_used <= cutoff and self._evictable(c)]
            for cell in stale:
                self._evict(cell)

    # --- the actor's own task ----------------------------------------------------------------

    async def _run_actor(self, cell: _Cell) -> None:
        if cell.kind.concurrent:
            await self._run_concurrent(cell)
            return
        # One scope for the actor's life, shielded only while a message runs: a message never
        # stops half way, while waiting for mail stays cancellable (shutdown, eviction).
        # Toggling one scope costs far less than entering a new shielded scope per message.
        gate = cell.gate = trio.CancelScope()
        cell.actor = await self._open(cell)
        try:
            with gate:
                while cell.actor is not None:
                    mail = await self._next_mail(cell)
                    if mail is None:
                        break
                    message, reply = mail
                    cell.busy = True
                    gate.shield = True
                    cell.actor = await self._deliver(cell, cell.actor, message, reply)
                    gate.shield = False
                    cell.busy = False
                    cell.last_used = trio.current_time()
                    if cell.mailbox:  # more waiting: let other tasks run between messages
                        await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            with trio.CancelScope(shield=True):
                await self._shut(cell, cell.actor)

    @staticmethod
    async def _next_mail(cell: _Cell) -> tuple[Any, _Reply] | None:
        """The next message, waiting for one; None once the actor is closing and has none,
        or is gone (a message run inline crashed it and it failed to reopen)."""
        while not cell.mailbox or cell.actor is None:
            if cell.closing or cell.actor is None:
                return None
            await cell.wait_for_mail()
        return cell.mailbox.popleft()

    async def _run_concurrent(self, cell: _Cell) -> None:
        """Each message in its own task. Eviction waits for the ones in flight; shutdown
        cancels them, and their callers are told the server is shutting down."""
        actor = cell.actor = await self._open(cell)
        try:
            async with trio.open_nursery() as inflight:
                while actor is not None:
                    mail = await self._next_mail(cell)
                    if mail is None:
                        break
                    message, reply = mail
                    inflight.start_soon(self._deliver_one, cell, actor, message, reply)
                    cell.last_used = trio.current_time()
        finally:
            with trio.CancelScope(shield=True):
                await self._shut(cell, actor)

    @staticmethod
    async def _deliver_one(cell: _Cell, actor: Actor, message: Any, reply: _Reply) -> None:
        try:
            result = await actor.receive(message)
        except OAuthError as exc:
            reply.send(outcome.Error(exc))
        except Exception:
            log.exception("actor %s failed on %s", cell.address, type(message).__name__)
            reply.send(outcome.Error(ServerError("internal error", detail="actor crashed")))
        else:
            reply.send(outcome.Value(result))
        finally:  # cancelled at shutdown: the caller still gets an answer (a no-op if it had one)
            reply.send(outcome.Error(TemporarilyUnavailable("the server is shutting down")))

    async def _open(self, cell: _Cell) -> Actor | None:
        try:  # the factory too: a kind that cannot make its actor must not crash the system
            actor = cell.kind.factory(cell.address)
            with trio.CancelScope(shield=True):
                await actor.open()
        except Exception as exc:
            log.exception("actor %s failed to open", cell.address)
            detail = f"actor {cell.address} failed to open: {exc}"
            self._fail_queued(cell, ServerError("internal error", detail=detail))
            return None
        cell.busy = False
        return actor

    async def _deliver(
        self, cell: _Cell, actor: Actor, message: Any, reply: _Reply
    ) -> Actor | None:
        try:
            result = await actor.receive(message)  # shielded by the caller's gate
        except OAuthError as exc:
            reply.send(outcome.Error(exc))
        except Exception:
            log.exception("actor %s crashed on %s", cell.address, type(message).__name__)
            reply.send(outcome.Error(ServerError("internal error", detail="actor crashed")))
            return await self._restart(cell, actor)
        else:
            reply.send(outcome.Value(result))
        return actor

    async def _restart(self, cell: _Cell, actor: Actor) -> Actor | None:
        """Replace a crashed actor with a fresh one loaded from disk."""
        self._restarts += 1
        with trio.CancelScope(shield=True):
            await self._close_quietly(cell, actor)
        cell.busy = True
        return await self._open(cell)

    async def _shut(self, cell: _Cell, actor: Actor | None) -> None:
        if not cell.closing:  # its task ended by itself: no eviction unlisted it
            self._unlist(cell)
        self._fail_queued(cell, TemporarilyUnavailable("the server is shutting down"))
        if actor is not None:
            await self._close_quietly(cell, actor)
        cells = self._by_tenant[cell.address.tenant]
        cells.discard(cell)
        if not cells:
            del self._by_tenant[cell.address.tenant]
        cell.closed.set()

    @staticmethod
    async def _close_quietly(cell: _Cell, actor: Actor) -> None:
        try:
            await actor.close()
        except Exception:
            log.exception("actor %s failed to close", cell.address)

    @staticmethod
    def _fail_queued(cell: _Cell, error: OAuthError) -> None:
        while cell.mailbox:
            _message, reply = cell.mailbox.popleft()
            reply.send(outcome.Error(error))
