"""`oauthd serve` as a process (server.serve_process): once it serves, the objects startup left
are frozen out of the garbage collector's full passes, which otherwise walk them all every few
hundred requests, a p99 spike; garbage is collected first, so none of it is frozen."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest
import trio

from oauthd.server import serve_process
from oauthd.settings import Settings


async def test_a_serving_process_collects_then_freezes_its_startup_heap(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc.collect, then gc.freeze, once the server is serving (not frozen here for real)."""
    calls: list[str] = []
    frozen = trio.Event()
    stop = trio.Event()

    def collect(*_args: object) -> int:
        calls.append("collect")
        return 0

    def freeze() -> None:
        calls.append("freeze")
        frozen.set()

    monkeypatch.setattr(gc, "collect", collect)
    monkeypatch.setattr(gc, "freeze", freeze)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: serve_process(make_settings(), shutdown=stop.wait, listen="127.0.0.1:0")
        )
        await frozen.wait()
        stop.set()
    assert calls == ["collect", "freeze"]
