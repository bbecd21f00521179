"""The rate limiter (GCRA, `runtime.ratelimit`) and client-IP derivation (`web.throttle`)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from oauthd.runtime import Attempt, Limiter, reserve
from oauthd.web.throttle import client_ip, ip_key


class FixedClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t


def test_burst_of_n_is_admitted_then_one_per_interval() -> None:
    """RATE-7: N per window as a burst, then Retry-After is the time to the next slot."""
    clock = FixedClock()
    limit = Limiter(5, 60, clock)
    assert [limit.hit("k") for _ in range(5)] == [None] * 5
    assert limit.hit("k") == 12
    clock.t += 11.5
    assert limit.hit("k") == 1  # rounded up: never a Retry-After of 0
    clock.t += 0.5
    assert limit.hit("k") is None
    assert limit.hit("k") == 12


def test_schedule_queues_past_the_burst_up_to_its_bound_in_arrival_order() -> None:
    """TENANT-1: past the burst a request is counted at its turn, one interval after the last
    queued, while that turn is within the bound; past it nothing is counted."""
    clock = FixedClock()
    limit = Limiter(4, 2, clock)  # a burst of 4, then one every 0.5 s
    assert [limit.schedule("k", 1.0) for _ in range(4)] == [0.0] * 4
    assert [limit.schedule("k", 1.0) for _ in range(3)] == [0.5, 1.0, None]
    assert limit.blocked("k") == 2  # the queue's two turns are counted: 1.5 s to the next
    clock.t += 1.0
    assert limit.schedule("k", 1.0) == 0.5
    assert limit.schedule("other", 0.0) == 0.0  # keys are independent


def test_a_key_left_alone_for_the_window_gets_its_whole_burst_back() -> None:
    clock = FixedClock()
    limit = Limiter(3, 7, clock)  # 7/3 is not exact in binary: the last of a burst still fits
    for _ in range(3):
        assert limit.hit("k") is None
    clock.t += 7
    assert [limit.hit("k") for _ in range(4)] == [None, None, None, 3]


def test_keys_are_independent_and_refusals_count_nothing() -> None:
    """RATE-6: one key over its limit does not touch another's; a refused hit on several
    keys counts on none of them."""
    clock = FixedClock()
    limit = Limiter(2, 10, clock)
    limit.hit("a")
    limit.hit("a")
    assert limit.hit("a", "b") is not None
    assert limit.hit("b") is None
    assert limit.hit("b") is None  # the refused ("a", "b") hit did not count on b


def test_blocked_asks_without_counting_and_record_counts_anyway() -> None:
    clock = FixedClock()
    limit = Limiter(2, 10, clock)
    assert limit.blocked("k") is None
    limit.record("k")
    limit.record("k")
    assert limit.blocked("k") == 5
    limit.record("k")  # a failure that happened while blocked pushes the wait out
    assert limit.blocked("k") == 10


def test_memory_is_bounded_by_forgetting_the_least_recently_seen_key() -> None:
    """An attacker rotating keys costs at most max_keys entries."""
    clock = FixedClock()
    limit = Limiter(1, 60, clock, max_keys=100)
    limit.hit("victim")
    for i in range(1000):
        limit.hit(f"rotating-{i}")
        assert len(limit) <= 100
    assert limit.blocked("rotating-999") is not None
    assert limit.blocked("victim") is None  # forgotten: only ever a fresh budget


def test_recovered_keys_are_dropped() -> None:
    clock = FixedClock()
    limit = Limiter(2, 10, clock)
    limit.hit("k")
    clock.t += 10
    assert limit.blocked("k") is None
    assert len(limit) == 0


async def test_reserved_attempts_count_while_in_flight_and_success_gives_them_back() -> None:
    """RATE-2: an attempt being judged counts as a failure, so concurrent guesses cannot all
    pass the check; a success gives its count back, a failure keeps it."""
    limit = Limiter(2, 10, FixedClock())
    first, second = await limit.reserve("k"), await limit.reserve("k")
    assert isinstance(first, Attempt)
    assert isinstance(second, Attempt)
    assert limit.blocked("k") == 5  # two in flight: the budget is spoken for
    first.succeeded()
    second.failed()
    third = await limit.reserve("k")
    assert isinstance(third, Attempt)
    with third:
        pass  # left undecided (an exception, a cancellation): counted as a failure
    assert await limit.reserve("k") == 5  # failures alone over the limit: refused
    third.succeeded()  # already judged: changes nothing
    assert limit.blocked("k") == 5


async def test_a_request_held_up_by_attempts_in_flight_waits_for_their_verdict() -> None:
    """RATE-3: attempts in flight hold a request up until they are judged; it is refused only
    if they failed, so a burst of valid requests is never refused for its size."""
    limit = Limiter(1, 10, FixedClock())
    results: list[Attempt | int] = []

    async def second() -> None:
        results.append(await limit.reserve("k"))

    async with trio.open_nursery() as nursery:
        first = await limit.reserve("k")
        assert isinstance(first, Attempt)
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert results == []  # waiting, neither refused nor admitted
        first.succeeded()
    (admitted,) = results
    assert isinstance(admitted, Attempt)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        admitted.failed()
    assert results[1] == 10


async def test_each_verdict_lets_one_waiting_request_in_and_every_one_is_served() -> None:
    """RATE-3: with more requests than the budget in flight, each verdict wakes one waiter
    (not all of them, to look again and wait again); successes admit them in turn, and a
    failure that exhausts the budget refuses every one still waiting, none left behind."""
    limit = Limiter(1, 10, FixedClock())
    results: list[Attempt | int] = []

    async def request() -> None:
        results.append(await limit.reserve("k"))

    held = await limit.reserve("k")
    assert isinstance(held, Attempt)
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(request)
        await trio.testing.wait_all_tasks_blocked()
        assert results == []
        for admitted in range(1, 4):
            held.succeeded()
            await trio.testing.wait_all_tasks_blocked()
            assert len(results) == admitted  # one verdict, one more admitted
            last = results[-1]
            assert isinstance(last, Attempt)
            held = last
        assert isinstance(await limit.reserve("other"), Attempt)  # other keys go on
        held.failed()
    assert results[3:] == [10, 10]


async def test_a_waiter_refused_passes_the_verdict_on() -> None:
    """RATE-3: failures that exhaust the budget refuse every waiter, each woken in turn."""
    limit = Limiter(2, 10, FixedClock())
    results: list[Attempt | int] = []

    async def request() -> None:
        results.append(await limit.reserve("k"))

    first, second = await limit.reserve("k"), await limit.reserve("k")
    assert isinstance(first, Attempt)
    assert isinstance(second, Attempt)
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(request)
        await trio.testing.wait_all_tasks_blocked()
        first.failed()
        second.failed()
    assert results == [5, 5, 5, 5]  # two failures in a 2-per-10 s budget: 5 s to wait


async def test_a_reservation_under_several_limits_is_all_or_nothing() -> None:
    """RATE-2: per account and per IP together; refused by one, nothing is held on the other."""
    clock = FixedClock()
    per_account, per_ip = Limiter(1, 10, clock), Limiter(5, 10, clock)
    per_account.record("account:a")
    assert await reserve((per_account, "account:a"), (per_ip, "ip:1")) == 10
    held = [await reserve((per_account, f"account:{i}"), (per_ip, "ip:1")) for i in range(5)]
    assert all(isinstance(h, Attempt) for h in held)
    assert per_ip.blocked("ip:1") == 2


@pytest.mark.parametrize(("requests", "window_s"), [(0, 60), (5, 0), (5, -1)])
def test_impossible_limits_are_refused(requests: int, window_s: float) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Limiter(requests, window_s, FixedClock())


PROXIES = ("10.0.0.0/8", "2001:db8:ffff::/48")


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        # Never trust the header by default.
        ("192.0.2.1", "198.51.100.7", (), "192.0.2.1"),
        # An untrusted peer's header is ignored even when proxies are configured.
        ("192.0.2.1", "198.51.100.7", PROXIES, "192.0.2.1"),
        # Behind one trusted proxy: the hop it appended.
        ("10.0.0.2", "198.51.100.7", PROXIES, "198.51.100.7"),
        # What the client wrote itself (left of the proxy's hop) is never believed.
        ("10.0.0.2", "1.2.3.4, 198.51.100.7", PROXIES, "198.51.100.7"),
        # A chain of trusted proxies: the rightmost untrusted hop.
        ("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.9.9.9", PROXIES, "198.51.100.7"),
        # A malformed hop: stop at the last address a trusted proxy vouched for.
        ("10.0.0.2", "garbage", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "", PROXIES, "10.0.0.2"),
        # IPv6 proxies and clients; IPv4-mapped peers count as IPv4.
        ("2001:db8:ffff::1", "2001:db8:1::5", PROXIES, "2001:db8:1::5"),
        ("::ffff:10.0.0.2", "198.51.100.7", PROXIES, "198.51.100.7"),
    ],
)
def test_client_ip_takes_the_rightmost_untrusted_hop(
    peer: str, forwarded: str, trusted: tuple[str, ...], expected: str
) -> None:
    """RATE-1: the client IP comes from X-Forwarded-For only through trusted proxies."""
    assert client_ip(peer, forwarded, trusted) == expected


def test_ipv6_clients_are_keyed_by_their_64() -> None:
    """Rotating addresses inside one subscriber's /64 does not buy a fresh budget."""
    assert ip_key("2001:db8:1:2::5") == ip_key("2001:db8:1:2:ffff::9") == "ip:2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::5") != ip_key("2001:db8:1:2::5")
    assert ip_key("198.51.100.7") == "ip:198.51.100.7"


def test_long_keys_are_stored_small_and_still_counted() -> None:
    """A kilobyte client_id or cookie costs no more memory than a short key."""
    clock = FixedClock()
    limit = Limiter(1, 60, clock)
    long_key = "client:" + "x" * 10_000
    assert limit.hit(long_key) is None
    assert limit.hit(long_key) == 60
    assert limit.hit(long_key[:-1] + "y") is None
    assert all(len(key) <= 80 for key in limit._arrival)
