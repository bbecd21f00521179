"""`oauthd serve` as a process (server.serve_process): before it listens, the objects startup
left are frozen out of the garbage collector's full passes, which otherwise walk them all every
few hundred requests, a p99 spike; garbage is collected first, so none of it is frozen."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from oauthd import server
from oauthd.server import serve_process
from oauthd.settings import Settings


async def test_a_process_collects_then_freezes_its_startup_heap_before_it_listens(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc.collect, then gc.freeze (not frozen here for real), before the listener opens: a
    request that finds the server up never waits for that full pass (40-80 ms here)."""
    calls: list[str] = []
    stop = trio.Event()
    serve_http = server.serve_http

    def collect(*_args: object) -> int:
        calls.append("collect")
        return 0

    def freeze() -> None:
        calls.append("freeze")

    async def listening(*args: Any, **kwargs: Any) -> None:
        calls.append("listen")
        await serve_http(*args, **kwargs)

    monkeypatch.setattr(gc, "collect", collect)
    monkeypatch.setattr(gc, "freeze", freeze)
    monkeypatch.setattr(server, "serve_http", listening)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: serve_process(make_settings(), shutdown=stop.wait, listen="127.0.0.1:0")
        )
        await trio.testing.wait_all_tasks_blocked()
        stop.set()
    assert calls == ["collect", "freeze", "listen"]
