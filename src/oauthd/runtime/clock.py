"""Wall-clock time, injected so tests can run a year of key rotation on trio's autojump clock."""

from __future__ import annotations

import time
from typing import Protocol

import trio


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    """The machine's wall clock: what a server uses."""

    def now(self) -> float:
        return time.time()


class TrioClock:
    """Wall time that advances with trio's clock, so `autojump_clock` moves it in tests. It
    can be read from a worker thread of the run too (a transaction that had to wait, every
    transaction on PostgreSQL), by asking the loop."""

    def __init__(self, epoch: float | None = None) -> None:
        self._epoch = time.time() if epoch is None else epoch
        self._start = trio.current_time()

    def now(self) -> float:
        try:
            current = trio.current_time()
        except RuntimeError:  # not on the loop: in a thread of trio.to_thread
            current = trio.from_thread.run_sync(trio.current_time)
        return self._epoch + (current - self._start)
