"""The Registry actor: the tenants beyond `default` (docs/architecture.md "Tenants").

It owns `<data_dir>/registry.sqlite`: id, issuer, state and per-tenant settings (TOML text in
the file's shape, checked by the same loader and checks as the file). Each change is one
BEGIN IMMEDIATE transaction, so a CLI beside a running server and the server's own actor are
ordered by the file's write lock. Readers in every process (`RegistryReader`) notice a commit
by any connection through `PRAGMA data_version`, a cheap check that `server.Tenancy` makes at
most `REGISTRY_POLL_S` apart for tenant requests (and at once for an unknown tenant), so every
worker acts on a change within that bound."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

from oauthd.actors.shard import ShardActor, command, query
from oauthd.actors.wiring import DEFAULT_TENANT, Env
from oauthd.errors import ConfigError, Conflict, InvalidRequest, NotFound
from oauthd.runtime import Address, Command, Query
from oauthd.settings import Settings, load_tenant_settings
from oauthd.storage import Backend, RegistryStore
from oauthd.storage.registry import TENANT_ID, Changes, TenantRow, TenantState

__all__ = [
    "REGISTRY_POLL_S",
    "TENANT_ID",
    "AddTenant",
    "DeleteTenant",
    "GetTenant",
    "ListTenants",
    "Registry",
    "RegistryReader",
    "SetTenantState",
    "TenantRow",
    "UpdateTenant",
    "check_tenant_id",
    "is_host_tenant",
    "issuer_hosts",
    "own_origin",
    "path_issuer",
    "registry_address",
    "tenant_settings",
]

REGISTRY_POLL_S = 1.0  # every process sees a registry change within this long
DEFAULT_PORTS = {"https": 443, "http": 80}


def registry_address() -> Address:
    return Address(DEFAULT_TENANT, "registry", "")


def check_tenant_id(tenant: str) -> None:
    if not TENANT_ID.fullmatch(tenant):
        raise InvalidRequest(
            f"tenant id must match [a-z0-9][a-z0-9-]{{0,62}}, got {tenant!r}",
        )
    if tenant == DEFAULT_TENANT:
        raise InvalidRequest("tenant id 'default' is reserved for the file's tenant")


def path_issuer(root: Settings, tenant: str) -> str:
    """A path tenant's issuer: `<root issuer>/t/<tenant>`."""
    return f"{root.issuer}/t/{tenant}"


def tenant_settings(root: Settings, row: TenantRow) -> Settings:
    """The tenant's settings over the file's server-wide keys; ConfigError names the key."""
    return load_tenant_settings(root, row.issuer, row.settings, f"tenant {row.tenant}")


def is_host_tenant(row: TenantRow) -> bool:
    """Whether the tenant's issuer is an origin of its own, chosen by `Host` (a path
    tenant's issuer has the path `/t/<id>`)."""
    return row.issuer == own_origin(row.issuer)


def issuer_hosts(issuer: str) -> tuple[str, ...]:
    """The values of `Host` that name an issuer's origin (RFC 9110 §7.2: host, and port
    unless it is the scheme's default, which a client may still write), in lower case."""
    parts = urlsplit(issuer)
    host = parts.netloc.lower()
    default = DEFAULT_PORTS.get(parts.scheme)
    if parts.port is None and default is not None:
        return (host, f"{host}:{default}")
    return (host,)


def own_origin(issuer: str) -> str:
    """The one way to write an own-origin issuer: `scheme://host[:port]`, host in lower case,
    no default port, no user, path, query or fragment. Clients compare issuers byte for byte
    (RFC 8414 §3.3) and tenants are told apart by origin, so any other spelling is refused."""
    parts = urlsplit(issuer)
    try:
        port = parts.port
    except ValueError:
        port = -1  # not a port: the spelling below cannot match
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    shown = "" if port is None or port == DEFAULT_PORTS.get(parts.scheme) else f":{port}"
    return f"{parts.scheme}://{host}{shown}"


def _checked(root: Settings, row: TenantRow) -> None:
    """The same checks as the file: a fault is an invalid_request whose text names the key.
    An own-origin issuer is an origin alone (its endpoints at its root, its cookies
    `__Host-` ones) whose host is not the root issuer's."""
    hosted = is_host_tenant(row)
    if not hosted and row.issuer != path_issuer(root, row.tenant):
        raise InvalidRequest(
            f"issuer: a tenant's issuer is {path_issuer(root, row.tenant)} or an origin of "
            f"its own written as scheme://host[:port] (lower case, no path, no default port), "
            f"e.g. {own_origin(row.issuer)}; got {row.issuer!r}"
        )
    try:
        tenant_settings(root, row)
    except ConfigError as exc:
        raise InvalidRequest(str(exc)) from None
    if hosted and any(host in issuer_hosts(root.issuer) for host in issuer_hosts(row.issuer)):
        raise InvalidRequest(f"issuer: {row.issuer} is on the root issuer's host")


def _rivals(issuer: str) -> tuple[str, ...]:
    """The issuers another tenant may not have: this one, and any other on the same Host."""
    hosts = issuer_hosts(issuer)
    return (
        issuer,
        *(own_origin(f"{scheme}://{host}") for host in hosts for scheme in DEFAULT_PORTS),
    )


@dataclass(frozen=True, slots=True)
class AddTenant(Command[TenantRow]):
    """Command: create a tenant, active. `issuer` "" is the path issuer, else an origin."""

    tenant: str
    issuer: str = ""
    settings: str = ""


@dataclass(frozen=True, slots=True)
class UpdateTenant(Command[TenantRow]):
    """Command: replace a tenant's issuer and/or settings (None keeps them; issuer "" is
    the path issuer)."""

    tenant: str
    issuer: str | None = None
    settings: str | None = None


@dataclass(frozen=True, slots=True)
class SetTenantState(Command[TenantRow]):
    """Command: active, disabled (403, data kept) or removing (404; its directory goes next)."""

    tenant: str
    state: TenantState


@dataclass(frozen=True, slots=True)
class DeleteTenant(Command[None]):
    """Command: forget a tenant whose directory is gone."""

    tenant: str


@dataclass(frozen=True, slots=True)
class GetTenant(Query[TenantRow | None]):
    tenant: str


@dataclass(frozen=True, slots=True)
class ListTenants(Query[list[TenantRow]]):
    pass


class Registry(ShardActor[RegistryStore]):
    def __init__(self, env: Env) -> None:
        super().__init__(partial(env.backend.open_registry, env.settings))
        self.env = env

    def now(self) -> int:
        return int(self.env.clock.now())

    def _existing(self, tenant: str) -> TenantRow:
        row = self.store.load_tenant(tenant)
        if row is None or row.state == "removing":
            raise NotFound(f"no tenant {tenant!r}")
        return row

    def _issuer(self, tenant: str, given: str) -> str:
        """The issuer asked for: "" is the path issuer."""
        return given or path_issuer(self.env.settings, tenant)

    def _check_issuer(self, row: TenantRow) -> None:
        _checked(self.env.settings, row)
        rivals = _rivals(row.issuer) if is_host_tenant(row) else (row.issuer,)
        taken = self.store.issuer_taken(rivals, row.tenant)
        if taken is not None:
            raise Conflict(f"issuer: another tenant's issuer {taken} has the same host")

    @command(AddTenant)
    def add(self, message: AddTenant) -> TenantRow:
        check_tenant_id(message.tenant)
        if self.store.load_tenant(message.tenant) is not None:
            raise Conflict(f"tenant {message.tenant!r} already exists")
        now = self.now()
        issuer = self._issuer(message.tenant, message.issuer)
        row = TenantRow(message.tenant, issuer, "active", message.settings, now, now)
        self._check_issuer(row)
        self.store.insert_tenant(row)
        self.audit("tenant_added", tenant=row.tenant)
        return row

    @command(UpdateTenant)
    def update(self, message: UpdateTenant) -> TenantRow:
        old = self._existing(message.tenant)
        row = TenantRow(
            old.tenant,
            old.issuer if message.issuer is None else self._issuer(message.tenant, message.issuer),
            old.state,
            old.settings if message.settings is None else message.settings,
            old.created_at,
            self.now(),
        )
        self._check_issuer(row)
        self.store.update_tenant(row)
        self.audit("tenant_updated", tenant=row.tenant)
        return row

    @command(SetTenantState)
    def set_state(self, message: SetTenantState) -> TenantRow:
        old = self._existing(message.tenant)
        row = TenantRow(
            old.tenant, old.issuer, message.state, old.settings, old.created_at, self.now()
        )
        self.store.update_tenant(row)
        self.audit("tenant_state", tenant=row.tenant, state=row.state)
        return row

    @command(DeleteTenant)
    def delete(self, message: DeleteTenant) -> None:
        self.store.delete_tenant(message.tenant)
        self.audit("tenant_removed", tenant=message.tenant)

    @query(GetTenant)
    def get(self, message: GetTenant) -> TenantRow | None:
        row = self.store.load_tenant(message.tenant)
        return None if row is None or row.state == "removing" else row

    @query(ListTenants)
    def list_all(self, _message: ListTenants) -> list[TenantRow]:
        return [row for row in self.store.load_tenants() if row.state != "removing"]


class RegistryReader:
    """This process's snapshot of the registry, brought up to date when another connection
    committed (`PRAGMA data_version` changed) by reading the changes numbered after the last
    one it read (storage/registry.py). `refresh()` answers the tenants whose row changed and
    keeps `hosts` (each `Host` value of an own-origin issuer -> its tenant) in step, so the
    front door finds a host tenant with one dict lookup."""

    def __init__(self, settings: Settings, backend: Backend) -> None:
        self._settings = settings
        self._backend = backend
        self._store: RegistryStore | None = None
        self._version = -1
        self._seq = -1  # the last change read; -1: none yet, the first read takes every row
        self.rows: dict[str, TenantRow] = {}
        self.hosts: dict[str, str] = {}  # changed in place: the router holds this dict
        self.hosted: set[str] = set()  # the tenants in `hosts`, never reached by a path

    def _open(self) -> RegistryStore:
        if self._store is None:
            self._store = self._backend.open_registry(self._settings)
        return self._store

    def refresh(self) -> set[str]:
        """`read` then `apply`, where reading cannot stall anyone (a local file)."""
        return self.apply(self.read())

    def read(self) -> tuple[int, Changes] | None:
        """The registry's version and the changes after the last one applied, or None if
        nothing changed. Blocking: a remote backend's caller runs it in a thread, and it
        touches none of the snapshot the event loop reads."""
        if self._store is None and not self._backend.has_registry(self._settings):
            return None  # no tenant was ever added: a single-tenant data dir gains no file
        store = self._open()
        version = store.data_version()
        if version == self._version:
            return None
        return version, store.changes_since(self._seq)

    def apply(self, read: tuple[int, Changes] | None) -> set[str]:
        """Bring the snapshot up to what `read` found: the tenants whose row changed. A read
        overtaken by another one applied meanwhile is ignored."""
        if read is None or read[1].seq < self._seq:
            return set()
        self._version, changes = read
        self._seq = changes.seq
        new: dict[str, TenantRow | None] = dict.fromkeys(changes.removed)
        new.update((row.tenant, row) for row in changes.rows)
        changed = {t for t, row in new.items() if row != self.rows.get(t)}
        for tenant in changed:
            row = new[tenant]
            self._place(self.rows.get(tenant), row)
            if row is None:
                del self.rows[tenant]
            else:
                self.rows[tenant] = row
        return changed

    def _place(self, old: TenantRow | None, new: TenantRow | None) -> None:
        """Move a changed tenant's hosts in `hosts`; a removing tenant's stay until its row
        goes, so its host answers 404 rather than reaching the root app meanwhile."""
        if old is not None and is_host_tenant(old):
            self.hosted.discard(old.tenant)
            for host in issuer_hosts(old.issuer):
                if self.hosts.get(host) == old.tenant:
                    del self.hosts[host]
        if new is not None and is_host_tenant(new):
            self.hosted.add(new.tenant)
            self.hosts.update(dict.fromkeys(issuer_hosts(new.issuer), new.tenant))

    def get(self, tenant: str) -> TenantRow | None:
        return self.rows.get(tenant)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
