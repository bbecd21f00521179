"""The base of actors that own one SQLite shard: each message is one transaction, committed
before the reply leaves (the output gate). Handlers are plain synchronous functions, so a
message can never be interrupted half way. They run on the event loop (a WAL commit without
fsync costs microseconds, a thread hop more) except when something would wait: in fsync-per-
commit mode every handler runs in a thread, because there the commit waits for the disk; and a
write whose shard is locked by another process (another worker on the same client) is retried
in a thread, where SQLite's busy wait stalls no other request.

The actor still handles one message at a time: `receive` returns only when the thread is done,
and a thread is never abandoned, so a cancelled caller cannot cut a transaction short.
Closing a shard runs in a thread too (see `close`).

Audit events a handler queues with `audit()` are written after its transaction committed, and
dropped if it rolled back: the log never says done what the database does not hold."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, TypeVar

import trio

from oauthd import audit
from oauthd.errors import InvalidRequest, OAuthError
from oauthd.runtime import Command, Message, Query
from oauthd.settings import StorageSettings
from oauthd.storage import LockBusy, Schema, Store

__all__ = ["CommitThenRaise", "ShardActor", "command", "committed", "query"]

A = TypeVar("A")  # what a handler works on: the actor, or the context it implements
M = TypeVar("M", bound=Message[Any])
R = TypeVar("R")
T = TypeVar("T")
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


async def committed(storage: StorageSettings, run: Callable[[bool], T]) -> T:
    """Run `run(wait)`, one synchronous transaction, where it stalls nothing: on the event loop
    with wait=False when no lock is held elsewhere, in a thread when it must wait (another
    process holds a lock of the shard: LockBusy, nothing committed) and in fsync mode
    (the commit waits for the disk). The thread is never abandoned, so a cancelled caller
    cannot cut a transaction short."""
    if storage.fsync:
        return await trio.to_thread.run_sync(run, True)
    try:
        return run(False)
    except LockBusy:
        return await trio.to_thread.run_sync(run, True)


class ShardActor:
    """A subclass declares its `schema` and its handlers: methods marked `@command` or `@query`
    in its own body, and the marked functions of the modules in `handler_modules`, each taking
    the actor as its first argument. A message type with two handlers is refused at import,
    so no handler's meaning depends on the order in which they are listed."""

    schema: ClassVar[Schema]
    handler_modules: ClassVar[tuple[ModuleType, ...]] = ()
    _handlers: ClassVar[dict[type[Any], tuple[Handler, bool]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
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

    def __init__(
        self,
        path: Path,
        storage: StorageSettings,
        *,
        create: bool,
        observe: Observer | None = None,
    ) -> None:
        self._path = path
        self._storage = storage
        self._create = create
        self._store: Store | None = None
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
    def store(self) -> Store:
        assert self._store is not None, "actor used before open()"
        return self._store

    async def open(self) -> None:
        self._store = Store(
            self._path,
            self.schema,
            create=self._create,
            fsync=self._storage.fsync,
            busy_timeout_ms=self._storage.busy_timeout_ms,
        )
        self._events = []
        self.loaded()
        self._committed()

    def loaded(self) -> None:
        """Hook: fill in-memory caches from the freshly opened shard."""

    async def receive(self, message: Any) -> Any:
        entry = self._handlers.get(type(message))
        if entry is None:
            raise InvalidRequest("unsupported message", detail=type(message).__name__)
        return await committed(self._storage, lambda wait: self._run(entry, message, wait=wait))

    def _run(self, entry: tuple[Handler, bool], message: Any, *, wait: bool = True) -> Any:
        handler, writes = entry
        self._events = []  # a message that raised left its events unwritten
        if not writes:
            with self.store.reading(wait=wait):
                result = handler(self, message)
            self._committed()
            return result
        failure: OAuthError | None = None
        with self.store.transaction(wait=wait):
            try:
                result = handler(self, message)
            except CommitThenRaise as outcome:
                failure = outcome.error  # leave the block normally: COMMIT, then answer
        self._committed()
        if failure is not None:
            raise failure
        return result

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            # The last connection to a WAL file checkpoints it, fsyncs and deletes its -wal
            # and -shm as it closes: ~5 ms on a busy VM, which on the loop would stall every
            # request in flight at each eviction (a tenant dropped, an LRU victim).
            await trio.to_thread.run_sync(store.close)
