"""What a tenant's activation and drop cost (docs/architecture.md "Tenants"): its settings are
parsed once per version of its registry row, not on every activation, and its shards close
without stalling the requests of other tenants."""

from __future__ import annotations

import dataclasses
import gc
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from oauthd.actors import CountClients, directory_address, keys_address
from oauthd.actors.registry import AddTenant, UpdateTenant, registry_address
from oauthd.server import app_state
from oauthd.settings import Settings
from oauthd.storage import Store
from oauthd.web.app import create_app
from oauthd.web.routing import RouteTable
from tests.conftest import open_test_runtime


def no_app(_env: object) -> object:
    return object()


async def test_settings_are_parsed_once_per_version_of_the_row(
    make_settings: Callable[..., Settings],
) -> None:
    """Activated again unchanged, a tenant reuses its Settings; changed, they are parsed afresh."""
    async with open_test_runtime(make_settings()) as runtime:
        tenancy = runtime.tenancy
        await runtime.system.ask(registry_address(), AddTenant("acme"))
        await tenancy.activate("acme", no_app)
        first = runtime.env.settings_of("acme")
        tenancy.drop("acme")  # e.g. the router's LRU let it go
        await tenancy.activate("acme", no_app)
        assert runtime.env.settings_of("acme") is first
        change = UpdateTenant("acme", settings="[tokens]\ncode_ttl_s = 30\n")
        await runtime.system.ask(registry_address(), change)
        await tenancy.activate("acme", no_app)
        changed = runtime.env.settings_of("acme")
        assert changed.tokens.code_ttl_s == 30
        assert dataclasses.replace(changed, tokens=first.tokens) == first


async def test_a_dropped_tenants_wal_shards_close_off_the_event_loop(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing a WAL shard checkpoints and fsyncs it: never on the loop that serves requests.
    The keys shard, in a rollback journal, closes at once where it is (a thread's hand-off
    costs the loop more than its close)."""
    closed_in: dict[str, threading.Thread] = {}
    close = Store.close

    def recording_close(store: Store) -> None:
        closed_in[store.path.name] = threading.current_thread()
        close(store)

    monkeypatch.setattr(Store, "close", recording_close)
    async with open_test_runtime(make_settings()) as runtime:
        await runtime.system.ask(registry_address(), AddTenant("acme"))
        await runtime.tenancy.activate("acme", no_app)
        assert await runtime.system.ask(directory_address("acme"), CountClients()) == 0
        closed_in.clear()
        await runtime.system.retire_tenant("acme")
        assert closed_in["directory.sqlite"] is not threading.main_thread()
        assert closed_in["keys.sqlite"] is threading.main_thread()


async def test_the_first_registry_read_stops_nothing_a_first_activation_made(
    make_settings: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """Every row is new to a process's first look at the registry: only tenants it holds are
    dropped, so a tenant's first activation keeps the KeyManager it started, and the other
    tenants cost nothing."""
    async with open_test_runtime(make_settings()) as runtime:
        for i in range(20):
            await runtime.system.ask(registry_address(), AddTenant(f"t{i}"))
        await runtime.tenancy.activate("t3", no_app)
        opened = runtime.system.stats().activations
        await trio.sleep(1)
        assert runtime.system.is_live(keys_address("t3"))
        assert runtime.system.stats().activations == opened


async def test_an_activation_moves_what_it_made_to_the_collectors_oldest_generation(
    make_settings: Callable[..., Settings],
) -> None:
    """Each activation ends with a pass over generations 0 and 1: what it made, and keeps for
    as long as the tenant is active, goes straight to the oldest generation, so generation 1
    never piles up activations for one of its passes to walk all at once."""
    async with open_test_runtime(make_settings()) as runtime:
        for i in range(3):
            await runtime.system.ask(registry_address(), AddTenant(f"t{i}"))
        for i in range(3):
            made = await runtime.tenancy.activate(f"t{i}", lambda _env: [object()])
            assert any(o is made for o in gc.get_objects(generation=2))
            assert not any(o is made for o in gc.get_objects(generation=1))
            runtime.tenancy.drop(f"t{i}")


def route_tables() -> int:
    return sum(isinstance(o, RouteTable) for o in gc.get_objects())


async def test_a_tenants_routes_are_freed_when_it_is_let_go_not_left_to_a_full_collection(
    make_settings: Callable[..., Settings],
) -> None:
    """Nothing of a tenant's app is in a reference cycle: letting it go frees its routes,
    keys and limiters at once, instead of leaving them for the collector's full pass (which
    walks every live object on the event loop)."""
    async with open_test_runtime(make_settings()) as runtime:
        await runtime.system.ask(registry_address(), AddTenant("acme"))
        gc.collect()
        before = route_tables()
        gc.disable()
        try:
            app = await runtime.tenancy.activate(
                "acme", lambda env: create_app(app_state(runtime, env, ""))
            )
            assert route_tables() == before + 1
            del app
            assert route_tables() == before
        finally:
            gc.enable()


async def test_an_activation_reads_the_tenants_keys_shard_in_one_transaction(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The KeyManager applies the key schedule and reads the keys as it opens; the activation
    then asks it when the next change is due, which needs no second transaction."""
    statements: list[str] = []
    init = Store.__init__

    def tracing(store: Store, path: Path, *args: Any, **kwargs: Any) -> None:
        init(store, path, *args, **kwargs)
        if path.name == "keys.sqlite":
            store.conn.set_trace_callback(statements.append)

    monkeypatch.setattr(Store, "__init__", tracing)
    async with open_test_runtime(make_settings()) as runtime:
        await runtime.system.ask(registry_address(), AddTenant("acme"))
        statements.clear()  # the default tenant's
        await runtime.tenancy.activate("acme", no_app)
        assert statements.count("BEGIN IMMEDIATE") == 1
        assert "acme" in runtime.tenancy.schedules  # its key schedule runs
