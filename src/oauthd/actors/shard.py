"""The base of actors that own one shard: each message is one transaction, committed before
the reply leaves (the output gate). Handlers are plain synchronous functions over the actor's
store (`storage/seam.py`), so a message can never be interrupted half way; the store's `run`
decides where the transaction runs (SQLite: on the event loop unless it must wait, in a thread
when it must; see `storage/embedded.py`).

The actor still handles one message at a time: `receive` returns only when its transaction is
done, and a thread is never abandoned, so a cancelled caller cannot cut a transaction short.
Closing a shard runs in a thread too (see `close`).

Audit events a handler queues with `audit()` are written after its transaction committed, and
dropped if it rolled back: the log never says done what the database does not hold."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar, Generic, TypeVar

import trio

from oauthd import audit
from oauthd.errors import InvalidRequest, OAuthError
from oauthd.runtime import NOT_NOW, Command, Message, Query
from oauthd.storage import LockBusy, Ordered

__all__ = ["CommitThenRaise", "ShardActor", "command", "query"]

A = TypeVar("A")  # what a handler works on: the actor, or the context it implements
M = TypeVar("M", bound=Message[Any])
R = TypeVar("R")
S = TypeVar("S", bound=Ordered)  # the store an actor's handlers work on
H = TypeVar("H", bound=Callable[..., Any])
Handler = Callable[[Any, Any], Any]
Observer = Callable[[str, Mapping[str, object]], None]


class CommitThenRaise(Exception):
    """Raised by a handler whose writes must stand although the caller gets an error, e.g.
    revoking a token family when a used code is replayed (OAuth 2.1 §4.1.3)."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.code)
        self.error = error


def command(
    message_type: type[Command[R]],
) -> Callable[[Callable[[A, M], R]], Callable[[A, M], R]]:
    """Mark a handler that may write: it runs inside BEGIN IMMEDIATE ... COMMIT. mypy checks
    that it returns the reply its message names."""

    def mark(fn: Callable[[A, M], R]) -> Callable[[A, M], R]:
        return _marked(fn, message_type, writes=True)

    return mark


def query(
    message_type: type[Query[R]],
) -> Callable[[Callable[[A, M], R]], Callable[[A, M], R]]:
    """Mark a handler that only reads: no write lock is taken. mypy checks that it returns
    the reply its message names."""

    def mark(fn: Callable[[A, M], R]) -> Callable[[A, M], R]:
        return _marked(fn, message_type, writes=False)

    return mark


def _marked(fn: H, message_type: type[Message[Any]], *, writes: bool) -> H:
    """Mark `fn` as the handler of `message_type`, for ShardActor.__init_subclass__. mypy
    checks its reply; its message parameter is checked here, as mypy cannot tie it to the
    marker's argument: the last one must be annotated with the message type."""
    taken = list(inspect.signature(fn).parameters.values())[-1].annotation
    if getattr(taken, "__name__", taken) != message_type.__name__:
        raise TypeError(f"{fn.__qualname__} handles {message_type.__name__}, takes {taken}")
    fn.__oauthd_handles__ = (message_type, writes)  # type: ignore[attr-defined]  # a marker
    return fn


class ShardActor(Generic[S]):
    """A subclass is made with the opener of its store, and declares its handlers: methods
    marked `@command` or `@query` in its own body, and the marked functions of the modules in
    `handler_modules`, each taking the actor as its first argument. A message type with two
    handlers is refused at import, so no handler's meaning depends on the order in which they
    are listed."""

    handler_modules: ClassVar[tuple[ModuleType, ...]] = ()
    loads_writing: ClassVar[bool] = False  # whether `loaded` may write (its transaction's kind)
    _handlers: ClassVar[dict[type[Any], tuple[Handler, bool]]] = {}
    _receives_now: ClassVar[bool] = True  # False: a subclass's own `receive` sees every message

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._receives_now = cls.receive is ShardActor.receive
        handlers = dict(cls._handlers)
        sources = [vars(module) for module in cls.handler_modules] + [vars(cls)]
        for value in {id(v): v for source in sources for v in source.values()}.values():
            marker = getattr(value, "__oauthd_handles__", None)
            if marker is None:
                continue
            if marker[0] in handlers and handlers[marker[0]][0] is not value:
                raise TypeError(f"{cls.__name__}: two handlers for {marker[0].__name__}")
            handlers[marker[0]] = (value, marker[1])
        cls._handlers = handlers

    def __init__(self, open_store: Callable[[], S], *, observe: Observer | None = None) -> None:
        self._open_store = open_store
        self._store: S | None = None
        self._observe = observe  # sees each committed event too (metrics)
        self._events: list[tuple[str, audit.AuditFields]] = []

    def audit(self, event: str, **fields: str | int | bool) -> None:
        """Queue an audit event: written once this message's writes have committed."""
        audit.check_fields(event, fields)
        self._events.append((event, fields))

    def _committed(self) -> None:
        events, self._events = self._events, []
        for event, fields in events:
            audit.write(event, fields)
            if self._observe is not None:
                self._observe(event, fields)

    @property
    def store(self) -> S:
        assert self._store is not None, "actor used before open()"
        return self._store

    async def open(self) -> None:
        self._store = self._open_store()
        self._events = []
        if self.loads_writing and await self._store.run(self.loaded_by_reading, writes=False):
            return
        await self._store.run(self._load, writes=self.loads_writing)
        self._committed()

    def _load(self) -> None:
        self._events = []  # a run that raised (or ran again) left its events unwritten
        self.loaded()

    def loaded(self) -> None:
        """Hook: fill in-memory caches from the freshly opened shard, inside a transaction
        (a writing one if `loads_writing`)."""

    def loaded_by_reading(self) -> bool:
        """Hook of an actor whose `loaded` may write: fill the caches from reads alone and
        answer True when there is nothing to write, so that opening takes no write lock (which
        would wait for, and hold up, every other process's writer); False runs `loaded` in a
        write transaction. It must write nothing and queue no audit event."""
        return False

    async def receive(self, message: Any) -> Any:
        handler, writes = self._handler(message)
        return self._answer(
            await self.store.run(lambda: self._handle(handler, message), writes=writes)
        )

    def receive_now(self, message: Any) -> Any:
        """`receive` when the store runs the message where it is asked, without waiting
        (`run_now`): the kernel then needs no cancel scope around it (`NOT_NOW` otherwise,
        nothing run or all of it rolled back, and the kernel calls `receive`)."""
        if not self._receives_now:
            return NOT_NOW
        handler, writes = self._handler(message)
        try:
            done = self.store.run_now(lambda: self._handle(handler, message), writes=writes)
        except LockBusy:
            return NOT_NOW
        return self._answer(done)

    def _handler(self, message: Any) -> tuple[Handler, bool]:
        entry = self._handlers.get(type(message))
        if entry is None:
            raise InvalidRequest("unsupported message", detail=type(message).__name__)
        return entry

    def _answer(self, done: tuple[Any, OAuthError | None]) -> Any:
        """The reply of a committed message: its audit events written, then its result or
        the error it committed before raising."""
        result, failure = done
        self._committed()
        if failure is not None:
            raise failure
        return result

    def _handle(self, handler: Handler, message: Any) -> tuple[Any, OAuthError | None]:
        """One run of the handler inside the transaction; a `CommitThenRaise` leaves it
        normally, so its writes commit, and is answered once they have."""
        self._events = []  # a run that raised (or ran again) left its events unwritten
        try:
            return handler(self, message), None
        except CommitThenRaise as outcome:
            return None, outcome.error

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is None:
            return
        if store.closes_slowly:
            # The last connection to a WAL file checkpoints it, fsyncs and deletes its -wal
            # and -shm as it closes: ~5 ms on a busy VM, which on the loop would stall every
            # request in flight at each eviction (a tenant dropped, an LRU victim).
            await trio.to_thread.run_sync(store.close)
        else:  # a rollback journal's (the keys shard's): quicker than a thread's hand-off
            store.close()
