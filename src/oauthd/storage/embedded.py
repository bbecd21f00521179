"""The embedded backend: the storage seam (`storage/seam.py`) on SQLite shard files.

Each store is a `Store` whose methods are the per-kind modules' functions, bound to it: the
same files, schemas, migrations and statements as before the seam, and a call costs what the
function call cost. `SqliteShard.run` is the one message's transaction: on the event loop with
no busy wait (a WAL commit costs microseconds, a thread hop more), in a thread when it must
wait (another process holds the shard's lock: `LockBusy`, nothing committed, run again there)
and in fsync mode, where the commit waits for the disk. The thread is never abandoned, so a
cancelled caller cannot cut a transaction short.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

import trio

from oauthd.settings import Settings
from oauthd.storage import (
    admin,
    clients,
    directory,
    expiry,
    federation,
    grant_tables,
    grants,
    keys,
    people,
)
from oauthd.storage import registry as registry_rows
from oauthd.storage.clients import CLIENT, ClientRecord
from oauthd.storage.directory import DIRECTORY
from oauthd.storage.federation import FEDERATION
from oauthd.storage.keys import KEYS
from oauthd.storage.registry import REGISTRY, registry_file
from oauthd.storage.seam import Backend, Rows
from oauthd.storage.sqlite import LockBusy, Schema, Store, tenant_dir

__all__ = [
    "SQLITE",
    "SqliteBackend",
    "SqliteClientStore",
    "SqliteDirectoryStore",
    "SqliteFederationStore",
    "SqliteKeyStore",
    "SqliteRegistryStore",
    "SqliteShard",
]

T = TypeVar("T")


class SqliteShard(Store):
    """A shard file opened for an actor, with the actor's transaction (`run`). `TABLES`: its
    tables, each with the name the seam gives it (`dump_rows`, `load_rows`)."""

    TABLES: ClassVar[dict[str, str]] = {}

    async def run(self, work: Callable[[], T], *, writes: bool) -> T:
        try:
            return self.run_now(work, writes=writes)
        except LockBusy:
            return await trio.to_thread.run_sync(self._once, work, writes, True)

    def run_now(self, work: Callable[[], T], *, writes: bool) -> T:
        if self._synchronous == "FULL":  # storage.fsync: the commit waits for the disk
            raise LockBusy(f"{self.path}: commits wait for the disk")
        return self._once(work, writes, False)

    def _once(self, work: Callable[[], T], writes: bool, wait: bool) -> T:
        if not writes:
            return self.read(work, wait=wait)
        with self.transaction(wait=wait):
            return work()

    def dump_rows(self) -> Rows:
        return {name: list(self.db.table(table).rows) for table, name in self.TABLES.items()}

    def load_rows(self, rows: Rows) -> None:
        for table, name in self.TABLES.items():
            self.conn.execute(f"DELETE FROM [{table}]")  # noqa: S608 (a constant name)
            self.db.table(table).insert_all(rows.get(name, ()))


S = TypeVar("S", bound=SqliteShard)


class SqliteClientStore(SqliteShard):
    TABLES: ClassVar[dict[str, str]] = {
        "client": "clients",
        **{table: table for table in grant_tables.TABLES},
    }
    load_client = clients.load_client
    save_client = clients.save_client
    delete_client = clients.delete_client
    touch_client = clients.touch_client
    spend_assertion_jti = clients.spend_assertion_jti
    insert_pending = grants.insert_pending
    load_pending = grants.load_pending
    set_pending_csrf = grants.set_pending_csrf
    set_pending_request = grants.set_pending_request
    consume_pending = grants.consume_pending
    insert_code = grants.insert_code
    load_code = grants.load_code
    mark_code_redeemed = grants.mark_code_redeemed
    insert_family = grants.insert_family
    load_family = grants.load_family
    revoke_family = grants.revoke_family
    insert_refresh = grants.insert_refresh
    load_refresh = grants.load_refresh
    mark_refresh_rotated = grants.mark_refresh_rotated
    insert_access_token = grants.insert_access_token
    load_access_token = grants.load_access_token
    revoke_access_token = grants.revoke_access_token
    insert_device_code = grants.insert_device_code
    load_device_code = grants.load_device_code
    set_device_poll = grants.set_device_poll
    decide_device_code = grants.decide_device_code
    mark_device_redeemed = grants.mark_device_redeemed
    list_grants = admin.list_grants
    revoke_grants = admin.revoke_grants
    collect_client_shard = expiry.collect_client_shard


class SqliteDirectoryStore(SqliteShard):
    TABLES: ClassVar[dict[str, str]] = {
        "clients": "client_index",
        **{t: t for t in ("user_codes", "users", "identities", "sessions", "consents")},
    }
    index_client = directory.index_client
    count_clients = directory.count_clients
    unindex_client = directory.unindex_client
    list_clients = directory.list_clients
    index_user_code = directory.index_user_code
    load_user_code = directory.load_user_code
    collect_directory = expiry.collect_directory
    load_user = people.load_user
    load_user_by_email = people.load_user_by_email
    insert_user = people.insert_user
    count_users = people.count_users
    update_profile = people.update_profile
    load_identity = people.load_identity
    insert_identity = people.insert_identity
    insert_session = people.insert_session
    load_session = people.load_session
    set_session_csrf = people.set_session_csrf
    delete_session = people.delete_session
    load_consent = people.load_consent
    save_consent = people.save_consent
    list_users = admin.list_users
    delete_user = admin.delete_user
    delete_consents = admin.delete_consents


class SqliteKeyStore(SqliteShard):
    TABLES: ClassVar[dict[str, str]] = {"keys": "keys"}
    load_keys = keys.load_keys
    insert_key = keys.insert_key
    update_key_times = keys.update_key_times
    delete_keys = keys.delete_keys


class SqliteFederationStore(SqliteShard):
    TABLES: ClassVar[dict[str, str]] = {"logins": "logins"}
    insert_login = federation.insert_login
    take_login = federation.take_login
    collect_logins = federation.collect_logins


class SqliteRegistryStore(SqliteShard):
    TABLES: ClassVar[dict[str, str]] = {"tenants": "tenants", "removed": "removed"}
    load_tenant = registry_rows.load_tenant
    load_tenants = registry_rows.load_tenants
    changes_since = registry_rows.changes_since
    issuer_taken = registry_rows.issuer_taken
    insert_tenant = registry_rows.insert_tenant
    update_tenant = registry_rows.update_tenant
    delete_tenant = registry_rows.delete_tenant


class SqliteBackend:
    """Shard files under `settings.data_dir` (docs/architecture.md "Storage"). Stateless but
    for the spawn check's cache of tenant directories, so one serves every process."""

    remote = False  # a read is a PRAGMA or a page of a local file: microseconds

    def __init__(self) -> None:
        self._roots: dict[tuple[Path, str], str] = {}  # (data dir, tenant) -> its directory

    @staticmethod
    def _open(settings: Settings, kind: type[S], path: Path, schema: Schema, create: bool) -> S:
        storage = settings.storage
        return kind(
            path,
            schema,
            create=create,
            fsync=storage.fsync,
            busy_timeout_ms=storage.busy_timeout_ms,
        )

    def open_client(self, settings: Settings, tenant: str, shard_key: str) -> SqliteClientStore:
        path = clients.client_shard_path(tenant_dir(settings.data_dir, tenant), shard_key)
        return self._open(settings, SqliteClientStore, path, CLIENT, False)

    def open_directory(self, settings: Settings, tenant: str) -> SqliteDirectoryStore:
        path = tenant_dir(settings.data_dir, tenant) / "directory.sqlite"
        return self._open(settings, SqliteDirectoryStore, path, DIRECTORY, True)

    def open_keys(self, settings: Settings, tenant: str) -> SqliteKeyStore:
        path = tenant_dir(settings.data_dir, tenant) / "keys.sqlite"
        return self._open(settings, SqliteKeyStore, path, KEYS, True)

    def open_federation(self, settings: Settings, tenant: str) -> SqliteFederationStore:
        path = tenant_dir(settings.data_dir, tenant) / "federation.sqlite"
        return self._open(settings, SqliteFederationStore, path, FEDERATION, True)

    def open_registry(self, settings: Settings) -> SqliteRegistryStore:
        path = registry_file(settings.data_dir)
        return self._open(settings, SqliteRegistryStore, path, REGISTRY, True)

    def has_registry(self, settings: Settings) -> bool:
        return registry_file(settings.data_dir).exists()

    def client_exists(self, settings: Settings, tenant: str, shard_key: str) -> bool:
        root = self._roots.get((settings.data_dir, tenant))
        if root is None:
            root = self._roots[settings.data_dir, tenant] = str(
                tenant_dir(settings.data_dir, tenant)
            )
        return os.path.isfile(clients.client_shard_file(root, shard_key))

    def create_client(self, settings: Settings, tenant: str, record: ClientRecord) -> str:
        directory = tenant_dir(settings.data_dir, tenant)
        return clients.create_client_shard(directory, record, fsync=settings.storage.fsync)

    def list_clients(self, settings: Settings, tenant: str) -> list[str]:
        return clients.list_client_shards(tenant_dir(settings.data_dir, tenant))

    def client_modified_at(self, settings: Settings, tenant: str, shard_key: str) -> float | None:
        return clients.client_shard_modified_at(tenant_dir(settings.data_dir, tenant), shard_key)

    def remove_client(self, settings: Settings, tenant: str, shard_key: str) -> None:
        clients.remove_client_shard(tenant_dir(settings.data_dir, tenant), shard_key)

    def remove_tenant(self, settings: Settings, tenant: str) -> None:
        registry_rows.remove_tenant_dir(tenant_dir(settings.data_dir, tenant))


SQLITE: Backend = SqliteBackend()  # the default backend of every Env
