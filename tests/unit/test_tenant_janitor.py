"""The janitor over many tenants (server.Tenancy.collect_pass, actors/janitor.py TenantRound):
each pass visits the tenants served in this process since the last one and a slice of a
round over the others, so a pass over 10,000 tenants does not open 10,000 tenants' shards, every
tenant is still visited within IDLE_ROUND_PASSES passes, and nothing of an idle tenant stays
open after its pass."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from oauthd.actors import directory_address, keys_address
from oauthd.actors.janitor import IDLE_ROUND_PASSES, TenantRound
from oauthd.actors.registry import AddTenant, registry_address
from oauthd.server import Runtime
from oauthd.settings import Settings
from tests.conftest import open_test_runtime

TENANTS = [f"t{i:02d}" for i in range(50)]


def test_a_round_visits_the_served_tenants_and_a_slice_of_the_others() -> None:
    """Served tenants every pass; each idle one within IDLE_ROUND_PASSES passes, in slices."""
    round_ = TenantRound()
    served = {"t07", "t30"}
    idle = [t for t in TENANTS if t not in served]
    size = math.ceil(len(idle) / IDLE_ROUND_PASSES)
    seen: list[str] = []
    for _ in range(IDLE_ROUND_PASSES):
        visit = round_.visit(TENANTS, served)
        assert visit[:2] == ["t07", "t30"]
        assert len(visit) == 2 + size
        seen += visit[2:]
    assert set(seen) == set(idle)
    assert seen[: len(idle)] == idle  # in order, each once, before any comes round again


def test_a_round_resumes_after_its_last_tenant_when_tenants_come_and_go() -> None:
    """The round continues after the last tenant it visited, even if that one was removed."""
    round_ = TenantRound(after="t10")
    assert round_.visit(["t05", "t20", "t30"], set()) == ["t20"]
    assert round_.visit(["t05", "t30"], set()) == ["t30"]
    assert round_.visit(["t05", "t30"], set()) == ["t05"]  # wraps around
    assert round_.visit([], set()) == []


@asynccontextmanager
async def tenancy_of(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime whose registry holds TENANTS, each with a directory (data from earlier runs)."""
    async with open_test_runtime(settings) as runtime:
        for tenant in TENANTS:
            await runtime.system.ask(registry_address(), AddTenant(tenant))
            runtime.env.tenant_dir(tenant).mkdir(parents=True)
        yield runtime


def no_app(_env: Any) -> object:
    return object()


async def test_a_pass_visits_served_tenants_and_puts_idle_ones_away(
    make_settings: Callable[..., Settings],
) -> None:
    """A tenant served here is visited by every pass and stays live; an idle one is visited in
    its turn and left with no live actor and no loaded settings; all are visited in a round."""
    async with tenancy_of(make_settings()) as runtime:
        tenancy, system = runtime.tenancy, runtime.system
        await tenancy.activate("t07", no_app)
        size = math.ceil((len(TENANTS) - 1) / IDLE_ROUND_PASSES)
        seen: set[str] = set()
        for _ in range(IDLE_ROUND_PASSES):
            visited = await tenancy.collect_pass()
            assert visited[0] == "t07"
            assert len(visited) == 1 + size
            seen.update(visited)
            assert runtime.env.tenants.loaded() == ["t07"]
            for tenant in visited[1:]:
                assert not system.is_live(directory_address(tenant))
            assert system.is_live(keys_address("t07"))
        assert seen == set(TENANTS)


async def test_a_tenant_activated_since_the_last_pass_is_visited_by_the_next(
    make_settings: Callable[..., Settings],
) -> None:
    """A tenant served and dropped again between two passes still has its rows collected."""
    async with tenancy_of(make_settings()) as runtime:
        tenancy = runtime.tenancy
        await tenancy.collect_pass()
        await tenancy.activate("t42", no_app)
        tenancy.drop("t42")  # e.g. the router's LRU let it go
        assert "t42" in await tenancy.collect_pass()
        assert "t42" not in runtime.env.tenants.loaded()
