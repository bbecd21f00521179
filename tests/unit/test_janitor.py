"""The janitor (docs/architecture.md "Storage": expired rows are collected by a janitor): exactly
the expired rows go, live grants keep working, a used code's replay is still caught before it
expires, and a deleted client's shard leaves the disk only once no actor has it open."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from functools import partial
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
import trio.testing

from oauthd.actors.directory import ListClients, RegisterClient, directory_address
from oauthd.actors.janitor import STRAY_AFTER_S, JanitorReport, collect_once
from oauthd.errors import ServerError
from oauthd.runtime import ActorSystem, Address, Kind
from oauthd.server import TENANT, Runtime, open_runtime
from oauthd.settings import (
    ActorSettings,
    ClientSettings,
    RegistrationSettings,
    SessionSettings,
    Settings,
    TokenSettings,
)
from oauthd.storage import DIRECTORY, ClientRecord, Store, create_client_shard, index_user_code
from oauthd.storage.clients import CLIENT, client_shard_path, shard_key_for, spend_assertion_jti
from oauthd.storage.expiry import collect_client_shard, collect_directory
from oauthd.storage.grants import (
    FamilyRow,
    insert_access_token,
    insert_code,
    insert_device_code,
    insert_family,
    insert_pending,
    insert_refresh,
    mark_code_redeemed,
    revoke_family,
)
from oauthd.storage.people import insert_session
from tests.conftest import ManualClock, Server, running_server
from tests.flow import Authorization, authorize_code, redeem, register

NOW = 1_800_000_000
CODE_TTL = 30
ACCESS_TTL = 60
FAMILY_TTL = 3600
SESSION_TTL = 120
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"

# --- storage: exactly what is expired -------------------------------------------------------


def table_keys(store: Store, table: str, column: str) -> set[str]:
    return {row[0] for row in store.query(f"SELECT {column} FROM {table}")}  # noqa: S608 (test constants)


def test_client_shard_collection_deletes_exactly_the_expired_rows(tmp_path: Path) -> None:
    """Expired pending requests, codes (redeemed or not), families and their refresh tokens,
    revoked families' refresh tokens, access tokens, device codes and assertion jtis go;
    a redeemed code and a rotated refresh token of a live family stay."""
    record = ClientRecord("c1", "", (), (), (), "none", "", False, "", "dynamic", NOW)
    shard_key = create_client_shard(tmp_path, record)
    store = Store(client_shard_path(tmp_path, shard_key), CLIENT, create=False)
    with store.transaction():
        insert_pending(store, "old-request", "b", {}, NOW - 700, 600)
        insert_pending(store, "new-request", "b", {}, NOW, 600)
        insert_code(store, "old-code", {}, NOW - 1)
        insert_code(store, "used-code", {}, NOW + 10)
        mark_code_redeemed(store, "used-code", NOW - 5, "live")
        for family_id, expires_at in (("live", NOW + 100), ("expired", NOW), ("revoked", NOW + 9)):
            insert_family(store, FamilyRow(family_id, "u", "", (), NOW, expires_at, None), NOW)
            insert_refresh(store, f"{family_id}-rt", family_id, NOW - 50)
        insert_refresh(store, "live-rotated-rt", "live", NOW - 100)
        revoke_family(store, "revoked", NOW)
        insert_access_token(store, "old-at", "live", NOW - 1)
        insert_access_token(store, "new-at", "live", NOW + 60)
        insert_device_code(store, "old-device", {}, NOW - 700, NOW - 100, 5)
        live_device = insert_device_code(store, "new-device", {}, NOW, NOW + 600, 5)
        spend_assertion_jti(store, "old", NOW, NOW - 10)
        spend_assertion_jti(store, "new", NOW + 1, NOW - 10)
    with store.transaction():
        counts = collect_client_shard(store, NOW)
    assert counts == {
        "pending": 1,
        "codes": 1,
        "refresh_tokens": 2,  # the expired family's and the revoked family's
        "families": 1,
        "access_tokens": 1,
        "device_codes": 1,
        "assertion_jtis": 1,
    }
    assert len(table_keys(store, "pending", "id_hash")) == 1
    assert len(table_keys(store, "codes", "code_hash")) == 1
    assert table_keys(store, "families", "family_id") == {"live", "revoked"}
    assert len(table_keys(store, "refresh_tokens", "token_hash")) == 2  # live and rotated
    assert table_keys(store, "access_tokens", "jti") == {"new-at"}
    assert table_keys(store, "device_codes", "code_hash") == {live_device}
    assert table_keys(store, "assertion_jtis", "jti_hash") == {sha256(b"new").hexdigest()}
    with store.transaction():
        assert sum(collect_client_shard(store, NOW).values()) == 0  # nothing left to collect
    store.close()


def test_directory_collection_deletes_expired_sessions_and_user_codes(tmp_path: Path) -> None:
    """Sessions and device user codes past expires_at go; outstanding ones stay."""
    store = Store(tmp_path / "directory.sqlite", DIRECTORY, create=True)
    with store.transaction():
        insert_session(store, "old", "u", NOW - 200, 100)
        insert_session(store, "new", "u", NOW, 100)
        index_user_code(store, "AAAABBBB", "k", "h1", NOW, NOW - 600)
        index_user_code(store, "CCCCDDDD", "k", "h2", NOW + 1, NOW - 600)
    with store.transaction():
        assert collect_directory(store, NOW) == {"sessions": 1, "user_codes": 1}
    assert len(table_keys(store, "sessions", "session_hash")) == 1
    assert table_keys(store, "user_codes", "user_code") == {"CCCCDDDD"}
    store.close()


# --- the kernel: retiring an actor before its shard goes -------------------------------------


class Held:
    def __init__(self, log: list[str], gate: trio.Event) -> None:
        self.log = log
        self.gate = gate

    async def open(self) -> None:
        self.log.append("open")

    async def receive(self, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
        return message

    async def close(self) -> None:
        self.log.append("close")


async def test_retire_waits_until_the_actor_closed_and_refuses_a_busy_one() -> None:
    """`retire` evicts an idle actor and returns once it has closed; a busy one is left."""
    log: list[str] = []
    gate = trio.Event()
    system = ActorSystem(ActorSettings(), [Kind("held", lambda _a: Held(log, gate))])
    address = Address("t", "held", "k")
    async with trio.open_nursery() as nursery:
        await nursery.start(system.run)
        assert await system.retire(address)  # not live: nothing to wait for
        await system.ask(address, "hello")
        assert await system.retire(address)
        assert log == ["open", "close"]
        assert not system.is_live(address)
        nursery.start_soon(system.ask, address, "wait")
        await trio.testing.wait_all_tasks_blocked()
        assert not await system.retire(address)  # mid-message: try again next pass
        assert system.is_live(address)
        gate.set()
        nursery.cancel_scope.cancel()


# --- over HTTP, with `oauthd gc`'s pass beside a running server -------------------------------


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        tokens=TokenSettings(
            access_token_ttl_s=ACCESS_TTL,
            id_token_ttl_s=ACCESS_TTL,
            code_ttl_s=CODE_TTL,
            refresh_token_ttl_s=FAMILY_TTL,
            refresh_token_idle_s=FAMILY_TTL,
        ),
        sessions=SessionSettings(ttl_s=SESSION_TTL),
    )


Pass = Callable[[], Awaitable[JanitorReport]]


@asynccontextmanager
async def serving(settings: Settings, clock: ManualClock) -> AsyncIterator[tuple[Server, Pass]]:
    """A server, and a janitor pass run by a second runtime on its data dir (as `oauthd gc`)."""
    async with running_server(settings, clock) as server, trio.open_nursery() as nursery:
        runtime: Runtime = await nursery.start(
            partial(open_runtime, settings, clock=clock, janitor=False)
        )
        yield server, partial(collect_once, runtime.system, runtime.env, TENANT)
        nursery.cancel_scope.cancel()


async def refresh(server: Server, client_id: str, token: str) -> dict[str, Any]:
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    response = await server.http.post("/token", data=data)
    body: dict[str, Any] = response.json()
    return {"status": response.status_code, **body}


async def test_a_pass_keeps_live_grants_and_collects_expired_ones(
    settings: Settings, clock: ManualClock
) -> None:
    """After a pass that deleted the expired code, access token and session, the live refresh
    token still refreshes; once the family expires, it and its tokens go."""
    async with serving(settings, clock) as (server, collect):
        client = await register(server.http)
        auth = Authorization(client["client_id"])
        tokens = (
            await redeem(server.http, auth, (await authorize_code(server.http, auth))["code"])
        ).json()
        assert sum((await collect()).counts.values()) == 0
        clock.advance(SESSION_TTL + 1)
        counts = (await collect()).counts
        assert (counts["codes"], counts["access_tokens"], counts["sessions"]) == (1, 1, 1)
        assert counts["families"] == counts["refresh_tokens"] == 0
        refreshed = await refresh(server, auth.client_id, tokens["refresh_token"])
        assert refreshed["status"] == 200, refreshed
        clock.advance(FAMILY_TTL)
        counts = (await collect()).counts
        assert (counts["families"], counts["refresh_tokens"], counts["access_tokens"]) == (1, 2, 1)
        gone = await refresh(server, auth.client_id, refreshed["refresh_token"])
        assert (gone["status"], gone["error"]) == (400, "invalid_grant")


async def test_a_used_codes_replay_is_still_detected_after_a_pass(
    settings: Settings, clock: ManualClock
) -> None:
    """OAuth 2.1 §4.1.3: a replayed code is refused and its tokens revoked: the redeemed code
    outlives a pass until it expires."""
    async with serving(settings, clock) as (server, collect):
        client = await register(server.http)
        auth = Authorization(client["client_id"])
        code = (await authorize_code(server.http, auth))["code"]
        tokens = (await redeem(server.http, auth, code)).json()
        clock.advance(CODE_TTL - 5)
        assert (await collect()).counts["codes"] == 0
        replay = await redeem(server.http, auth, code)
        assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
        revoked = await refresh(server, auth.client_id, tokens["refresh_token"])
        assert (revoked["status"], revoked["error"]) == (400, "invalid_grant")
        clock.advance(10)
        counts = (await collect()).counts
        assert counts["codes"] == 1
        assert counts["refresh_tokens"] == 1  # the revoked family's


async def test_a_pass_collects_abandoned_requests_and_device_codes(
    settings: Settings, clock: ManualClock
) -> None:
    """Pending authorization requests (10 minutes), device codes and their user codes go
    once expired, not before."""
    async with serving(settings, clock) as (server, collect):
        client = await register(server.http, grant_types=[DEVICE, "authorization_code"])
        auth = Authorization(client["client_id"])
        started = await server.http.get("/authorize", params=auth.params)
        assert started.headers["location"].startswith("/login")
        device = await server.http.post(
            "/device_authorization", data={"client_id": auth.client_id, "scope": "openid"}
        )
        assert device.status_code == 200, device.text
        counts = (await collect()).counts
        assert counts["pending"] == counts["device_codes"] == counts["user_codes"] == 0
        clock.advance(601)
        counts = (await collect()).counts
        assert (counts["pending"], counts["device_codes"], counts["user_codes"]) == (1, 1, 1)


async def test_a_deleted_clients_shard_leaves_the_disk(
    settings: Settings, clock: ManualClock
) -> None:
    """RFC 7592 §2.3: a deleted client's shard, -wal and -shm are removed; the client still
    answers as unknown afterwards, and other clients are untouched."""
    async with serving(settings, clock) as (server, collect):
        doomed = await register(server.http)
        kept = await register(server.http)
        uri = urlsplit(doomed["registration_client_uri"]).path
        bearer = {"Authorization": f"Bearer {doomed['registration_access_token']}"}
        assert (await server.http.delete(uri, headers=bearer)).status_code == 204
        tenant_dir = settings.data_dir / TENANT
        shard = client_shard_path(tenant_dir, shard_key_for(doomed["client_id"]))
        assert shard.exists()
        report = await collect()
        assert report.removed == [shard_key_for(doomed["client_id"])]
        assert not list(shard.parent.glob(f"{shard.name}*"))
        assert client_shard_path(tenant_dir, shard_key_for(kept["client_id"])).exists()
        again = await server.http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": "x",
                "client_id": doomed["client_id"],
            },
        )
        assert (again.status_code, again.json()["error"]) == (401, "invalid_client")
        assert (await collect()).removed == []
    with closing(sqlite3.connect(tenant_dir / "directory.sqlite")) as db:
        ids = {row[0] for row in db.execute("SELECT client_id FROM clients")}
    assert ids == {kept["client_id"]}


# --- dynamic clients' lifetimes (issue 8: registration hygiene) -------------------------------

DAY = 86_400


def shard_of(settings: Settings, client_id: str) -> Path:
    return client_shard_path(settings.data_dir / TENANT, shard_key_for(client_id))


def last_used_at(settings: Settings, client_id: str) -> int | None:
    with closing(sqlite3.connect(shard_of(settings, client_id))) as db:
        value: int | None = db.execute("SELECT last_used_at FROM client").fetchone()[0]
    return value


async def machine_token(server: Server, client: dict[str, Any]) -> int:
    response = await server.http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    return response.status_code


async def machine(server: Server) -> dict[str, Any]:
    return await register(
        server.http,
        token_endpoint_auth_method="client_secret_basic",
        grant_types=["client_credentials"],
        redirect_uris=[],
    )


async def test_a_pass_deletes_exactly_the_dynamic_clients_never_used_in_time(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """A dynamically registered client that never got a token is deleted unused_ttl_s after
    registering, shard and index entry; one that got a token, and a configured client, stay."""
    settings = make_settings(
        registration=RegistrationSettings(unused_ttl_s=3600, allow_client_credentials=True),
        clients=(ClientSettings("cfg", ("http://127.0.0.1/cb",), "none"),),
    )
    async with serving(settings, clock) as (server, collect):
        unused = await register(server.http)
        used = await machine(server)
        assert await machine_token(server, used) == 200
        clock.advance(3590)
        report = await collect()
        assert (report.removed, report.counts["expired_clients"]) == ([], 0)
        clock.advance(20)
        report = await collect()
        assert report.removed == [shard_key_for(unused["client_id"])]
        assert report.counts["expired_clients"] == 1
        assert not shard_of(settings, unused["client_id"]).exists()
        assert shard_of(settings, used["client_id"]).exists()
        assert shard_of(settings, "cfg").exists()
        assert (await collect()).removed == []
        gone = await server.http.get("/authorize", params=Authorization(unused["client_id"]).params)
        assert gone.status_code == 400  # AUTHZ-1: an unknown client gets the error page
    with closing(sqlite3.connect(settings.data_dir / TENANT / "directory.sqlite")) as db:
        ids = {row[0] for row in db.execute("SELECT client_id FROM clients")}
    assert ids == {used["client_id"], "cfg"}


async def test_use_renews_a_dynamic_client_and_an_idle_one_expires(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """A token issued renews the registration (recorded at most once a day, so busy clients
    cost no extra writes); a client idle past idle_ttl_s is deleted and answers invalid_client."""
    settings = make_settings(
        registration=RegistrationSettings(idle_ttl_s=14 * DAY, allow_client_credentials=True)
    )
    async with serving(settings, clock) as (server, collect):
        busy, idle = await machine(server), await machine(server)
        assert await machine_token(server, busy) == 200
        assert await machine_token(server, idle) == 200
        first_use = last_used_at(settings, busy["client_id"])
        assert first_use is not None
        clock.advance(3600)
        assert await machine_token(server, busy) == 200
        assert last_used_at(settings, busy["client_id"]) == first_use  # within the day: no write
        clock.advance(10 * DAY)
        assert await machine_token(server, busy) == 200
        renewed = last_used_at(settings, busy["client_id"])
        assert renewed is not None
        assert renewed >= first_use + 10 * DAY
        assert (await collect()).removed == []
        clock.advance(4 * DAY)  # idle: 14 days and an hour since its last token
        report = await collect()
        assert report.removed == [shard_key_for(idle["client_id"])]
        assert await machine_token(server, busy) == 200
        assert await machine_token(server, idle) == 401


# --- strays: shards the index does not name (issue 14 item 4) ---------------------------------


def stray_record(client_id: str, name: str = "stray") -> ClientRecord:
    return ClientRecord(client_id, name, (), (), (), "none", "", False, "", "dynamic", NOW)


def test_a_shard_whose_registration_cannot_be_written_is_removed(tmp_path: Path) -> None:
    """A registration that fails to be written (here: text SQLite cannot encode) leaves no
    shard file behind."""
    with pytest.raises(UnicodeEncodeError):
        create_client_shard(tmp_path, stray_record("c1", "\ud800"))
    assert not list((tmp_path / "clients").glob("??/*"))


async def test_a_failed_registration_leaves_no_shard_and_no_index_row(
    settings: Settings, clock: ManualClock
) -> None:
    """The Directory's RegisterClient either indexes a client with its shard or leaves
    neither: the failure is a server_error for that request, and the next one works."""
    async with trio.open_nursery() as nursery:
        runtime: Runtime = await nursery.start(
            partial(open_runtime, settings, clock=clock, janitor=False)
        )
        directory = directory_address(TENANT)
        with pytest.raises(ServerError):
            await runtime.system.ask(directory, RegisterClient(stray_record("c1", "\ud800")))
        assert not list((settings.data_dir / TENANT / "clients").glob("??/*"))
        assert await runtime.system.ask(directory, ListClients()) == []
        await runtime.system.ask(directory, RegisterClient(stray_record("c2")))
        assert [c[0] for c in await runtime.system.ask(directory, ListClients())] == ["c2"]
        nursery.cancel_scope.cancel()


async def test_a_pass_removes_stray_shards_past_the_grace_period(
    settings: Settings, clock: ManualClock
) -> None:
    """A shard with no row in the Directory's index (a registration that failed half way)
    is removed once older than STRAY_AFTER_S; a younger one (a registration in flight in
    another process) and indexed clients stay."""
    async with serving(settings, clock) as (server, collect):
        kept = await machine(server)
        tenant_dir = settings.data_dir / TENANT
        old = create_client_shard(tenant_dir, stray_record("old-stray"))
        young = create_client_shard(tenant_dir, stray_record("young-stray"))
        made = clock.now() - STRAY_AFTER_S - 1
        os.utime(client_shard_path(tenant_dir, old), (made, made))
        report = await collect()
        assert report.removed == [old]
        assert report.counts["stray_shards"] == 1
        assert not client_shard_path(tenant_dir, old).exists()
        assert client_shard_path(tenant_dir, young).exists()
        assert client_shard_path(tenant_dir, shard_key_for(kept["client_id"])).exists()
        clock.advance(STRAY_AFTER_S + 1)
        assert (await collect()).removed == [young]
        assert await machine_token(server, kept) == 200
