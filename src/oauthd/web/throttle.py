"""A small in-memory sliding window of failures per key, for the /device code-entry page
(RFC 8628 §5.1: user codes are short, so guessing them is throttled; RATE-4).

Each process keeps its own window, and the keys are the browser cookie and the client IP as
the server sees it (behind a proxy, that is the proxy's unless Hypercorn is told to trust
forwarded headers). Memory is bounded by `max_keys`: the oldest key is forgotten first."""

from __future__ import annotations

import math
from collections import deque

from oauthd.runtime import Clock

__all__ = ["FailureWindow"]


class FailureWindow:
    def __init__(self, limit: int, window_s: float, clock: Clock, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, keys: tuple[str, ...]) -> int | None:
        """Seconds until any of `keys` may try again, or None if none is blocked."""
        now = self.clock.now()
        waits = [
            times[0] + self.window_s - now
            for times in (self._recent(key, now) for key in keys)
            if len(times) >= self.limit
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def record(self, keys: tuple[str, ...]) -> None:
        now = self.clock.now()
        for key in keys:
            times = self._recent(key, now)
            if key not in self._failures:
                if len(self._failures) >= self.max_keys:
                    del self._failures[next(iter(self._failures))]
                self._failures[key] = times
            times.append(now)
