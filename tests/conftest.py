"""Shared fixtures: settings in a temporary data dir, and a real oauthd serving on a free port.

A test module marked `pytest.mark.both_backends` runs each of its tests that uses
`make_settings` twice: on SQLite and on PostgreSQL (a new database of the session's throwaway
cluster per test, tests/postgres.py)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from oauthd.runtime.clock import Clock
from oauthd.server import Runtime, open_runtime, serve
from oauthd.settings import (
    LogSettings,
    RegistrationSettings,
    ResourceSettings,
    Settings,
    StorageSettings,
    settings_for_tests,
)
from tests.postgres import INSTALL, Cluster, missing, server_binaries, throwaway_cluster

ISSUER = "http://127.0.0.1:8787"


def settings_in(directory: Path, **overrides: Any) -> Settings:
    """The tests' settings with their data in `directory`; keyword arguments replace fields."""
    base: dict[str, Any] = {
        "issuer": ISSUER,
        "data_dir": directory,
        "listen": "127.0.0.1:0",
        "log": LogSettings(access_log=False),
        "resources": (ResourceSettings("https://mcp.example.com/mcp", ("mcp:tools",)),),
        # Tests register their machine clients themselves; the default (off) is tested in
        # test_oauth21_client_credentials with RegistrationSettings().
        "registration": RegistrationSettings(allow_client_credentials=True),
    }
    return settings_for_tests(**{**base, **overrides})


BACKENDS = ("sqlite", "postgres")
DSN_ENV = "TEST_PG_DSN"  # the variable `[storage] dsn_env` names in the postgres leg


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_backends") is None:
        return
    if "storage_backend" in metafunc.fixturenames:
        metafunc.parametrize("storage_backend", BACKENDS, indirect=True)


@pytest.fixture
def storage_backend(request: pytest.FixtureRequest) -> str:
    """The `[storage] backend` of `make_settings`: each of BACKENDS in a module marked
    `both_backends`, else TEST_STORAGE_BACKEND (sqlite when unset: `TEST_STORAGE_BACKEND=postgres
    pytest tests/spec` runs every spec test built on make_settings on PostgreSQL)."""
    return str(getattr(request, "param", os.environ.get("TEST_STORAGE_BACKEND", "sqlite")))


@pytest.fixture
def make_settings(
    tmp_path: Path, storage_backend: str, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Settings with a fresh data dir (and a fresh PostgreSQL database in the postgres leg);
    keyword arguments replace top-level fields."""
    if storage_backend == "postgres":
        cluster: Cluster = request.getfixturevalue("postgres_cluster")
        monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv(DSN_ENV, cluster.create_database())
        storage = StorageSettings(backend="postgres", dsn_env=DSN_ENV)
        return partial(settings_in, tmp_path / "data", storage=storage)
    return partial(settings_in, tmp_path / "data")


@dataclass
class Server:
    base_url: str
    http: httpx.AsyncClient
    settings: Settings
    stop: trio.Event


class ManualClock:
    """Wall time plus an offset the test moves: expiry without real sleeps."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> ManualClock:
    """A clock a test moves, for servers started with `running_server(settings, clock)`."""
    return ManualClock()


@asynccontextmanager
async def running_server(
    settings: Settings, clock: Clock | None = None, fetch_transport: Any = None
) -> AsyncIterator[Server]:
    """`oauthd serve` in this trio run, bound to a free loopback port; stopped on exit.
    `fetch_transport` replaces the Fetcher's outbound HTTP (None: the pinned network one)."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(
                serve, settings, shutdown=stop.wait, clock=clock, fetch_transport=fetch_transport
            )
        )
        async with httpx.AsyncClient(base_url=binds[0]) as http:
            try:
                yield Server(binds[0], http, settings, stop)
            finally:
                stop.set()


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[Server]:
    async with running_server(make_settings()) as s:
        yield s


def replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)


@asynccontextmanager
async def open_test_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """The actors of `oauthd serve` without HTTP and without the janitor's timer (tests call
    passes themselves), stopped on exit."""
    async with trio.open_nursery() as nursery:
        runtime: Runtime = await nursery.start(partial(open_runtime, settings, janitor=False))
        yield runtime
        nursery.cancel_scope.cancel()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL for the session (tests/postgres.py): skipped without
    PostgreSQL, a failure under CI=true."""
    binaries = server_binaries()
    if binaries is None:
        missing(f"no initdb/pg_ctl found; {INSTALL}")
    with throwaway_cluster(binaries) as cluster:
        yield cluster


@pytest.fixture
def postgres_dsn(postgres_cluster: Cluster) -> str:
    """The DSN of a new, empty database of the session's cluster."""
    return postgres_cluster.create_database()
