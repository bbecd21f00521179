"""In-process measurements of the actor runtime, one scenario per process so that memory
numbers start from a clean heap. `python bench/inproc.py SCENARIO [ARG ...]` prints one JSON
object on stdout; bench/run.py runs these and turns them into table rows.

Scenarios:
  make-clients DIR COUNT          register COUNT clients on disk (see shards.py)
  roundtrip DIR ASKS              sequential asks to one warm actor: trivial, then a ClientActor
  cold DIR COUNT                  first ask to each of COUNT existing client shards
  cold-token DIR COUNT            first client_credentials token of each of COUNT machine clients
                                  (made here in DIR), then a second one: the first token's extra
  memory-actors COUNT             RSS per idle trivial actor
  memory-shards DIR COUNT         RSS and file descriptors per live ClientActor (open shard)
  rss DIR COUNT TOUCH MAX_LIVE    process RSS of a full runtime after asking TOUCH of COUNT clients
  asgi DIR ROUNDS                 CPU per request of the ASGI apps alone (no socket, no Hypercorn)
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from baseline_app import app as baseline_app
from oauthd.actors import GetClient, client_address
from oauthd.actors.client_tokens import IssueClientToken
from oauthd.logs import flush_logs, setup_logging
from oauthd.oauth.rfc6749_client_auth import ClientCredentials
from oauthd.runtime import ActorSystem, Address, Kind
from oauthd.server import Runtime, open_runtime
from oauthd.settings import ActorSettings, LogSettings, Settings, settings_for_tests
from oauthd.web import AppState, create_app
from shards import MACHINE_SECRET, TENANT, client_id, make_clients

Result = dict[str, Any]


# --- helpers -----------------------------------------------------------------------------------


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def percentile(sorted_values: Sequence[float], p: float) -> float:
    index = min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def summary_us(durations_ns: list[int]) -> Result:
    values = sorted(d / 1000 for d in durations_ns)
    return {
        "mean_us": sum(values) / len(values),
        "p50_us": percentile(values, 50),
        "p99_us": percentile(values, 99),
        "count": len(values),
    }


def bench_settings(data_dir: Path, max_live: int) -> Settings:
    return settings_for_tests(
        data_dir=data_dir,
        listen="127.0.0.1:0",
        log=LogSettings(access_log=False),
        actors=ActorSettings(max_live=max_live),
    )


async def with_runtime(settings: Settings, body: Callable[[Runtime], Awaitable[Result]]) -> Result:
    """Run `body` against the real runtime (open_runtime: every kind wired as in `serve`)."""
    async with trio.open_nursery() as nursery:
        runtime: Runtime = await nursery.start(partial(open_runtime, settings))
        result = await body(runtime)
        nursery.cancel_scope.cancel()
    return result


@dataclass(frozen=True, slots=True)
class Ping:
    """The message of the trivial actor."""


PING = Ping()


class Echo:
    """A trivial in-memory actor: no storage, replies with its message."""

    __slots__ = ("handled",)

    def __init__(self) -> None:
        self.handled = 0

    async def open(self) -> None:
        pass

    async def receive(self, message: Any) -> Any:
        self.handled += 1
        return message

    async def close(self) -> None:
        pass


async def with_echo_system(
    max_live: int, body: Callable[[ActorSystem], Awaitable[Result]]
) -> Result:
    system = ActorSystem(ActorSettings(max_live=max_live), [Kind("echo", lambda _a: Echo())])
    async with trio.open_nursery() as nursery:
        await nursery.start(system.run)
        result = await body(system)
        nursery.cancel_scope.cancel()
    return result


async def time_asks(system: ActorSystem, address: Address, message: Any, asks: int) -> Result:
    """`asks` sequential asks to one warm actor: each timed (wall), and the whole loop timed in
    wall and in process CPU time (which other processes on a shared machine do not inflate)."""
    await system.ask(address, message)  # spawn and warm
    durations = [0] * asks
    clock = time.perf_counter_ns
    cpu_started, started = time.process_time_ns(), clock()
    for i in range(asks):
        t0 = clock()
        await system.ask(address, message)
        durations[i] = clock() - t0
    wall_ns, cpu_ns = clock() - started, time.process_time_ns() - cpu_started
    return {
        **summary_us(durations),
        "loop_mean_us": wall_ns / asks / 1000,
        "cpu_mean_us": cpu_ns / asks / 1000,
    }


# --- scenarios ---------------------------------------------------------------------------------


def scenario_make_clients(data_dir: str, count: str) -> Result:
    return dataclasses.asdict(make_clients(Path(data_dir), int(count)))


async def scenario_roundtrip(data_dir: str, asks: str) -> Result:
    n = int(asks)
    echo = await with_echo_system(
        10, lambda system: time_asks(system, Address(TENANT, "echo", "one"), PING, n)
    )

    async def client(runtime: Runtime) -> Result:
        return await time_asks(runtime.system, client_address(TENANT, client_id(0)), GetClient(), n)

    shard = await with_runtime(bench_settings(Path(data_dir), 1000), client)
    return {"echo": echo, "client": shard}


async def cold_then_warm(system: ActorSystem, n: int, message: Callable[[int], Any]) -> Result:
    """Ask clients 1..n-1 `message(i)` twice each: the first ask spawns the actor and opens
    its shard (cold), the second finds it live (warm). Client 0 is asked first to pay the
    first-time costs of the process."""
    await system.ask(client_address(TENANT, client_id(0)), message(0))
    cold, warm, cold_cpu, warm_cpu = [], [], 0, 0
    for i in range(1, n):
        address = client_address(TENANT, client_id(i))
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        await system.ask(address, message(i))
        c1, t1 = time.process_time_ns(), time.perf_counter_ns()
        await system.ask(address, message(i))
        c2, t2 = time.process_time_ns(), time.perf_counter_ns()
        cold.append(t1 - t0)
        warm.append(t2 - t1)
        cold_cpu += c1 - c0
        warm_cpu += c2 - c1
    warm_mean_ns = sum(warm) / len(warm)
    extra = [max(0, round(c - warm_mean_ns)) for c in cold]
    return {
        "cold": summary_us(cold),
        "warm": summary_us(warm),
        "extra": summary_us(extra),
        "extra_cpu_mean_us": (cold_cpu - warm_cpu) / len(cold) / 1000,
    }


async def scenario_cold(data_dir: str, count: str) -> Result:
    n = int(count)

    async def body(runtime: Runtime) -> Result:
        return await cold_then_warm(runtime.system, n, lambda _i: GetClient())

    return await with_runtime(bench_settings(Path(data_dir), n + 10), body)


async def scenario_cold_token(data_dir: str, count: str) -> Result:
    """A client_credentials token to clients whose shard is not open: `first` is each
    client's first token ever (its access-token table is made then, from schema v7), `again`
    the first after a restart of the runtime, when every shard is closed again."""
    n = int(count)
    make_clients(Path(data_dir), n, machine=True)

    def token(i: int) -> IssueClientToken:
        creds = ClientCredentials(client_id(i), "client_secret_basic", MACHINE_SECRET)
        return IssueClientToken(creds, None, ())

    async def body(runtime: Runtime) -> Result:
        return await cold_then_warm(runtime.system, n, token)

    settings = bench_settings(Path(data_dir), n + 10)
    return {
        "first": await with_runtime(settings, body),
        "again": await with_runtime(settings, body),
    }


async def scenario_memory_actors(count: str) -> Result:
    n = int(count)

    async def body(system: ActorSystem) -> Result:
        await system.ask(Address(TENANT, "echo", "warm"), PING)
        before = rss_kib()
        for i in range(n):
            await system.ask(Address(TENANT, "echo", str(i)), PING)
        after = rss_kib()
        return {"count": n, "live": system.stats().live, "kib_per_actor": (after - before) / n}

    return await with_echo_system(n + 10, body)


async def scenario_memory_shards(data_dir: str, count: str) -> Result:
    n = int(count)

    async def body(runtime: Runtime) -> Result:
        system = runtime.system
        await system.ask(client_address(TENANT, client_id(0)), GetClient())
        rss_before, fds_before = rss_kib(), open_fds()
        for i in range(1, n):
            await system.ask(client_address(TENANT, client_id(i)), GetClient())
        live = n - 1
        return {
            "count": live,
            "live": system.stats().live,
            "kib_per_actor": (rss_kib() - rss_before) / live,
            "fds_per_actor": (open_fds() - fds_before) / live,
        }

    return await with_runtime(bench_settings(Path(data_dir), n + 10), body)


async def scenario_rss(data_dir: str, count: str, touch: str, max_live: str) -> Result:
    n, touched = int(count), int(touch)
    settings = bench_settings(Path(data_dir), int(max_live))

    async def body(runtime: Runtime) -> Result:
        # The web stack too, so the number is that of a serving process, not of the actors alone.
        create_app(AppState(settings, runtime.system, runtime.keyring, runtime.env.clock, TENANT))
        idle = rss_kib()
        started = time.perf_counter()
        for i in random.Random(1).sample(range(n), min(n, touched)):
            await runtime.system.ask(client_address(TENANT, client_id(i)), GetClient())
        seconds = time.perf_counter() - started
        await trio.sleep(0.1)  # let evicted actors finish closing their shards
        stats = runtime.system.stats()
        return {
            "clients": n,
            "touched": touched,
            "touch_seconds": seconds,
            "rss_idle_kib": idle,
            "rss_kib": rss_kib(),
            "live": stats.live,
            "evictions": stats.evictions,
            "fds": open_fds(),
        }

    return await with_runtime(settings, body)


def asgi_scope(path: str) -> Result:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8787),
        "extensions": {},
    }


async def asgi_request(app: Any, path: str) -> None:
    """One GET through the ASGI callable, as Hypercorn would call it."""
    received = False
    status = 0

    async def receive() -> Result:
        nonlocal received
        if received:
            await trio.sleep_forever()
        received = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Result) -> None:
        nonlocal status
        status = message.get("status", status)

    await app(asgi_scope(path), receive, send)
    assert status == 200, f"{path} answered {status}"


async def scenario_asgi(data_dir: str, rounds: str) -> Result:
    """Bare Quart-Trio vs oauthd's app, interleaved in batches; median CPU us per request.
    The access log is written as `oauthd serve` writes it: JSON lines, here to a file."""
    log_file = (Path(data_dir) / "access.log").open("w", encoding="utf-8")
    saved_stderr = os.dup(2)
    os.dup2(log_file.fileno(), 2)  # the server's stderr, sent to a file
    setup_logging(LogSettings(format="json"))

    async def body(runtime: Runtime) -> Result:
        def app(access_log: bool) -> Any:
            settings = bench_settings(Path(data_dir), 1000)
            settings = dataclasses.replace(settings, log=LogSettings(access_log=access_log))
            return create_app(
                AppState(settings, runtime.system, runtime.keyring, runtime.env.clock)
            )

        apps = {
            "baseline": (baseline_app, "/"),
            "oauthd_log_on": (app(True), "/.well-known/oauth-authorization-server"),
            "oauthd_log_off": (app(False), "/.well-known/oauth-authorization-server"),
        }
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for batch in range(int(rounds) + 1):
            for name, (asgi, path) in apps.items():
                started = time.process_time()
                for _ in range(ASGI_BATCH):
                    await asgi_request(asgi, path)
                if batch:  # the first batch warms up
                    samples[name].append((time.process_time() - started) * 1e6 / ASGI_BATCH)
        return {name: statistics.median(values) for name, values in samples.items()}

    try:
        return await with_runtime(bench_settings(Path(data_dir), 1000), body)
    finally:
        flush_logs()
        os.dup2(saved_stderr, 2)
        log_file.close()


ASGI_BATCH = 200

SYNC: dict[str, Callable[..., Result]] = {"make-clients": scenario_make_clients}
ASYNC: dict[str, Callable[..., Awaitable[Result]]] = {
    "roundtrip": scenario_roundtrip,
    "cold": scenario_cold,
    "cold-token": scenario_cold_token,
    "memory-actors": scenario_memory_actors,
    "memory-shards": scenario_memory_shards,
    "rss": scenario_rss,
    "asgi": scenario_asgi,
}


def main(argv: Sequence[str]) -> None:
    name, args = argv[0], argv[1:]
    result = SYNC[name](*args) if name in SYNC else trio.run(partial(ASYNC[name], *args))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
