"""What a tenant's activation costs (docs/architecture.md "Tenants"): its settings are parsed
once per version of its registry row, not on every activation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import trio

from oauthd.actors.registry import AddTenant, UpdateTenant, registry_address
from oauthd.server import Runtime, open_runtime
from oauthd.settings import Settings


def no_app(_env: object) -> object:
    return object()


async def test_settings_are_parsed_once_per_version_of_the_row(
    make_settings: Callable[..., Settings],
) -> None:
    """Activated again unchanged, a tenant reuses its Settings; changed, they are parsed afresh."""
    async with trio.open_nursery() as nursery:
        runtime: Runtime = await nursery.start(
            partial(open_runtime, make_settings(), janitor=False)
        )
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
        nursery.cancel_scope.cancel()
