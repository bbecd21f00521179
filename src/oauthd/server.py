"""The root nursery, and the wiring diagram of a running oauthd:

    serve()
    ├── ActorSystem.run()           client actors, Directory, KeyManager (spawned on demand)
    ├── run_key_schedule()          wakes the KeyManager at each scheduled key change
    ├── run_janitor()               every janitor.interval_s: expired rows, deleted shards
    └── serve_http()                the HTTP engine ([server] engine: native or Hypercorn)
                                    -> TenantRouter -> Front -> FastPath | Quart-Trio -> ask(actor)

With `--workers N` (workers.py) each worker process runs this same tree on a listening socket
it inherits; only worker 0 runs the janitor (`WorkerRole`).

Nothing serves before its state is open: the KeyManager has an active key and the configured
clients are registered before the HTTP engine binds. Shutdown runs the other way: it stops
accepting and lets in-flight requests finish, then the actors close their shards.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import resource
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import trio

from oauthd.actors import (
    DEFAULT_TENANT,
    Env,
    NextKeyChange,
    RegisterClient,
    TenantConfig,
    directory_address,
    keys_address,
    kinds,
)
from oauthd.actors.janitor import TenantRound, collect_once, run_janitor
from oauthd.actors.keys import run_key_schedule
from oauthd.actors.registry import (
    REGISTRY_POLL_S,
    TENANT_ID,
    RegistryReader,
    TenantRow,
    tenant_settings,
)
from oauthd.actors.tenant_admin import TenantAdmin
from oauthd.errors import ConfigError, OAuthError, ServerError, TemporarilyUnavailable
from oauthd.keys import KeyringHolder, parse_client_jwks, parse_kek
from oauthd.logs import flush_logs, flush_logs_every
from oauthd.metrics import Metrics
from oauthd.oauth.rfc7591_registration import default_response_types, hash_initial_access_token
from oauthd.runtime import ActorSystem, Clock, Limiter, SystemClock
from oauthd.settings import Settings
from oauthd.storage import (
    SQLITE,
    Backend,
    ClientRecord,
    SchemaError,
    hash_secret,
    refuse_newer_data,
    tenant_dir,
)
from oauthd.storage.pg_stores import PG_SCHEMA, open_postgres, probe_postgres
from oauthd.web import (
    AdminState,
    AppState,
    TenantRouter,
    create_admin_app,
    create_app,
    serve_http,
    token_digest,
)

__all__ = [
    "Runtime",
    "WorkerRole",
    "app_state",
    "front_door",
    "load_admin_tokens",
    "load_metrics_token",
    "open_runtime",
    "serve",
    "serve_process",
    "wait_for_signal",
]

log = logging.getLogger("oauthd.server")
TENANT = DEFAULT_TENANT
PG_POOL_SIZE = 8  # PostgreSQL connections per process: transactions at once
PG_TIMEOUT_S = 5.0  # a request waits this long for one, then gets a 503
PARSED_SETTINGS = 1024  # tenants whose parsed settings are kept (~2 KB each)


class Runtime:
    """A running actor system with its keys loaded and its configured clients registered."""

    def __init__(self, settings: Settings, system: ActorSystem, env: Env, tenancy: Tenancy) -> None:
        self.settings = settings
        self.system = system
        self.env = env
        self.tenancy = tenancy

    @property
    def keyring(self) -> KeyringHolder:
        return self.env.keyring


def load_kek(settings: Settings, environ: Mapping[str, str]) -> bytes | None:
    name = settings.keys.encryption_key_env
    if not name:
        return None
    if name not in environ:
        raise ConfigError(settings.source, "keys.encryption_key_env", f"${name} is not set")
    try:
        return parse_kek(environ[name])
    except ValueError as exc:
        raise ConfigError(settings.source, "keys.encryption_key_env", str(exc)) from None


def secret_from_env(
    settings: Settings, key: str, name: str, environ: Mapping[str, str], wanted: bool = True
) -> str:
    """The value of the variable `name` that the setting `key` names; "" when the setting is
    empty or not `wanted`; a ConfigError naming `key` when the variable is unset or empty."""
    if not wanted or not name:
        return ""
    value = environ.get(name, "")
    if not value:
        raise ConfigError(settings.source, key, f"${name} is not set")
    return value


def load_upstream_secret(settings: Settings, environ: Mapping[str, str]) -> str:
    f = settings.federation
    key = "federation.client_secret_env"
    return secret_from_env(settings, key, f.client_secret_env, environ, f.enabled)


def load_initial_access_tokens(settings: Settings, environ: Mapping[str, str]) -> frozenset[str]:
    """Hashes of the initial access tokens /register accepts: the file's hashes, and those of
    the tokens in the named variable (comma-separated). Empty: registration is open."""
    r = settings.registration
    hashes = set(r.initial_access_token_hashes)
    if r.initial_access_token_env:
        tokens = [t.strip() for t in environ.get(r.initial_access_token_env, "").split(",")]
        if not any(tokens):
            key = "registration.initial_access_token_env"
            raise ConfigError(settings.source, key, f"${r.initial_access_token_env} is not set")
        hashes.update(hash_initial_access_token(t) for t in tokens if t)
    return frozenset(hashes)


MIN_ADMIN_TOKEN = 32  # characters: a token is a credential to every tenant, not a password


def load_admin_tokens(settings: Settings, environ: Mapping[str, str]) -> tuple[bytes, ...]:
    """The SHA-256 digests of the admin API's bearer tokens: the comma-separated tokens of the
    variable `[admin] token_env` names (several while one is being rotated out). The tokens
    themselves are not kept. Empty when the admin API is off."""
    a = settings.admin
    if not a.enabled:
        return ()
    key = "admin.token_env"
    tokens = [t.strip() for t in secret_from_env(settings, key, a.token_env, environ).split(",")]
    if not any(tokens):
        raise ConfigError(settings.source, key, f"${a.token_env} holds no token")
    if any(len(t) < MIN_ADMIN_TOKEN for t in tokens if t):
        short = f"each token in ${a.token_env} must be at least {MIN_ADMIN_TOKEN} characters"
        raise ConfigError(settings.source, key, short)
    return tuple(token_digest(t) for t in tokens if t)


def load_metrics_token(settings: Settings, environ: Mapping[str, str]) -> str:
    """The bearer token scrapers of /metrics present; "" = loopback peers only."""
    m = settings.metrics
    key = "metrics.bearer_token_env"
    return secret_from_env(settings, key, m.bearer_token_env, environ, m.enabled)


def configured_clients(
    settings: Settings, environ: Mapping[str, str], now: int
) -> list[ClientRecord]:
    """The [[clients]] of the file as registrations; their secrets come from the environment."""
    records = []
    for i, c in enumerate(settings.clients):
        response_types = default_response_types(c.grant_types)  # RFC 7591 §2, as registered
        secret_hash = ""
        if c.client_secret_env:
            if c.client_secret_env not in environ:
                key = f"clients[{i}].client_secret_env"
                raise ConfigError(settings.source, key, f"${c.client_secret_env} is not set")
            secret_hash = hash_secret(environ[c.client_secret_env])
        if c.jwks:
            try:
                parse_client_jwks(c.jwks)
            except ValueError as exc:
                raise ConfigError(settings.source, f"clients[{i}].jwks", str(exc)) from None
        records.append(
            ClientRecord(
                client_id=c.client_id,
                client_name=c.client_name,
                redirect_uris=c.redirect_uris,
                grant_types=c.grant_types,
                response_types=response_types,
                token_endpoint_auth_method=c.token_endpoint_auth_method,
                scope=c.scope,
                first_party=c.first_party,
                secret_hash=secret_hash,
                source="config",
                created_at=now,
                metadata=json.dumps(
                    {
                        "client_name": c.client_name,
                        "redirect_uris": list(c.redirect_uris),
                        "grant_types": list(c.grant_types),
                        "response_types": list(response_types),
                        "token_endpoint_auth_method": c.token_endpoint_auth_method,
                        "scope": c.scope,
                        **({"jwks": json.loads(c.jwks)} if c.jwks else {}),
                        **_id_token_alg(c.id_token_signed_response_alg),
                    }
                ),
            )
        )
    return records


def _id_token_alg(alg: str) -> dict[str, str]:
    """OIDC Registration §2: the member only when the file names an algorithm (else RS256)."""
    return {"id_token_signed_response_alg": alg} if alg else {}


FDS_PER_SHARD = 3  # the database, its -wal and its -shm
FDS_SPARE = 256  # sockets, logs and the tenant's own shards


def raise_fd_limit(settings: Settings) -> None:
    """Every live actor holds an open shard and every connection a socket: make sure the
    process may open them all, or say at startup that actors.max_live is beyond what this
    machine allows."""
    wanted = settings.actors.max_live * FDS_PER_SHARD + settings.server.max_connections + FDS_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "open-file limit %d is below the %d that actors.max_live=%d needs; "
            "lower max_live or raise the hard limit",
            soft,
            wanted,
            settings.actors.max_live,
        )


def check_data_dir(settings: Settings) -> None:
    directory = tenant_dir(settings.data_dir, TENANT)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            settings.source, "data_dir", f"cannot create {directory}: {exc}"
        ) from None
    if not os.access(directory, os.W_OK):
        raise ConfigError(settings.source, "data_dir", f"{directory} is not writable")
    try:
        refuse_newer_data(settings.data_dir, TENANT)
    except SchemaError as exc:
        raise ConfigError(settings.source, "data_dir", str(exc)) from None


async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    fetch_transport: object | None = None,
    janitor: bool = True,
    task_status: trio.TaskStatus[Runtime] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the actors until cancelled; report a ready `Runtime` through `task_status`.
    `janitor=False` leaves collection to the caller (`oauthd gc`, tests)."""
    environ = os.environ if environ is None else environ
    clock = clock or SystemClock()
    check_data_dir(settings)
    raise_fd_limit(settings)
    clients = configured_clients(settings, environ, int(clock.now()))
    async with open_backend(settings, environ) as backend:
        env = Env(
            settings,
            clock,
            KeyringHolder(),
            load_kek(settings, environ),
            fetch_transport,
            load_upstream_secret(settings, environ),
            load_initial_access_tokens(settings, environ),
            metrics=Metrics(settings.metrics.max_tenant_labels),
            backend=backend,
        )
        system = ActorSystem(settings.actors, kinds(env))
        tenancy = Tenancy(settings, env, environ, system)
        async with trio.open_nursery() as nursery:
            await nursery.start(system.run)
            tenancy.nursery = nursery
            # A remote registry as it is now, before any request or CLI command: it is
            # otherwise read first by `watch`, and a command asking for a tenant before that
            # read found none ("no tenant 'a'" right after `tenants add a`). A local one is
            # read by the first request itself (`sync_due`).
            if backend.remote:
                await tenancy.refresh()
            nursery.start_soon(tenancy.watch)
            try:
                # The KeyManager's start applies the schedule: a first start makes the first key.
                next_at = await system.ask(keys_address(TENANT), NextKeyChange())
            except ServerError as exc:
                # The keys shard cannot be opened or decrypted: an operator's problem, not a crash.
                raise ConfigError(settings.source, "keys", exc.detail or exc.description) from None
            nursery.start_soon(
                run_key_schedule,
                system,
                keys_address(TENANT),
                clock,
                settings.keys.reload_interval_s,
                next_at,
            )
            for record in clients:
                await system.ask(directory_address(TENANT), RegisterClient(record))
            if janitor:
                nursery.start_soon(run_janitor, system, env, TENANT, settings.janitor.interval_s)
                nursery.start_soon(tenancy.collect, settings.janitor.interval_s)
            task_status.started(Runtime(settings, system, env, tenancy))
            await trio.sleep_forever()


@asynccontextmanager
async def open_backend(settings: Settings, environ: Mapping[str, str]) -> AsyncIterator[Backend]:
    """The storage backend of `[storage] backend`: SQLite files under data_dir, or the
    PostgreSQL database named by the variable `[storage] dsn_env` (its tables brought up to
    date first; its pool closed on exit)."""
    if settings.storage.backend == "sqlite":
        yield SQLITE
        return
    dsn = load_dsn(settings, environ)
    opening = partial(open_postgres, dsn, pool_size=PG_POOL_SIZE, timeout_s=PG_TIMEOUT_S)
    try:
        backend, db = await trio.to_thread.run_sync(opening)
    except (SchemaError, TemporarilyUnavailable) as exc:
        detail = getattr(exc, "detail", "") or str(exc)
        raise ConfigError(settings.source, "storage", f"PostgreSQL: {detail}") from None
    try:
        yield backend
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(db.close)


def load_dsn(settings: Settings, environ: Mapping[str, str]) -> str:
    """The PostgreSQL DSN, from the variable `[storage] dsn_env` names (never from the file)."""
    name = settings.storage.dsn_env
    dsn = environ.get(name, "")
    if not dsn:
        raise ConfigError(settings.source, "storage.dsn_env", f"the variable {name} is not set")
    return dsn


def check_storage(settings: Settings, environ: Mapping[str, str]) -> str:
    """`oauthd check-config`'s look at the storage: one line saying what it found, or a
    ConfigError naming `storage` (unset variable, unreachable, login refused, newer schema).
    PostgreSQL is connected to once and nothing is written; SQLite needs nothing checked."""
    if settings.storage.backend == "sqlite":
        return f"storage: SQLite files under {settings.data_dir}"
    try:
        found = probe_postgres(load_dsn(settings, environ), timeout_s=int(PG_TIMEOUT_S))
    except SchemaError as exc:
        raise ConfigError(settings.source, "storage", str(exc)) from None
    ours = PG_SCHEMA.version
    if found.version == ours:
        schema = f"schema version {ours}, this oauthd's"
    elif found.version == 0:
        schema = f"no oauthd tables yet (made at first start, version {ours})"
    else:
        schema = f"schema version {found.version}, brought to {ours} at the next start"
    return f"storage: PostgreSQL at {found.target} reachable, {schema}"


def app_state(runtime: Runtime, env: Env, metrics_token: str) -> AppState:
    """What the routes of `env.tenant` share: that tenant's settings, keyring and secrets over
    the process's one actor system, clock and metrics."""
    return AppState(
        env.settings,
        runtime.system,
        env.keyring,
        env.clock,
        env.tenant,
        initial_access_tokens=env.initial_access_tokens,
        metrics=env.metrics,
        metrics_token=metrics_token,
    )


def promote_young() -> None:
    """A pass over the collector's young generations (0 and 1) at the end of an activation:
    what it made lives as long as the tenant stays active, and goes straight to the oldest
    generation, walked only by full passes.

    Without it, CPython counts allocations net of frees towards a young collection, so while
    one tenant is made as another is let go the count stays low and generation 0 grows
    unseen to hold every live tenant's objects, each pass then walking them all on the event
    loop (the cold tenant's p99, bench/README.md). A pass over generation 0 alone moves them
    into generation 1, where they pile up until a pass over it: with the collector's
    threshold of 10, a pass of 0.6-2.5 ms every tenth activation on this project's VM, the
    largest part of a cold tenant's p99. Taking generation 1 every time walks only what the
    last activation left there: ~0.1 ms, as a pass over generation 0 alone costs."""
    gc.collect(1)


class Tenancy:
    """How this process knows the tenants of the Registry (actors/registry.py): `env.tenants`
    loads a tenant's settings from its row on first use, and `watch` re-reads the registry
    when another connection committed to it (PRAGMA data_version, every REGISTRY_POLL_S, and
    at once when an unknown tenant is asked for), dropping the views of changed tenants."""

    def __init__(
        self, settings: Settings, env: Env, environ: Mapping[str, str], system: ActorSystem
    ) -> None:
        self.settings = settings
        self.env = env
        self.environ = environ
        self.system = system
        self.reader = RegistryReader(settings, env.backend)
        self._remote = env.backend.remote  # see `sync_due`
        self.listeners: list[Callable[[str], None]] = []
        self.schedules: dict[str, trio.CancelScope] = {}
        self.nursery: trio.Nursery | None = None
        self._synced = -math.inf
        self._wake = trio.Event()  # set when a tenant is activated: `watch` has work
        self._served: set[str] = set()  # activated since the last janitor pass
        self._round = TenantRound()
        # A row's settings are parsed and checked once per version of the row (a changed row
        # is another key), so a tenant activated again after the router let it go skips it.
        self.parse = lru_cache(maxsize=PARSED_SETTINGS)(partial(tenant_settings, settings))
        env.tenants.set_loader(self.load)

    def sync_due(self) -> None:
        """Before a request: re-read the registry if the last look is older than
        REGISTRY_POLL_S (one PRAGMA, or a stat while there is no registry), so no request acts
        on a change older than that, a host tenant's new origin included. With a remote
        backend a read may wait for the network, so `watch` reads it every REGISTRY_POLL_S
        in a thread instead, and requests use the snapshot: the same bound."""
        if not self._remote and trio.current_time() - self._synced >= REGISTRY_POLL_S:
            self.sync()

    def sync(self) -> None:
        """Read the registry now, on the loop: a local backend's (see `refresh`)."""
        self._synced = trio.current_time()
        self._changed(self.reader.refresh())

    async def refresh(self) -> None:
        """Read the registry now, where that stalls no request: inline for a local backend,
        in a thread for a remote one. A registry that cannot be reached (the database is down)
        leaves the snapshot as it was: requests go on and meet the storage's 503 themselves."""
        if not self._remote:
            self.sync()
            return
        self._synced = trio.current_time()
        try:
            read = await trio.to_thread.run_sync(self.reader.read)
        except TemporarilyUnavailable as exc:
            log.warning("registry not read, serving the last one read: %s", exc.detail)
            return
        self._changed(self.reader.apply(read))

    def _changed(self, tenants: set[str]) -> None:
        for tenant in tenants:
            for listener in self.listeners:
                listener(tenant)
            if self.holds(tenant):  # the first read "changes" every row: most are not here
                self.drop(tenant)

    def holds(self, tenant: str) -> bool:
        """Whether this process has something of `tenant` to let go: its loaded settings (with
        which its actors are made) or its key schedule."""
        return tenant in self.schedules or self.env.tenants.has(tenant)

    async def activate(self, tenant: str, make_app: Callable[[Env], Any]) -> Any:
        """A tenant's app on its first request: None when unknown (nothing spawned),
        "disabled", or the app, once its KeyManager has a key (a new tenant's first) and the
        clients of its settings are registered; its key schedule runs until it is dropped."""
        await self.refresh()  # activation is rare: act on the registry as it is now
        self._served.add(tenant)
        row = self.row(tenant)
        if row is None or row.state == "removing":
            return None
        if row.state == "disabled":
            return "disabled"
        own = self.env.find(tenant)
        if own is None:
            return "disabled"  # active, but its settings cannot be served here (logged)
        next_at = await self.system.ask(keys_address(tenant), NextKeyChange())
        for record in configured_clients(own.settings, self.environ, int(own.clock.now())):
            await self.system.ask(directory_address(tenant), RegisterClient(record))
        if tenant not in self.schedules and self.nursery is not None:
            scope = self.schedules[tenant] = trio.CancelScope()
            interval = own.settings.keys.reload_interval_s
            address = keys_address(tenant)

            async def schedule() -> None:
                with scope:
                    await run_key_schedule(self.system, address, own.clock, interval, next_at)

            self.nursery.start_soon(schedule)
            self._wake.set()
        app = make_app(own)
        promote_young()
        return app

    def drop(self, tenant: str) -> None:
        """Forget a tenant's settings and stop its key schedule and actors (changed, disabled,
        removed, or idle): its next request activates it afresh from disk."""
        self.env.tenants.forget(tenant)
        scope = self.schedules.pop(tenant, None)
        if scope is not None:
            scope.cancel()
        if self.nursery is not None:
            self.nursery.start_soon(self.system.retire_tenant, tenant)

    def row(self, tenant: str) -> TenantRow | None:
        row = self.reader.get(tenant)
        if row is None and not self._remote and TENANT_ID.fullmatch(tenant) and tenant != TENANT:
            self.sync()  # one cheap PRAGMA: a tenant added a moment ago is seen at once
            row = self.reader.get(tenant)
        return row

    def load(self, tenant: str) -> TenantConfig | None:
        row = self.row(tenant)
        if row is None or row.state != "active":
            return None
        try:
            own = self.parse(row)
            configured_clients(own, self.environ, 0)  # their secrets' variables are set here
            return TenantConfig(
                own,
                load_upstream_secret(own, self.environ),
                load_initial_access_tokens(own, self.environ),
            )
        except ConfigError as exc:  # e.g. a secret's variable unset in this process
            log.error("tenant %s cannot be served: %s", tenant, exc)  # noqa: TRY400 (said, no trace)
            return None

    async def collect(self, interval_s: float) -> None:
        """The janitor of the registry's tenants: a pass every `interval_s`."""
        while True:
            await trio.sleep(interval_s)
            await self.collect_pass()

    async def collect_pass(self) -> list[str]:
        """One pass over the tenants due (`TenantRound`), one at a time like the default
        tenant's; a tenant that is not live here is put away after its pass (its actors
        closed, its settings forgotten), so a pass leaves nothing of idle tenants behind.
        Answers the tenants visited."""
        await self.refresh()
        active = sorted(t for t, row in self.reader.rows.items() if row.state == "active")
        served, self._served = self._served | self.schedules.keys(), set()
        visited = []
        for tenant in self._round.visit(active, served):
            if not self._remote and not self.env.tenant_dir(tenant).is_dir():
                continue  # never served: nothing to collect (a remote backend has no dir)
            visited.append(tenant)
            try:
                await collect_once(self.system, self.env, tenant)
            except OAuthError as exc:
                log.warning("janitor pass of tenant %s failed: %s", tenant, exc)
            if tenant not in self.schedules and tenant not in self._served:
                self.env.tenants.forget(tenant)  # not activated meanwhile: idle
                await self.system.retire_tenant(tenant)
        return visited

    async def watch(self) -> None:
        """While some tenant is live in this process, look at the registry every
        REGISTRY_POLL_S, so an idle tenant that was disabled or removed has its actors stopped
        (before `tenants remove` deletes its directory). With none live there is nothing to
        stop, and a single-tenant server never wakes for it; requests look for themselves
        (`sync_due`). With a remote backend requests do not look, so this always reads."""
        try:
            while True:
                if not self.schedules and not self._remote:
                    self._wake = trio.Event()
                    await self._wake.wait()
                await self.refresh()
                await trio.sleep(REGISTRY_POLL_S)
        finally:
            self.reader.close()


async def wait_for_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            return


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """How a worker process of `oauthd serve --workers N` is wired to its supervisor
    (workers.py). Every worker runs the whole runtime, key schedule included: keys change in
    BEGIN IMMEDIATE transactions that re-read the keys shard, so concurrent ticks are safe,
    and each process must switch its own signer on time. The janitor runs in worker 0 only:
    concurrent passes would be safe (`oauthd gc` runs beside a server) but only repeat work."""

    index: int  # 0 runs the janitor
    listen_fd: int  # the supervisor's listening socket, inherited
    ready_fd: int  # one byte once serving, then closed: the supervisor's readiness signal
    lifeline_fd: int  # read end of a pipe only the supervisor writes: EOF means it is gone
    admin_fd: int = -1  # the admin API's listening socket: worker 0's only, -1 elsewhere

    @property
    def runs_janitor(self) -> bool:
        return self.index == 0


async def wait_for_signal_or_eof(fd: int) -> None:
    """A worker's shutdown trigger: SIGTERM/SIGINT from the supervisor, or the supervisor's
    end of the lifeline closing (it died without stopping us: do not serve on as an orphan)."""
    async with trio.open_nursery() as nursery:

        async def lifeline() -> None:
            async with trio.lowlevel.FdStream(os.dup(fd)) as stream:
                while await stream.receive_some():
                    pass
            log.warning("the supervisor is gone, shutting down")
            nursery.cancel_scope.cancel()

        async def signals() -> None:
            await wait_for_signal()
            nursery.cancel_scope.cancel()

        nursery.start_soon(lifeline)
        nursery.start_soon(signals)


def report_ready(fd: int) -> None:
    try:
        os.write(fd, b"1")
    finally:
        os.close(fd)


async def serve(
    settings: Settings,
    *,
    shutdown: Callable[[], Awaitable[Any]] = wait_for_signal,
    clock: Clock | None = None,
    listen: str | None = None,
    fetch_transport: object | None = None,
    worker: WorkerRole | None = None,
    before_listen: Callable[[], None] = lambda: None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` returns: in-flight requests finish, then actors close.
    `fetch_transport`: an httpx transport for the Fetcher (tests; None is the network).
    `worker`: this process is one of `--workers N` (its socket, readiness and shutdown).
    `before_listen`: called once everything is up, just before the listener opens."""
    started = time.perf_counter()
    if worker is not None:
        shutdown = partial(wait_for_signal_or_eof, worker.lifeline_fd)
    try:
        await _serve(
            settings,
            shutdown,
            clock,
            listen,
            started,
            task_status,
            fetch_transport,
            worker,
            before_listen,
        )
    finally:
        flush_logs()


def front_door(runtime: Runtime) -> TenantRouter:
    """The ASGI app every engine serves (and `oauthd.asgi:app` hands its server): the root
    tenant's routes, and each path tenant's, built on its first request."""
    metrics_token = load_metrics_token(runtime.settings, os.environ)
    tenancy = runtime.tenancy

    def make_app(env: Env) -> Any:
        return create_app(app_state(runtime, env, metrics_token))

    router = TenantRouter(
        make_app(runtime.env),
        runtime.settings.issuer_path,
        partial(tenancy.activate, make_app=make_app),
        tenancy.drop,
        before=tenancy.sync_due,
        hosts=tenancy.reader.hosts,
        hosted=tenancy.reader.hosted,
        trusted_proxies=runtime.settings.limits.trusted_proxies,
    )
    tenancy.listeners.append(router.forget)
    return router


async def serve_process(settings: Settings, **options: Any) -> None:
    """`oauthd serve` as the whole of this process: `serve` (with its `options`), and before
    it listens, the objects startup left (modules, classes, settings, routes: ~80,000) are
    moved out of the garbage collector's sight (`gc.freeze`). A full collection, every few
    hundred requests, otherwise walks them all: ~40 ms on this project's VM, on the event
    loop, a p99 spike for whichever requests are in flight. Before the listener opens, so
    that no request (a readiness probe's, or the first ones after it) waits for that pass.
    Tests run `serve` instead, so that a test process never freezes what its other tests
    made."""
    await serve(settings, before_listen=freeze_startup_heap, **options)


def freeze_startup_heap() -> None:
    gc.collect()  # what startup made and dropped goes first: frozen garbage is never freed
    gc.freeze()


async def _serve(
    settings: Settings,
    shutdown: Callable[[], Awaitable[Any]],
    clock: Clock | None,
    listen: str | None,
    started: float,
    task_status: trio.TaskStatus[list[str]],
    fetch_transport: object | None = None,
    worker: WorkerRole | None = None,
    before_listen: Callable[[], None] = lambda: None,
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flush_logs_every)
        janitor = worker is None or worker.runs_janitor
        runtime: Runtime = await nursery.start(
            partial(
                open_runtime,
                settings,
                clock=clock,
                fetch_transport=fetch_transport,
                janitor=janitor,
            )
        )
        app = front_door(runtime)
        listen_fd = None if worker is None else worker.listen_fd
        stopping, admin_done = trio.Event(), trio.Event()

        async def stop_trigger() -> None:
            await shutdown()
            stopping.set()  # the admin listener stops with the public one

        async def http(*, task_status: trio.TaskStatus[list[str]]) -> None:
            await serve_http(
                app,
                settings,
                stop_trigger,
                listen=listen,
                listen_fd=listen_fd,
                task_status=task_status,
            )
            await admin_done.wait()
            nursery.cancel_scope.cancel()  # in-flight requests are done: now close the actors

        before_listen()
        admin_binds = await serve_admin(nursery, runtime, worker, stopping.wait, admin_done)
        binds: list[str] = await nursery.start(http)
        log.info(
            "oauthd %sserving %s at %s (dev_mode=%s) in %.0f ms",
            "" if worker is None else f"worker {worker.index} (pid {os.getpid()}) ",
            settings.issuer,
            ", ".join(binds),
            settings.dev_mode,
            (time.perf_counter() - started) * 1000,
        )
        if admin_binds:
            log.info("oauthd admin API at %s", ", ".join(admin_binds))
        if worker is not None:
            flush_logs()  # this worker's lines come before the supervisor's that it serves
            report_ready(worker.ready_fd)
        task_status.started(binds)


def admin_state(runtime: Runtime, environ: Mapping[str, str]) -> AdminState:
    settings, env = runtime.settings, runtime.env
    rate = settings.admin.auth_failures
    return AdminState(
        TenantAdmin(runtime.system, env),
        load_admin_tokens(settings, environ),
        Limiter(rate.requests, rate.window_s, env.clock, settings.limits.max_tracked_keys),
        settings.limits.trusted_proxies,
        settings.limits.max_body_bytes,
        env.metrics,
        settings.log.access_log,
    )


async def serve_admin(
    nursery: trio.Nursery,
    runtime: Runtime,
    worker: WorkerRole | None,
    shutdown: Callable[[], Awaitable[Any]],
    done: trio.Event,
) -> list[str]:
    """The admin API on its own listener, when `[admin] listen` is set: bound here by a lone
    server, or inherited from the `--workers` supervisor by worker 0 alone (so a deployment
    has it once, and a restarted worker 0 takes it over). Sets `done` once it has stopped
    (at once when this process serves none). Returns its binds."""
    settings = runtime.settings
    if not settings.admin.enabled or (worker is not None and worker.admin_fd < 0):
        done.set()
        return []
    app = create_admin_app(admin_state(runtime, os.environ))
    listen_fd = None if worker is None else worker.admin_fd

    async def http(*, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve_http(
                app,
                settings,
                shutdown,
                listen=settings.admin.listen,
                listen_fd=listen_fd,
                task_status=task_status,
            )
        finally:
            done.set()

    binds: list[str] = await nursery.start(http)
    return binds
