"""The janitor: every `janitor.interval_s` it asks each client actor, then the Directory, to
delete expired rows (docs/architecture.md "Storage"), and removes the shards of deleted clients.

It goes through the actor system like any request, so a collection is ordered with live
requests on the same shard. It asks one actor at a time and moves on: the LRU cap and the idle
reaper close what it woke. It walks the shard files on disk rather than the directory's index,
because RFC 7592 DELETE unindexes a client at once while its file stays for the janitor.

A deleted client's shard is removed only once its actor has closed and none has been spawned
since (`ActorSystem.retire`, then `is_live`, with no checkpoint before the unlink). A request
arriving later finds no file, spawns nothing and answers invalid_client, as the deleted client
already did. Another process serving the same data dir may still hold the file open; on POSIX
its connection keeps working on the unlinked file and its cached registration says deleted.

A shard that the Directory's index does not name is a stray (a registration that failed
between making the shard and committing its index row, e.g. a crash): it counts against no
cap and no lifetime, so it is removed the same way, once it is older than `STRAY_AFTER_S`, so
that a registration still in flight in another process is left alone. The shards are listed
before the index is read, so a listed shard whose registration committed is in the index.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from oauthd.actors.client import Collect
from oauthd.actors.directory import CollectDirectory, ListClients, UnindexClient, directory_address
from oauthd.actors.federation import CollectLogins, federation_address
from oauthd.actors.wiring import Env
from oauthd.errors import NotFound, OAuthError
from oauthd.runtime import ActorSystem, Address
from oauthd.storage import shard_key_for

__all__ = [
    "IDLE_ROUND_PASSES",
    "STRAY_AFTER_S",
    "JanitorReport",
    "TenantRound",
    "collect_once",
    "run_janitor",
]

T = TypeVar("T")

log = logging.getLogger("oauthd.janitor")

STRAY_AFTER_S = 600  # a registration takes milliseconds; an unindexed shard this old is a stray
IDLE_ROUND_PASSES = 24  # a tenant not served here is visited at least once per this many passes


@dataclass(slots=True)
class JanitorReport:
    """One pass: rows deleted by kind, shards visited, deleted clients' and stray shards
    removed (strays are also counted as `stray_shards`)."""

    counts: Counter[str] = field(default_factory=Counter)
    shards: int = 0
    removed: list[str] = field(default_factory=list)
    failed: int = 0


@dataclass(slots=True)
class TenantRound:
    """Which of the registry's tenants a janitor pass visits (server.Tenancy.collect). Only a
    tenant that served requests can have rows expire or clients lapse since it was last
    collected, and a pass over a tenant opens its shards, so a pass visits the tenants served
    in this process since the last one, and a slice of a round-robin over the others (served
    by another worker, or idle since before this process started), sized so the round ends
    within IDLE_ROUND_PASSES passes: with 10,000 tenants and the default hourly pass, ~420
    idle ones an hour, each once a day, instead of all 10,000 every hour."""

    after: str = ""  # the round resumes after this tenant id

    def visit(self, active: Sequence[str], served: Collection[str]) -> list[str]:
        """`active`: the active tenants, sorted; `served`: those served since the last pass."""
        idle = [t for t in active if t not in served]
        size = math.ceil(len(idle) / IDLE_ROUND_PASSES)
        start = bisect.bisect_right(idle, self.after)
        chunk = (idle[start:] + idle[:start])[:size]
        if chunk:
            self.after = chunk[-1]
        return [t for t in active if t in served] + chunk


async def collect_once(system: ActorSystem, env: Env, tenant: str) -> JanitorReport:
    report = JanitorReport()
    backend, settings = env.backend, env.settings
    # Before the index (see the docstring); in a thread: a walk of every shard of the tenant,
    # or a query of a remote database.
    shard_keys = await trio.to_thread.run_sync(backend.list_clients, settings, tenant)
    clients = await system.ask(directory_address(tenant), ListClients())
    indexed = {shard_key_for(client_id) for client_id, _source, _created in clients}
    stray_before = env.clock.now() - STRAY_AFTER_S
    for shard_key in shard_keys:
        address = Address(tenant, "client", shard_key)
        if shard_key not in indexed:
            modified = await _blocking(env, backend.client_modified_at, settings, tenant, shard_key)
            if modified is not None and modified < stray_before:
                if await _remove(system, env, address):
                    report.removed.append(shard_key)
                    report.counts["stray_shards"] += 1
                continue
        try:
            collected = await system.ask(address, Collect())
        except NotFound:
            continue  # removed meanwhile
        except OAuthError as exc:  # locked past the busy timeout, a busy mailbox: next pass
            log.warning("janitor skipped shard %s: %s", shard_key, exc.detail or exc.code)
            report.failed += 1
            continue
        report.shards += 1
        report.counts.update(collected.counts)
        if collected.deleted_client is not None:
            await system.ask(directory_address(tenant), UnindexClient(collected.deleted_client))
            if await _remove(system, env, address):
                report.removed.append(shard_key)
    report.counts.update(await system.ask(directory_address(tenant), CollectDirectory()))
    if env.settings_of(tenant).federation.enabled:
        logins = await system.ask(federation_address(tenant), CollectLogins())
        report.counts["upstream_logins"] += logins
    return report


async def _blocking(env: Env, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, a read or change of storage outside any actor: on the loop for local
    files (microseconds), in a thread for a remote backend (a round trip, or the pool's wait
    while the database is down)."""
    if env.backend.remote:
        return await trio.to_thread.run_sync(call, *args)
    return call(*args)


async def _remove(system: ActorSystem, env: Env, address: Address) -> bool:
    """Remove a client's shard once its actor has closed; False if one is busy with it. With
    local files, no checkpoint between the check and the removal, so no actor opens the shard
    meanwhile; a remote backend's removal takes the client's lock, which orders it."""
    if await system.retire(address) and not system.is_live(address):
        await _blocking(env, env.backend.remove_client, env.settings, address.tenant, address.key)
        return True
    return False


async def run_janitor(system: ActorSystem, env: Env, tenant: str, interval_s: float) -> None:
    """A pass every `interval_s`, the first one interval after startup. A failed pass is logged
    and the next one tries again."""
    while True:
        await trio.sleep(interval_s)
        try:
            report = await collect_once(system, env, tenant)
        except OAuthError as exc:
            log.warning("janitor pass failed, retrying in %s s: %s", interval_s, exc)
            continue
        log.info(
            "janitor: %d rows deleted from %d shards, %d deleted clients' shards removed",
            sum(report.counts.values()),
            report.shards,
            len(report.removed),
        )
