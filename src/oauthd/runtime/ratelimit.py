"""Rate limits: the generic cell rate algorithm (GCRA), one float per key, in this process.

`requests` per `window_s` means a burst of `requests` is admitted at once, and after that one
more every `window_s / requests` seconds; a key left alone for `window_s` has its whole burst
back. Each key stores only its "theoretical arrival time", so a limiter costs a few dozen bytes
per key and `max_keys` bounds it: past the cap, the key touched longest ago is forgotten (which
only ever gives that key a fresh budget; it never blocks anyone else).

Why not the `limits` package: its MemoryStorage reads `time.time()` directly (no injectable
clock, so tests would sleep), starts `threading.Timer` threads to expire keys, and has no cap
on the number of keys, which an attacker rotating addresses would grow without end.

Limits are per process: N workers admit up to N times the configured rate in total.

A guess that takes a while to judge (a password checked by argon2 in a thread, a user code
looked up in the directory, a client secret checked by the client's actor) is `reserve`d before
the judging starts: it counts as a failure while in flight, so concurrent guesses see each other
and no more than the limit are ever judged, and it is given back once it turns out to have
succeeded. A request that only the attempts in flight stand in the way of waits for them to be
judged rather than being refused, so a burst of valid requests is never refused for its size.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import trio

from oauthd.runtime.clock import Clock

__all__ = ["Attempt", "Limiter", "reserve"]

EPSILON = 1e-9  # float sums of window_s / requests must not refuse the last of a burst
MAX_KEY = 80  # longer keys are stored as their SHA-256, so memory per key stays small


def _short(key: str) -> str:
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class Limiter:
    """`requests` per `window_s` for each key. `hit` admits and counts; `blocked` only asks."""

    def __init__(self, requests: int, window_s: float, clock: Clock, max_keys: int = 100_000):
        if requests < 1 or not window_s > 0 or max_keys < 1:
            raise ValueError("a rate limit needs requests >= 1, window_s > 0 and max_keys >= 1")
        self.requests = requests
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._interval = window_s / requests
        self._tolerance = window_s - self._interval
        self._arrival: OrderedDict[str, float] = OrderedDict()  # key -> theoretical arrival
        self._in_flight: dict[str, int] = {}  # key -> reserved attempts not yet judged
        # Reservations waiting for an attempt of their key to be judged, one lot per key:
        # each judgment wakes one (not every waiter of the limiter, which woke ~12 tasks a
        # request for a key with 32 requests in flight).
        self._waiting: dict[str, trio.lowlevel.ParkingLot] = {}

    def _wait(self, key: str, now: float, in_flight: bool = True) -> float:
        """Seconds before `key` may be counted once more (0 or less: now), counting the
        attempts in flight as if they had failed (unless `in_flight` is False)."""
        arrival = self._arrival.get(key)
        if arrival is not None and arrival <= now:  # fully recovered: a fresh key is free
            del self._arrival[key]
            arrival = None
        pending = self._in_flight.get(key, 0) * self._interval if in_flight else 0.0
        if arrival is None and not pending:
            return 0.0
        return (now if arrival is None else arrival) + pending - now - self._tolerance

    def _hold(self, key: str) -> None:
        key = _short(key)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def _let_go(self, key: str) -> None:
        key = _short(key)
        left = self._in_flight.pop(key) - 1
        if left:
            self._in_flight[key] = left
        self._wake_one(key)

    def _wake_one(self, key: str) -> None:
        key = _short(key)
        lot = self._waiting.get(key)
        if lot is not None:
            lot.unpark()
            if not lot:
                del self._waiting[key]

    async def _wait_for_judgment(self, key: str) -> None:
        """Park until an attempt under `key` is judged. A waiter woken that does not take
        the place it was woken for passes the wake on (`reserve`), as does one cancelled."""
        key = _short(key)
        lot = self._waiting.setdefault(key, trio.lowlevel.ParkingLot())
        try:
            await lot.park()
        except BaseException:
            self._wake_one(key)  # perhaps woken just before: the next waiter may go instead
            raise

    def blocked(self, *keys: str, in_flight: bool = True) -> int | None:
        """Whole seconds until every one of `keys` may be counted again, or None if all may
        be now. Counts nothing."""
        now = self.clock.now()
        wait = 0.0
        for key in keys:
            wait = max(wait, self._wait(_short(key), now, in_flight))
        return max(1, math.ceil(wait)) if wait > EPSILON else None

    def _verdict(self, key: str) -> tuple[int | None, bool]:
        """For `reserve`, from one reading of the clock: the seconds `key` must wait if its
        failures alone are over the limit (else None), and whether the attempts in flight
        take what is left."""
        key, now = _short(key), self.clock.now()
        alone = self._wait(key, now, in_flight=False)
        if alone > EPSILON:
            return max(1, math.ceil(alone)), True
        return None, self._wait(key, now) > EPSILON

    def record(self, *keys: str) -> None:
        """Count one event for each key, allowed or not (a failure that already happened)."""
        now = self.clock.now()
        for key in map(_short, keys):
            arrival = max(self._arrival.pop(key, now), now)
            self._arrival[key] = arrival + self._interval  # most recent last
        while len(self._arrival) > self.max_keys:
            self._arrival.popitem(last=False)

    def hit(self, *keys: str) -> int | None:
        """Count one request for each key if none is over its limit, and return None; else
        count nothing and return the seconds to wait (Retry-After)."""
        wait = self.blocked(*keys)
        if wait is None:
            self.record(*keys)
        return wait

    def schedule(self, key: str, within_s: float) -> float | None:
        """Count one request for `key` at the earliest moment it fits, if that is at most
        `within_s` from now, and return the seconds until then (0.0: now); else count nothing
        and return None. Requests scheduled so are served in the order they came, each
        `window_s / requests` after the last: a queue, as nginx's limit_req with a delay."""
        key = _short(key)
        wait = max(0.0, self._wait(key, self.clock.now(), in_flight=False))
        if wait > within_s + EPSILON:
            return None
        self.record(key)
        return wait if wait > EPSILON else 0.0

    async def reserve(self, *keys: str) -> Attempt | int:
        """`reserve` one attempt under each of `keys` of this limiter."""
        return await reserve(*((self, key) for key in keys))

    def __len__(self) -> int:
        return len(self._arrival)


class Attempt:
    """An attempt reserved under some (limiter, key) pairs and not yet judged. `succeeded`
    gives it back; `failed`, or leaving its `with` block undecided, counts it as a failure."""

    __slots__ = ("_holds", "_open")

    def __init__(self, holds: tuple[tuple[Limiter, str], ...]) -> None:
        self._holds = holds
        self._open = True

    def succeeded(self) -> None:
        self._close(failed=False)

    def failed(self) -> None:
        self._close(failed=True)

    def _close(self, *, failed: bool) -> None:
        if not self._open:
            return
        self._open = False
        for limit, key in self._holds:
            if failed:
                limit.record(key)
            limit._let_go(key)

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.failed()  # a no-op once judged


async def reserve(*holds: tuple[Limiter, str]) -> Attempt | int:
    """Reserve one attempt under each (limiter, key) once none is over its limit counting the
    attempts in flight, and return it; while only attempts in flight stand in the way, wait
    for them to be judged. If failures alone are over a limit, reserve nothing and return the
    seconds to wait."""
    woken: tuple[Limiter, str] | None = None  # the (limiter, key) whose judgment woke us
    while True:
        wait = 0
        crowded: tuple[Limiter, str] | None = None  # the first hold that attempts fill
        for limit, key in holds:
            refused, full = limit._verdict(key)
            if refused is not None:
                wait = max(wait, refused)
            elif full and crowded is None:
                crowded = (limit, key)
        if wait:
            if woken is not None:  # refused: the others waiting there are judged in turn
                woken[0]._wake_one(woken[1])
            return wait
        if crowded is None:
            break
        if woken is not None and woken != crowded:  # waiting elsewhere: pass the place on
            woken[0]._wake_one(woken[1])
        await crowded[0]._wait_for_judgment(crowded[1])
        woken = crowded
    for limit, key in holds:
        limit._hold(key)
    return Attempt(holds)
