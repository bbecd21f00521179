"""The storage seam (`storage/seam.py`) on PostgreSQL: every store of every tenant in one
database, one set of tables per kind, keyed by tenant (and a client's rows by its shard key).

A store is opened per actor and runs each of its messages as `Database.ordered` on the
actor's address (`tenant/kind/key`): one transaction that first takes the address's advisory
lock, so the reads that decide a write see the last commit of that actor on any host. The
driver is synchronous, so `run` goes to a worker thread, at most `pool_size` at once (a trio
`CapacityLimiter`, waited for at most the pool's timeout), never on the event loop; `work` may
run again after a serialization failure or a deadlock, and does nothing outside the
transaction.

`data_version()` is what `PRAGMA data_version` is to a SQLite shard: a number that changes
when another process commits to the actor's state. Each writing message adds one to its
address's row in `oauthd_versions`; the store answers that counter, read under the lock,
less its own additions, so its own writes do not count and another host's do.

Secrets are stored as they are in SQLite: hashes only (`hash_secret`), never a plaintext code,
token, session id or client secret. The statements are the SQLite ones with the key columns
first; the rows are the same dataclasses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import astuple
from typing import Any, ClassVar, TypeVar

import psycopg
import trio

from oauthd.settings import Settings
from oauthd.storage.admin import GrantRow, UserListing
from oauthd.storage.clients import COLUMNS as CLIENT_COLUMNS
from oauthd.storage.clients import ClientRecord, record_from_row, record_values, shard_key_for
from oauthd.storage.federation import LoginRow, login_values
from oauthd.storage.grants import (
    AccessTokenRow,
    CodeRow,
    DeviceRow,
    FamilyRow,
    PendingRow,
    RefreshRow,
    device_row,
    family_row,
    family_values,
)
from oauthd.storage.keys import KeyRow
from oauthd.storage.people import (
    ConsentRow,
    SessionRow,
    UserRow,
    consent_row,
    consent_values,
    user_values,
)
from oauthd.storage.postgres import LOCK, Database, PgSchema, Probe, probe, unavailable
from oauthd.storage.registry import COLUMNS as TENANT_COLUMNS
from oauthd.storage.registry import Changes, TenantRow
from oauthd.storage.seam import Backend, Rows
from oauthd.storage.secrets import hash_secret
from oauthd.storage.sqlite import LockBusy

__all__ = [
    "PG_SCHEMA",
    "PgBackend",
    "PgClientStore",
    "PgDirectoryStore",
    "PgFederationStore",
    "PgKeyStore",
    "PgRegistryStore",
    "PgShard",
    "open_postgres",
    "probe_postgres",
]

T = TypeVar("T")
BUMP = (
    "INSERT INTO oauthd_versions VALUES (%s, 1) ON CONFLICT (address)"
    " DO UPDATE SET version = oauthd_versions.version + 1"
)
_current = threading.local()  # `conn`: the transaction this thread is in (PgShard._using)
C = "tenant text NOT NULL, shard_key text NOT NULL"  # a client's rows
D = "tenant text NOT NULL"  # a tenant's

PG_SCHEMA = PgSchema(
    "oauthd",
    (
        f"""
        CREATE TABLE oauthd_versions (address text PRIMARY KEY, version bigint NOT NULL);
        CREATE TABLE clients ({C}, client_id text NOT NULL, client_name text,
            redirect_uris text, grant_types text, response_types text,
            token_endpoint_auth_method text, scope text, first_party bigint,
            secret_hash text, source text, created_at bigint, metadata text,
            registration_token_hash text, deleted_at bigint, last_used_at bigint,
            fresh_until bigint, PRIMARY KEY (tenant, shard_key));
        CREATE TABLE pending ({C}, id_hash text, browser_hash text, csrf_hash text,
            request text, created_at bigint, expires_at bigint,
            PRIMARY KEY (tenant, shard_key, id_hash));
        CREATE TABLE codes ({C}, code_hash text, "grant" text, expires_at bigint,
            redeemed_at bigint, family_id text, PRIMARY KEY (tenant, shard_key, code_hash));
        CREATE TABLE families ({C}, family_id text, user_id text, scope text, resources text,
            auth_time bigint, created_at bigint, expires_at bigint, revoked_at bigint,
            PRIMARY KEY (tenant, shard_key, family_id));
        CREATE TABLE refresh_tokens ({C}, token_hash text, family_id text, issued_at bigint,
            rotated_at bigint, replay text, PRIMARY KEY (tenant, shard_key, token_hash));
        CREATE TABLE access_tokens ({C}, jti text, family_id text, expires_at bigint,
            revoked_at bigint, PRIMARY KEY (tenant, shard_key, jti));
        CREATE INDEX access_tokens_family ON access_tokens (tenant, shard_key, family_id);
        CREATE TABLE device_codes ({C}, code_hash text, request text, created_at bigint,
            expires_at bigint, "interval" bigint, next_poll_at bigint, status text,
            user_id text, auth_time bigint, family_id text,
            PRIMARY KEY (tenant, shard_key, code_hash));
        CREATE TABLE assertion_jtis ({C}, jti_hash text, expires_at bigint,
            PRIMARY KEY (tenant, shard_key, jti_hash));
        CREATE TABLE client_index ({D}, client_id text, shard_key text NOT NULL, source text,
            created_at bigint, PRIMARY KEY (tenant, client_id), UNIQUE (tenant, shard_key));
        CREATE TABLE user_codes ({D}, user_code text, shard_key text, code_hash text,
            expires_at bigint, PRIMARY KEY (tenant, user_code));
        CREATE TABLE users ({D}, user_id text, email text, name text, email_verified bigint,
            password_hash text, created_at bigint, PRIMARY KEY (tenant, user_id));
        CREATE UNIQUE INDEX users_email ON users (tenant, lower(email));
        CREATE TABLE identities ({D}, provider text, subject text, user_id text,
            created_at bigint, PRIMARY KEY (tenant, provider, subject));
        CREATE TABLE sessions ({D}, session_hash text, user_id text, auth_time bigint,
            expires_at bigint, csrf_hash text, PRIMARY KEY (tenant, session_hash));
        CREATE TABLE consents ({D}, user_id text, client_id text, scope text, resources text,
            granted_at bigint, redirects text, PRIMARY KEY (tenant, user_id, client_id));
        CREATE TABLE keys ({D}, kid text, alg text, created_at bigint, activate_at bigint,
            retire_at bigint, remove_at bigint, public_jwk text, private_jwk text,
            PRIMARY KEY (tenant, kid));
        CREATE TABLE logins ({D}, state_hash text, binding_hash text, request_id text,
            started_at bigint, expires_at bigint, max_age bigint, force_login bigint,
            PRIMARY KEY (tenant, state_hash));
        CREATE TABLE tenants (tenant text PRIMARY KEY, issuer text UNIQUE, state text,
            settings text, created_at bigint, updated_at bigint, seq bigint NOT NULL);
        CREATE INDEX tenants_seq ON tenants (seq);
        CREATE TABLE removed (tenant text PRIMARY KEY, seq bigint NOT NULL);
        CREATE TABLE changes (seq bigint NOT NULL);
        INSERT INTO changes (seq) VALUES (0);
        """,  # noqa: S608 (constant column lists)
    ),
)


class PgShard:
    """One actor's rows: `scope` are the key columns' values (tenant, and shard key), put
    before every statement's own parameters. `TABLES`: the tables holding its rows."""

    closes_slowly = False  # close() releases nothing: the connections are the pool's

    TABLES: ClassVar[tuple[str, ...]] = ()
    SCOPE = ("tenant", "shard_key")  # the names of the scope's columns, in its order

    def __init__(
        self, db: Database, limiter: trio.CapacityLimiter, address: str, scope: tuple[str, ...]
    ) -> None:
        self._db = db
        self._limiter = limiter
        self.address = address
        self._scope = scope
        self._conn: psycopg.Connection | None = None  # inside a transaction of this store
        self._changed = False  # a statement of the transaction changed a row
        self._own = 0  # the versions this store's own commits added

    async def run(self, work: Callable[[], T], *, writes: bool) -> T:
        """`writes` means nothing here: every message holds the actor's lock. A message waits
        for its turn (a worker thread, then a connection) at most the pool's timeout each,
        and not at all while the database is known to be unreachable: 503 instead, so that
        the time to an answer does not grow with the requests queued ahead."""
        self._db.check_reachable()
        await self._turn()
        try:
            return await trio.to_thread.run_sync(self._ordered, work, abandon_on_cancel=False)
        finally:
            self._limiter.release()

    def run_now(self, work: Callable[[], T], *, writes: bool) -> T:
        """Never: every message waits for its turn and a connection (`run`)."""
        raise LockBusy(f"{self.address}: a PostgreSQL message waits for its turn")

    async def _turn(self) -> None:
        with trio.move_on_after(self._db.timeout_s):
            await self._limiter.acquire()
            return
        raise unavailable(f"no turn within {self._db.timeout_s:g} s")

    def _ordered(self, work: Callable[[], T]) -> T:
        def inside(conn: psycopg.Connection) -> T:
            with self._using(conn):
                return work()

        result = self._db.ordered(self.address, inside)
        self._own += self._changed  # committed: ordered() returned
        return result

    @contextmanager
    def _using(self, conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
        """This store's statements go to `conn` meanwhile, and so do those of a store opened
        inside by this thread (`PgBackend.create_client`). If one changed a row, the address's
        version moves with the transaction."""
        outer = getattr(_current, "conn", None)
        self._conn, self._changed, _current.conn = conn, False, conn
        try:
            yield conn
            if self._changed:
                conn.execute(BUMP, (self.address,))
        finally:
            self._conn, _current.conn = None, outer

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[psycopg.Connection]:
        """The ordered transaction for a caller that may block (it always waits here)."""
        with self._db.holding(self.address) as conn, self._using(conn):
            yield conn
        self._own += self._changed

    @contextmanager
    def reading(self, *, wait: bool = True) -> Iterator[psycopg.Connection]:
        with self.transaction() as conn:
            yield conn

    def data_version(self) -> int:
        found = self._read(
            "SELECT version FROM oauthd_versions WHERE address = %s", (self.address,)
        )
        return (int(found[0][0]) if found else 0) - self._own

    def close(self) -> None:
        """Nothing to release: connections belong to the pool."""

    # --- whole rows (oauthd migrate) ----------------------------------------------------------

    def _where(self) -> str:
        return " AND ".join(f"{column} = %s" for column in self.SCOPE[: len(self._scope)])

    def dump_rows(self) -> Rows:
        assert self._conn is not None, "a dump outside the store's transaction"
        scope = set(self.SCOPE[: len(self._scope)])
        dumped: Rows = {}
        for table in self.TABLES:
            cursor = self._conn.execute(
                f"SELECT * FROM {table} WHERE {self._where() or 'true'}".encode(),  # noqa: S608
                self._scope,
            )
            names = [column.name for column in cursor.description or ()]
            dumped[table] = [
                {k: v for k, v in zip(names, row, strict=True) if k not in scope}
                for row in cursor.fetchall()
            ]
        return dumped

    def load_rows(self, rows: Rows) -> None:
        assert self._conn is not None, "a load outside the store's transaction"
        scope = self.SCOPE[: len(self._scope)]
        for table in self.TABLES:
            self.change(f"DELETE FROM {table} WHERE {self._where() or 'true'}")  # noqa: S608
            for row in rows.get(table, ()):
                columns = ", ".join(f'"{name}"' for name in (*scope, *row))
                marks = ", ".join(["%s"] * (len(scope) + len(row)))
                self.change(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608
                    tuple(row.values()),
                )

    # --- statements ------------------------------------------------------------------------

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a statement without the scope (the caller's own parameters only)."""
        if self._conn is not None:
            return self._conn.execute(sql.encode(), params).fetchall()
        return self._db.ordered(self.address, lambda c: c.execute(sql.encode(), params).fetchall())

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a statement whose first parameters are the scope's."""
        return self._read(sql, (*self._scope, *params))

    def change(self, sql: str, params: tuple[Any, ...] = (), *, at: int = 0) -> int:
        """Run a statement whose parameters are `params` with the scope's inserted at `at`
        (0: first; an UPDATE's SET values come before its WHERE); rows changed."""
        assert self._conn is not None, "a write outside the store's transaction"
        values = (*params[:at], *self._scope, *params[at:])
        count = self._conn.execute(sql.encode(), values).rowcount
        self._changed = self._changed or count > 0
        return count

    def changed_rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """`rows` of a statement that changes what it returns (UPDATE/DELETE ... RETURNING)."""
        assert self._conn is not None, "a write outside the store's transaction"
        found = self.rows(sql, params)
        self._changed = self._changed or bool(found)
        return found


K = "tenant = %s AND shard_key = %s"  # a client's rows
_CLIENT_MARKS = ",".join(["%s"] * 18)  # tenant, shard key and CLIENT_COLUMNS


class PgClientStore(PgShard):
    """A client's rows (`clients.py`, `grants.py`, `admin.py`, `expiry.py` in SQLite)."""

    TABLES = (
        "clients",
        "pending",
        "codes",
        "families",
        "refresh_tokens",
        "access_tokens",
        "device_codes",
        "assertion_jtis",
    )

    # --- the registration ---

    def load_client(self) -> ClientRecord | None:
        found = self.rows(f"SELECT {CLIENT_COLUMNS} FROM clients WHERE {K}")  # noqa: S608
        return record_from_row(found[0]) if found else None

    def save_client(self, record: ClientRecord) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in CLIENT_COLUMNS.split(", "))
        self.change(
            f"INSERT INTO clients (tenant, shard_key, {CLIENT_COLUMNS}) VALUES ({_CLIENT_MARKS})"  # noqa: S608
            f" ON CONFLICT (tenant, shard_key) DO UPDATE SET {updates}",
            record_values(record),
        )

    def delete_client(self, now: int) -> None:
        self.change(f"UPDATE clients SET deleted_at = %s WHERE {K}", (now,), at=1)  # noqa: S608
        for table in ("families", "access_tokens"):
            self.change(
                f"UPDATE {table} SET revoked_at = %s WHERE {K} AND revoked_at IS NULL",  # noqa: S608
                (now,),
                at=1,
            )
        self.change(f"DELETE FROM pending WHERE {K}")  # noqa: S608
        self.change(f"DELETE FROM device_codes WHERE {K} AND status != 'redeemed'")  # noqa: S608

    def touch_client(self, now: int) -> None:
        self.change(f"UPDATE clients SET last_used_at = %s WHERE {K}", (now,), at=1)  # noqa: S608

    def spend_assertion_jti(self, jti: str, expires_at: int, now: int) -> bool:
        self.change(f"DELETE FROM assertion_jtis WHERE {K} AND expires_at <= %s", (now,))  # noqa: S608
        jti_hash = hash_secret(jti)
        inserted = self.change(
            "INSERT INTO assertion_jtis VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (jti_hash, expires_at),
        )
        return inserted == 1

    # --- pending authorization requests and codes ---

    def insert_pending(
        self, request_id: str, browser: str, request: dict[str, Any], now: int, ttl_s: int
    ) -> None:
        self.change(
            "INSERT INTO pending VALUES (%s, %s, %s, %s, '', %s, %s, %s)",
            (hash_secret(request_id), hash_secret(browser), json.dumps(request), now, now + ttl_s),
        )

    def load_pending(self, request_id: str) -> PendingRow | None:
        found = self.rows(
            "SELECT browser_hash, csrf_hash, request, expires_at FROM pending"  # noqa: S608
            f" WHERE {K} AND id_hash = %s",
            (hash_secret(request_id),),
        )
        if not found:
            return None
        browser, csrf, request, expires_at = found[0]
        return PendingRow(browser, csrf, json.loads(request), expires_at)

    def set_pending_csrf(self, request_id: str, csrf: str) -> None:
        self.change(
            f"UPDATE pending SET csrf_hash = %s WHERE {K} AND id_hash = %s",  # noqa: S608
            (hash_secret(csrf), hash_secret(request_id)),
            at=1,
        )

    def set_pending_request(self, request_id: str, request: dict[str, Any]) -> None:
        self.change(
            f"UPDATE pending SET request = %s, csrf_hash = '' WHERE {K} AND id_hash = %s",  # noqa: S608
            (json.dumps(request), hash_secret(request_id)),
            at=1,
        )

    def consume_pending(self, request_id: str) -> None:
        self.change(f"DELETE FROM pending WHERE {K} AND id_hash = %s", (hash_secret(request_id),))  # noqa: S608

    def insert_code(self, code: str, grant: dict[str, Any], expires_at: int) -> None:
        self.change(
            "INSERT INTO codes VALUES (%s, %s, %s, %s, %s, NULL, NULL)",
            (hash_secret(code), json.dumps(grant), expires_at),
        )

    def load_code(self, code: str) -> CodeRow | None:
        found = self.rows(
            'SELECT "grant", expires_at, redeemed_at, family_id FROM codes'  # noqa: S608
            f" WHERE {K} AND code_hash = %s",
            (hash_secret(code),),
        )
        if not found:
            return None
        grant, expires_at, redeemed_at, family_id = found[0]
        return CodeRow(json.loads(grant), expires_at, redeemed_at, family_id)

    def mark_code_redeemed(self, code: str, now: int, family_id: str) -> None:
        self.change(
            f"UPDATE codes SET redeemed_at = %s, family_id = %s WHERE {K} AND code_hash = %s",  # noqa: S608
            (now, family_id, hash_secret(code)),
            at=2,
        )

    # --- grants ---

    def insert_family(self, family: FamilyRow, now: int) -> None:
        self.change(
            "INSERT INTO families VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL)",
            family_values(family, now),
        )

    def load_family(self, family_id: str) -> FamilyRow | None:
        found = self.rows(
            "SELECT family_id, user_id, scope, resources, auth_time, expires_at, revoked_at"  # noqa: S608
            f" FROM families WHERE {K} AND family_id = %s",
            (family_id,),
        )
        return family_row(found[0]) if found else None

    def revoke_family(self, family_id: str, now: int) -> None:
        for table in ("families", "access_tokens"):
            self.change(
                f"UPDATE {table} SET revoked_at = %s"  # noqa: S608
                f" WHERE {K} AND family_id = %s AND revoked_at IS NULL",
                (now, family_id),
                at=1,
            )

    def insert_refresh(self, token: str, family_id: str, now: int) -> None:
        self.change(
            "INSERT INTO refresh_tokens VALUES (%s, %s, %s, %s, %s, NULL, NULL)",
            (hash_secret(token), family_id, now),
        )

    def load_refresh(self, token: str) -> RefreshRow | None:
        found = self.rows(
            "SELECT family_id, issued_at, rotated_at, replay FROM refresh_tokens"  # noqa: S608
            f" WHERE {K} AND token_hash = %s",
            (hash_secret(token),),
        )
        return RefreshRow(*found[0]) if found else None

    def mark_refresh_rotated(self, token: str, now: int, replay: str) -> None:
        self.change(
            f"UPDATE refresh_tokens SET rotated_at = %s, replay = %s WHERE {K} AND token_hash = %s",  # noqa: S608
            (now, replay, hash_secret(token)),
            at=2,
        )

    def insert_access_token(self, jti: str, family_id: str | None, expires_at: int) -> None:
        self.change(
            "INSERT INTO access_tokens VALUES (%s, %s, %s, %s, %s, NULL)",
            (jti, family_id, expires_at),
        )

    def load_access_token(self, jti: str) -> AccessTokenRow | None:
        found = self.rows(
            f"SELECT expires_at, revoked_at FROM access_tokens WHERE {K} AND jti = %s",  # noqa: S608
            (jti,),
        )
        return AccessTokenRow(*found[0]) if found else None

    def revoke_access_token(self, jti: str, now: int) -> None:
        self.change(
            f"UPDATE access_tokens SET revoked_at = %s"  # noqa: S608
            f" WHERE {K} AND jti = %s AND revoked_at IS NULL",
            (now, jti),
            at=1,
        )

    # --- device codes ---

    def insert_device_code(
        self, code: str, request: dict[str, Any], now: int, expires_at: int, interval: int
    ) -> str:
        code_hash = hash_secret(code)
        self.change(
            "INSERT INTO device_codes VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, 'pending', NULL, NULL, NULL)",
            (code_hash, json.dumps(request), now, expires_at, interval, now),
        )
        return code_hash

    def load_device_code(self, code_hash: str) -> DeviceRow | None:
        found = self.rows(
            "SELECT code_hash, request, expires_at, interval, next_poll_at, status, user_id,"  # noqa: S608
            f" auth_time FROM device_codes WHERE {K} AND code_hash = %s",
            (code_hash,),
        )
        return device_row(found[0]) if found else None

    def set_device_poll(self, code_hash: str, interval: int, next_poll_at: int) -> None:
        self.change(
            f'UPDATE device_codes SET "interval" = %s, next_poll_at = %s'  # noqa: S608
            f" WHERE {K} AND code_hash = %s",
            (interval, next_poll_at, code_hash),
            at=2,
        )

    def decide_device_code(
        self, code_hash: str, status: str, user_id: str | None, auth_time: int | None
    ) -> None:
        self.change(
            "UPDATE device_codes SET status = %s, user_id = %s, auth_time = %s"  # noqa: S608
            f" WHERE {K} AND code_hash = %s AND status = 'pending'",
            (status, user_id, auth_time, code_hash),
            at=3,
        )

    def mark_device_redeemed(self, code_hash: str, family_id: str) -> None:
        self.change(
            "UPDATE device_codes SET status = 'redeemed', family_id = %s"  # noqa: S608
            f" WHERE {K} AND code_hash = %s",
            (family_id, code_hash),
            at=1,
        )

    # --- the admin CLI's and the janitor's ---

    def list_grants(self, user_id: str | None, now: int) -> list[GrantRow]:
        sql = (
            "SELECT family_id, user_id, scope, created_at, expires_at FROM families"  # noqa: S608
            f" WHERE {K} AND revoked_at IS NULL AND expires_at > %s"
        )
        params: tuple[object, ...] = (now,)
        if user_id is not None:
            sql += " AND user_id = %s"
            params = (now, user_id)
        found = self.rows(sql + " ORDER BY created_at", params)
        return [GrantRow(str(a), str(b), str(c), int(d), int(e)) for a, b, c, d, e in found]

    def revoke_grants(self, user_id: str | None, now: int) -> list[GrantRow]:
        grants = self.list_grants(user_id, now)
        for g in grants:
            self.revoke_family(g.family_id, now)
        if user_id is None:
            self.change(f"DELETE FROM codes WHERE {K} AND redeemed_at IS NULL")  # noqa: S608
            self.change(f"DELETE FROM device_codes WHERE {K} AND status = 'approved'")  # noqa: S608
        else:
            self.change(
                f"DELETE FROM codes WHERE {K} AND redeemed_at IS NULL"  # noqa: S608
                " AND (\"grant\"::jsonb ->> 'user_id') = %s",
                (user_id,),
            )
            self.change(
                f"DELETE FROM device_codes WHERE {K} AND status = 'approved' AND user_id = %s",  # noqa: S608
                (user_id,),
            )
        return grants

    def collect_client_shard(self, now: int) -> dict[str, int]:
        dead = (
            f"SELECT family_id FROM families WHERE {K}"  # noqa: S608
            " AND (revoked_at IS NOT NULL OR expires_at <= %s)"
        )
        counts = {
            table: self.change(f"DELETE FROM {table} WHERE {K} AND expires_at <= %s", (now,))  # noqa: S608
            for table in ("pending", "codes")
        }
        counts["refresh_tokens"] = self.change(
            f"DELETE FROM refresh_tokens WHERE {K} AND family_id IN ({dead})",  # noqa: S608
            (*self._scope, now),
        )
        for table in ("families", "access_tokens", "device_codes", "assertion_jtis"):
            counts[table] = self.change(
                f"DELETE FROM {table} WHERE {K} AND expires_at <= %s",  # noqa: S608
                (now,),
            )
        return counts


T_ = "tenant = %s"  # a tenant's rows
_USER = "SELECT user_id, COALESCE(email, ''), name, email_verified, password_hash FROM users "


def _user(row: tuple[Any, ...]) -> UserRow:
    user_id, email, name, verified, password_hash = row
    return UserRow(str(user_id), str(email), str(name), bool(verified), str(password_hash))


class PgDirectoryStore(PgShard):
    """A tenant's directory (`directory.py`, `people.py`, `admin.py` in SQLite)."""

    TABLES = ("client_index", "user_codes", "users", "identities", "sessions", "consents")

    def index_client(self, client_id: str, shard_key: str, source: str, now: int) -> None:
        self.change(
            "INSERT INTO client_index VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant, client_id)"
            " DO UPDATE SET shard_key = excluded.shard_key, source = excluded.source,"
            " created_at = excluded.created_at",
            (client_id, shard_key, source, now),
        )

    def count_clients(self, source: str | None = None) -> int:
        if source is None:
            return int(self.rows(f"SELECT count(*) FROM client_index WHERE {T_}")[0][0])  # noqa: S608
        sql = f"SELECT count(*) FROM client_index WHERE {T_} AND source = %s"  # noqa: S608
        return int(self.rows(sql, (source,))[0][0])

    def unindex_client(self, client_id: str) -> None:
        self.change(f"DELETE FROM client_index WHERE {T_} AND client_id = %s", (client_id,))  # noqa: S608

    def list_clients(self) -> list[tuple[str, str, int]]:
        found = self.rows(
            f"SELECT client_id, source, created_at FROM client_index WHERE {T_}"  # noqa: S608
            " ORDER BY created_at, client_id"
        )
        return [(str(a), str(b), int(c)) for a, b, c in found]

    def index_user_code(
        self, user_code: str, shard_key: str, code_hash: str, expires_at: int, now: int
    ) -> bool:
        self.change(f"DELETE FROM user_codes WHERE {T_} AND expires_at <= %s", (now,))  # noqa: S608
        inserted = self.change(
            "INSERT INTO user_codes VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (user_code, shard_key, code_hash, expires_at),
        )
        return inserted == 1

    def load_user_code(self, user_code: str, now: int) -> tuple[str, str] | None:
        found = self.rows(
            "SELECT shard_key, code_hash FROM user_codes"  # noqa: S608
            f" WHERE {T_} AND user_code = %s AND expires_at > %s",
            (user_code, now),
        )
        return (str(found[0][0]), str(found[0][1])) if found else None

    def collect_directory(self, now: int) -> dict[str, int]:
        return {
            table: self.change(f"DELETE FROM {table} WHERE {T_} AND expires_at <= %s", (now,))  # noqa: S608
            for table in ("sessions", "user_codes")
        }

    # --- people ---

    def load_user(self, user_id: str) -> UserRow | None:
        found = self.rows(_USER + f"WHERE {T_} AND user_id = %s", (user_id,))
        return _user(found[0]) if found else None

    def load_user_by_email(self, email: str) -> UserRow | None:
        found = self.rows(_USER + f"WHERE {T_} AND lower(email) = lower(%s)", (email,))
        return _user(found[0]) if found else None

    def insert_user(self, user: UserRow, now: int) -> None:
        self.change("INSERT INTO users VALUES (%s, %s, %s, %s, %s, %s, %s)", user_values(user, now))

    def count_users(self) -> int:
        return int(self.rows(f"SELECT count(*) FROM users WHERE {T_}")[0][0])  # noqa: S608

    def update_profile(self, user_id: str, email: str, name: str, verified: bool) -> None:
        self.change(
            f"UPDATE users SET email = %s, name = %s, email_verified = %s"  # noqa: S608
            f" WHERE {T_} AND user_id = %s",
            (email or None, name, int(verified), user_id),
            at=3,
        )

    def load_identity(self, provider: str, subject: str) -> str | None:
        found = self.rows(
            f"SELECT user_id FROM identities WHERE {T_} AND provider = %s AND subject = %s",  # noqa: S608
            (provider, subject),
        )
        return str(found[0][0]) if found else None

    def insert_identity(self, provider: str, subject: str, user_id: str, now: int) -> None:
        self.change(
            "INSERT INTO identities VALUES (%s, %s, %s, %s, %s)", (provider, subject, user_id, now)
        )

    def insert_session(self, session_id: str, user_id: str, now: int, ttl_s: int) -> None:
        self.change(
            "INSERT INTO sessions VALUES (%s, %s, %s, %s, %s, '')",
            (hash_secret(session_id), user_id, now, now + ttl_s),
        )

    def load_session(self, session_id: str) -> SessionRow | None:
        found = self.rows(
            "SELECT user_id, auth_time, expires_at, csrf_hash FROM sessions"  # noqa: S608
            f" WHERE {T_} AND session_hash = %s",
            (hash_secret(session_id),),
        )
        return SessionRow(*found[0]) if found else None

    def set_session_csrf(self, session_id: str, csrf: str) -> None:
        self.change(
            f"UPDATE sessions SET csrf_hash = %s WHERE {T_} AND session_hash = %s",  # noqa: S608
            (hash_secret(csrf), hash_secret(session_id)),
            at=1,
        )

    def delete_session(self, session_id: str) -> None:
        self.change(
            f"DELETE FROM sessions WHERE {T_} AND session_hash = %s",  # noqa: S608
            (hash_secret(session_id),),
        )

    def load_consent(self, user_id: str, client_id: str) -> ConsentRow | None:
        found = self.rows(
            "SELECT scope, resources, redirects FROM consents"  # noqa: S608
            f" WHERE {T_} AND user_id = %s AND client_id = %s",
            (user_id, client_id),
        )
        return consent_row(found[0]) if found else None

    def save_consent(self, user_id: str, client_id: str, consent: ConsentRow, now: int) -> None:
        self.change(
            "INSERT INTO consents VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant, user_id, client_id) DO UPDATE SET scope = excluded.scope,"
            " resources = excluded.resources, granted_at = excluded.granted_at,"
            " redirects = excluded.redirects",
            consent_values(user_id, client_id, consent, now),
        )

    # --- the admin CLI's ---

    def list_users(self) -> list[UserListing]:
        found = self.rows(
            "SELECT u.user_id, COALESCE(u.email, ''), u.name, u.created_at,"
            " (SELECT count(*) FROM identities i WHERE i.tenant = u.tenant"
            " AND i.user_id = u.user_id) FROM users u WHERE u.tenant = %s"
            " ORDER BY u.created_at, u.email"
        )
        return [UserListing(str(a), str(b), str(c), int(d), int(e)) for a, b, c, d, e in found]

    def delete_user(self, user_id: str) -> int:
        where = f"WHERE {T_} AND user_id = %s"
        sessions = self.change(f"DELETE FROM sessions {where}", (user_id,))  # noqa: S608
        for table in ("identities", "consents", "users"):
            self.change(f"DELETE FROM {table} {where}", (user_id,))  # noqa: S608
        return sessions

    def delete_consents(self, user_id: str | None, client_id: str | None) -> list[tuple[str, str]]:
        clauses = [f"{name} = %s" for name, v in (("user_id", user_id), ("client_id", client_id))]
        chosen = [
            (clause, value)
            for clause, value in zip(clauses, (user_id, client_id), strict=True)
            if value is not None
        ]
        if not chosen:
            raise ValueError("a user, a client or both")
        where = " AND ".join([T_, *(clause for clause, _ in chosen)])
        params = tuple(value for _, value in chosen)
        found = self.changed_rows(
            f"DELETE FROM consents WHERE {where} RETURNING user_id, client_id",  # noqa: S608
            params,
        )
        return [(str(u), str(c)) for u, c in found]


class PgKeyStore(PgShard):
    """A tenant's signing keys (`keys.py` in SQLite)."""

    TABLES = ("keys",)

    def load_keys(self) -> list[KeyRow]:
        found = self.rows(
            "SELECT kid, alg, created_at, activate_at, retire_at, remove_at, public_jwk,"  # noqa: S608
            f" private_jwk FROM keys WHERE {T_} ORDER BY activate_at, created_at, kid"
        )
        return [KeyRow(*row) for row in found]

    def insert_key(self, row: KeyRow) -> None:
        self.change("INSERT INTO keys VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", astuple(row))

    def update_key_times(self, kid: str, retire_at: int, remove_at: int) -> None:
        self.change(
            f"UPDATE keys SET retire_at = %s, remove_at = %s WHERE {T_} AND kid = %s",  # noqa: S608
            (retire_at, remove_at, kid),
            at=2,
        )

    def delete_keys(self, kids: list[str]) -> None:
        self.change(f"DELETE FROM keys WHERE {T_} AND kid = ANY(%s)", (kids,))  # noqa: S608


class PgFederationStore(PgShard):
    """A tenant's upstream logins in flight (`federation.py` in SQLite)."""

    TABLES = ("logins",)

    def insert_login(self, state: str, binding: str, row: LoginRow) -> None:
        self.change(
            "INSERT INTO logins VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            login_values(state, binding, row),
        )

    def take_login(self, state: str, binding: str) -> LoginRow | None:
        found = self.changed_rows(
            "DELETE FROM logins WHERE tenant = %s AND state_hash = %s AND binding_hash = %s"
            " RETURNING binding_hash, request_id, started_at, expires_at, max_age, force_login",
            (hash_secret(state), hash_secret(binding)),
        )
        if not found:
            return None
        binding_hash, request_id, started_at, expires_at, max_age, force_login = found[0]
        return LoginRow(
            binding_hash, request_id, started_at, expires_at, max_age, bool(force_login)
        )

    def collect_logins(self, now: int) -> int:
        return self.change(f"DELETE FROM logins WHERE {T_} AND expires_at <= %s", (now,))  # noqa: S608


class PgRegistryStore(PgShard):
    """The server's tenants (`registry.py` in SQLite); its scope is empty. Its `changes` is
    a counter, not rows: loaded rows move it past their numbers, so the next change is newer."""

    TABLES = ("tenants", "removed")

    def load_rows(self, rows: Rows) -> None:
        super().load_rows(rows)
        self.change(
            "UPDATE changes SET seq = GREATEST(seq, (SELECT MAX(seq) FROM tenants),"
            " (SELECT MAX(seq) FROM removed))"
        )

    def load_tenant(self, tenant: str) -> TenantRow | None:
        found = self.rows(f"SELECT {TENANT_COLUMNS} FROM tenants WHERE tenant = %s", (tenant,))  # noqa: S608
        return TenantRow(*found[0]) if found else None

    def load_tenants(self) -> list[TenantRow]:
        found = self.rows(f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY tenant")  # noqa: S608
        return [TenantRow(*row) for row in found]

    def changes_since(self, seq: int) -> Changes:
        found = self.rows(
            f"SELECT {TENANT_COLUMNS}, seq FROM tenants WHERE seq > %s"  # noqa: S608
            " UNION ALL SELECT tenant, NULL, NULL, NULL, NULL, NULL, seq FROM removed"
            " WHERE seq > %s UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, seq"
            " FROM changes",
            (seq, seq),
        )
        last = max(int(r[-1]) for r in found)  # `changes` always answers its one row
        rows = [TenantRow(*r[:-1]) for r in found if r[1] is not None]
        removed = [str(r[0]) for r in found if r[0] is not None and r[1] is None]
        return Changes(last, rows, removed)

    def issuer_taken(self, issuers: tuple[str, ...], tenant: str) -> str | None:
        found = self.rows(
            "SELECT issuer FROM tenants WHERE issuer = ANY(%s) AND tenant != %s LIMIT 1",
            (list(issuers), tenant),
        )
        return str(found[0][0]) if found else None

    def _next_seq(self) -> int:
        return int(self.changed_rows("UPDATE changes SET seq = seq + 1 RETURNING seq")[0][0])

    def insert_tenant(self, row: TenantRow) -> None:
        seq = self._next_seq()
        self.change("DELETE FROM removed WHERE tenant = %s", (row.tenant,))
        self.change(
            f"INSERT INTO tenants ({TENANT_COLUMNS}, seq) VALUES (%s, %s, %s, %s, %s, %s, %s)",  # noqa: S608
            (row.tenant, row.issuer, row.state, row.settings, row.created_at, row.updated_at, seq),
        )

    def update_tenant(self, row: TenantRow) -> None:
        self.change(
            "UPDATE tenants SET issuer = %s, state = %s, settings = %s, updated_at = %s, seq = %s"
            " WHERE tenant = %s",
            (row.issuer, row.state, row.settings, row.updated_at, self._next_seq(), row.tenant),
        )

    def delete_tenant(self, tenant: str) -> None:
        self.change("DELETE FROM tenants WHERE tenant = %s", (tenant,))
        self.change(
            "INSERT INTO removed VALUES (%s, %s)"
            " ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq",
            (tenant, self._next_seq()),
        )


# Every table of a client's rows, and of a tenant's (the registry's are the server's).
CLIENT_TABLES = PgClientStore.TABLES
TENANT_TABLES = (
    *CLIENT_TABLES,
    *PgDirectoryStore.TABLES,
    *PgKeyStore.TABLES,
    *PgFederationStore.TABLES,
)


class PgBackend:
    """Every tenant's stores in the database of `db` (`Database`, opened and migrated to
    PG_SCHEMA by the server before any actor opens). A store's address is its actor's,
    `tenant/kind/key`; at most `threads` transactions run at once (the pool's size)."""

    remote = True

    def __init__(self, db: Database, threads: int) -> None:
        self._db = db
        self._limiter = trio.CapacityLimiter(threads)

    def _address(self, tenant: str, kind: str, key: str = "") -> str:
        return f"{tenant}/{kind}/{key}"

    def open_client(self, settings: Settings, tenant: str, shard_key: str) -> PgClientStore:
        address = self._address(tenant, "client", shard_key)
        return PgClientStore(self._db, self._limiter, address, (tenant, shard_key))

    def open_directory(self, settings: Settings, tenant: str) -> PgDirectoryStore:
        address = self._address(tenant, "directory")
        return PgDirectoryStore(self._db, self._limiter, address, (tenant,))

    def open_keys(self, settings: Settings, tenant: str) -> PgKeyStore:
        return PgKeyStore(self._db, self._limiter, self._address(tenant, "keys"), (tenant,))

    def open_federation(self, settings: Settings, tenant: str) -> PgFederationStore:
        address = self._address(tenant, "federation")
        return PgFederationStore(self._db, self._limiter, address, (tenant,))

    def open_registry(self, settings: Settings) -> PgRegistryStore:
        return PgRegistryStore(self._db, self._limiter, "registry", ())

    def has_registry(self, settings: Settings) -> bool:
        return True  # its tables are made with the schema

    def client_exists(self, settings: Settings, tenant: str, shard_key: str) -> bool:
        """Every well-formed key may spawn: asking the database here would block the event
        loop. An actor with no registration answers invalid_client, as a deleted one does."""
        return True

    def create_client(self, settings: Settings, tenant: str, record: ClientRecord) -> str:
        """Under the client's own lock. Inside the directory's transaction (registering), on
        its connection: the index row and the registration commit together, and a second
        connection is never waited for while one is held."""
        shard_key = shard_key_for(record.client_id)
        store = self.open_client(settings, tenant, shard_key)
        conn = getattr(_current, "conn", None)
        if conn is None:
            with store.transaction():
                store.save_client(record)
            return shard_key
        conn.execute(LOCK, (store.address,))  # the directory's, then the client's: one order
        with store._using(conn):
            store.save_client(record)
        return shard_key

    def list_clients(self, settings: Settings, tenant: str) -> list[str]:
        found = self._db.ordered(
            self._address(tenant, "clients"),
            lambda conn: conn.execute(
                "SELECT shard_key FROM clients WHERE tenant = %s ORDER BY shard_key", (tenant,)
            ).fetchall(),
        )
        return [str(row[0]) for row in found]

    def client_modified_at(self, settings: Settings, tenant: str, shard_key: str) -> float | None:
        """When the registration was made (a stray is one the index never got)."""
        store = self.open_client(settings, tenant, shard_key)
        record = store.load_client()
        return None if record is None else float(record.created_at)

    def remove_client(self, settings: Settings, tenant: str, shard_key: str) -> None:
        store = self.open_client(settings, tenant, shard_key)
        with store.transaction():
            for table in CLIENT_TABLES:
                store.change(f"DELETE FROM {table} WHERE {K}")  # noqa: S608

    def remove_tenant(self, settings: Settings, tenant: str) -> None:
        def remove(conn: psycopg.Connection) -> None:
            for table in TENANT_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE tenant = %s".encode(), (tenant,))  # noqa: S608
            conn.execute("DELETE FROM oauthd_versions WHERE address LIKE %s", (f"{tenant}/%",))

        self._db.ordered(self._address(tenant, "remove"), remove)


def open_postgres(dsn: str, *, pool_size: int, timeout_s: float) -> tuple[Backend, Database]:
    """The backend over the database at `dsn`, its tables brought up to date (blocking: the
    caller runs it in a thread), and its `Database` for the caller to close."""
    db = Database(dsn, pool_size=pool_size, timeout_s=timeout_s)
    db.open()
    try:
        db.migrate(PG_SCHEMA)
    except BaseException:
        db.close()
        raise
    return PgBackend(db, pool_size), db


def probe_postgres(dsn: str, *, timeout_s: int) -> Probe:
    """One look at the database at `dsn` (blocking): where it is and the version of oauthd's
    tables there, changing nothing; SchemaError with the reason when it cannot be used."""
    return probe(dsn, PG_SCHEMA, timeout_s=timeout_s)
