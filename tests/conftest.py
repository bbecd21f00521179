"""Shared fixtures: settings in a temporary data dir, and a real oauthd serving on a free port."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
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
    settings_for_tests,
)

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


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a fresh data dir; keyword arguments replace top-level fields."""
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
