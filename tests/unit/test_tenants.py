"""Tenants beyond `default`: per-tenant settings (the file's shape and checks), the Registry
actor and its readers, and actors that read the settings of their own tenant."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from oauthd.actors import (
    Env,
    ListKeys,
    TenantConfig,
    Tick,
    directory_address,
    keys_address,
    kinds,
)
from oauthd.actors.directory import CountClients
from oauthd.actors.registry import (
    AddTenant,
    DeleteTenant,
    GetTenant,
    ListTenants,
    RegistryReader,
    SetTenantState,
    UpdateTenant,
    registry_address,
    tenant_settings,
)
from oauthd.errors import ConfigError, InvalidRequest, NotFound
from oauthd.keys import KeyringHolder
from oauthd.runtime import ActorSystem, SystemClock
from oauthd.settings import Settings, load_tenant_settings
from oauthd.settings.checks import (
    CHECKS,
    POSITIVE_SECTIONS,
    TENANT_CHECKS,
    TENANT_SECTIONS,
    check_admin,
    check_listen,
    check_metrics,
    check_positive,
    check_storage,
    check_workers,
)
from oauthd.settings.schema import TENANT_TABLES, fields_of

ROOT = "http://127.0.0.1:8787"


@asynccontextmanager
async def running(env: Env) -> AsyncIterator[ActorSystem]:
    system = ActorSystem(env.settings.actors, kinds(env))
    async with trio.open_nursery() as nursery:
        await nursery.start(system.run)
        yield system
        nursery.cancel_scope.cancel()


# --- per-tenant settings -------------------------------------------------------------------------


def test_tenant_settings_take_their_tables_and_the_files_server_wide_keys(
    make_settings: Callable[..., Settings],
) -> None:
    """A tenant's tables replace the file's; server-wide keys stay the file's."""
    root = make_settings()
    text = """
[tokens]
access_token_ttl_s = 600
[keys]
algorithm = "RS256"
[branding]
product_name = "Acme"
[limits]
token_per_ip = { requests = 5, window_s = 60 }
"""
    own = load_tenant_settings(root, f"{ROOT}/t/acme", text, "tenant acme")
    assert own.issuer == f"{ROOT}/t/acme"
    assert own.issuer_path == "/t/acme"
    assert own.tokens.access_token_ttl_s == 600
    assert own.keys.algorithm == "RS256"
    assert own.keys.active_s == root.keys.active_s
    assert own.branding.product_name == "Acme"
    assert own.limits.token_per_ip.requests == 5
    assert own.limits.max_tracked_keys == root.limits.max_tracked_keys
    assert (own.data_dir, own.storage, own.actors, own.log) == (
        root.data_dir,
        root.storage,
        root.actors,
        root.log,
    )
    assert own.resources == ()  # not inherited from the file's tenant
    assert own.clients == ()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("listen = '0.0.0.0:1'\n", "listen"),
        ("data_dir = '/tmp'\n", "data_dir"),
        ("[storage]\nfsync = true\n", "storage"),
        ("[keys]\nactive_s = 10\n", "keys.active_s"),
        ("[limits]\nmax_tracked_keys = 5000\n", "limits.max_tracked_keys"),
        ("[tokens]\nno_such_key = 1\n", "tokens.no_such_key"),
        ("[tokens]\ncode_ttl_s = 700\n", "tokens.code_ttl_s"),
        ("[tokens]\naccess_token_ttl_s = 'soon'\n", "tokens.access_token_ttl_s"),
        ("[branding]\naccent_color = '#ffffff'\n", "branding.accent_color"),
        ("[[clients]]\nclient_id = 'x'\n", "clients[0].client_secret_env"),
        ("nonsense = 1\n", "nonsense"),
        ("[limits]\nmax_users = -1\n", "limits.max_users"),
        ("[tokens]\naccess_token_ttl_s = 0\n", "tokens.access_token_ttl_s"),
        ("[federation]\ntimeout_s = -1.0\n", "federation.timeout_s"),
        ("[registration]\nmax_clients = 0\n", "registration.max_clients"),
        ("[client_metadata]\ntimeout_s = nan\n", "client_metadata.timeout_s"),
        ("[limits]\nmax_users = 'many'\n", "limits.max_users"),
        ("[limits]\ntenant_requests = { requests = -5 }\n", "limits.tenant_requests.requests"),
        (
            "[limits]\ntenant_requests = { requests = 10, window_s = 0.1 }\n",
            "limits.tenant_requests.window_s",
        ),
        ("[limits]\ntenant_requests = { rps = 10 }\n", "limits.tenant_requests.rps"),
        ("[metrics]\nmax_tenant_labels = 5\n", "metrics"),
        ("[server]\nengine = 'hypercorn'\n", "server"),  # the HTTP front is the process's
    ],
)
def test_tenant_settings_errors_name_the_key(
    text: str, key: str, make_settings: Callable[..., Settings]
) -> None:
    """An unknown key, a server-wide key or an impossible value is a ConfigError naming it
    (the quotas of TENANT-1, 2 among them; the metrics' label bound is server-wide)."""
    with pytest.raises(ConfigError) as raised:
        load_tenant_settings(make_settings(), f"{ROOT}/t/acme", text, "tenant acme")
    assert raised.value.key == key


def test_a_tenants_checks_leave_out_only_what_it_takes_from_the_file() -> None:
    """A tenant's settings skip the checks of the file's own keys (checked when it was
    loaded), never one of the tenant's: every section that holds numbers has them checked
    (the metrics' label bound by `check_metrics`), each of a tenant's own tables among them
    by `check_tenant_positive`, and the checks left out are those of server-wide keys."""
    defaults = Settings(issuer=ROOT)
    numeric = set()
    for f in fields_of(Settings):
        section = getattr(defaults, f.name)
        if dataclasses.is_dataclass(section) and any(
            isinstance(getattr(section, g.name), int | float)
            and not isinstance(getattr(section, g.name), bool)
            for g in fields_of(type(section))
        ):
            numeric.add(f.name)
    assert numeric - {"metrics"} == set(POSITIVE_SECTIONS)
    assert numeric & set(TENANT_TABLES) == set(TENANT_SECTIONS)
    assert set(CHECKS) - set(TENANT_CHECKS) == {
        check_listen,
        check_admin,
        check_storage,
        check_workers,
        check_metrics,
        check_positive,  # for check_tenant_positive
    }


def test_tenant_quotas_are_the_tenants_own(make_settings: Callable[..., Settings]) -> None:
    """TENANT-1, 2: a tenant's quotas come from its own settings; left out, there are none."""
    text = "[limits]\nmax_users = 5\ntenant_requests = { requests = 100, window_s = 1 }\n"
    own = load_tenant_settings(make_settings(), f"{ROOT}/t/acme", text, "tenant acme")
    assert own.limits.max_users == 5
    assert (own.limits.tenant_requests.requests, own.limits.tenant_requests.window_s) == (100, 1)
    bare = load_tenant_settings(make_settings(), f"{ROOT}/t/acme", "", "tenant acme")
    assert bare.limits.max_users == 0
    assert bare.limits.tenant_requests.requests == 0


# --- actors read their own tenant's settings ---------------------------------------------------


async def test_each_actor_reads_the_settings_of_its_own_tenant(
    make_settings: Callable[..., Settings],
) -> None:
    """The KeyManager of tenant acme makes acme's first key with acme's algorithm, under
    <data_dir>/acme; the default tenant keeps the file's."""
    root = make_settings()
    acme = load_tenant_settings(root, f"{ROOT}/t/acme", "[keys]\nalgorithm = 'EdDSA'\n", "t")
    env = Env(root, SystemClock(), KeyringHolder(), None)
    env.tenants.set_loader(lambda t: TenantConfig(acme) if t == "acme" else None)
    async with running(env) as system:
        await system.ask(keys_address("default"), Tick())
        await system.ask(keys_address("acme"), Tick())
        default_algs = {k.alg for k in await system.ask(keys_address("default"), ListKeys())}
        acme_algs = {k.alg for k in await system.ask(keys_address("acme"), ListKeys())}
    assert "ES256" in default_algs
    assert "EdDSA" not in default_algs
    assert "EdDSA" in acme_algs
    assert "ES256" not in acme_algs
    assert (root.data_dir / "acme" / "keys.sqlite").is_file()
    assert env.settings_of("acme") is acme
    assert env.of("acme").keyring is not env.keyring
    assert env.of("acme").keyring.current.signer_kid is not None


async def test_an_unknown_tenant_spawns_nothing_and_makes_no_directory(
    make_settings: Callable[..., Settings],
) -> None:
    """Garbage never spawns an actor: an unknown tenant answers not_found for every kind."""
    root = make_settings()
    env = Env(root, SystemClock(), KeyringHolder(), None)
    async with running(env) as system:
        for address in (directory_address("nope"), keys_address("nope")):
            with pytest.raises(NotFound):
                await system.ask(address, CountClients())
        assert system.stats().activations == 0
    assert not (root.data_dir / "nope").exists()
    with pytest.raises(NotFound):
        env.settings_of("nope")


# --- the Registry --------------------------------------------------------------------------------


async def test_registry_adds_updates_disables_and_deletes_tenants(
    make_settings: Callable[..., Settings],
) -> None:
    """Tenants are created, changed, disabled and removed at runtime, checked like the file."""
    root = make_settings()
    env = Env(root, SystemClock(), KeyringHolder(), None)
    registry = registry_address()
    reader = RegistryReader(root, env.backend)
    assert reader.refresh() == set()
    assert not (root.data_dir / "registry.sqlite").exists()
    async with running(env) as system:
        row = await system.ask(registry, AddTenant("acme", "", "[tokens]\ncode_ttl_s = 30\n"))
        assert (row.issuer, row.state) == (f"{ROOT}/t/acme", "active")
        assert tenant_settings(root, row).tokens.code_ttl_s == 30
        assert reader.refresh() == {"acme"}
        assert reader.get("acme") == row
        assert reader.refresh() == set()  # nothing committed since
        for bad in ("Acme", "-x", "a" * 64, "a_b", "default", ""):
            with pytest.raises(InvalidRequest):
                await system.ask(registry, AddTenant(bad))
        with pytest.raises(InvalidRequest, match="already exists"):
            await system.ask(registry, AddTenant("acme"))
        with pytest.raises(InvalidRequest, match=r"tokens\.code_ttl_s"):
            await system.ask(registry, AddTenant("beta", "", "[tokens]\ncode_ttl_s = 0\n"))
        with pytest.raises(InvalidRequest, match="issuer"):
            await system.ask(registry, AddTenant("beta", "https://login.beta.example/x"))
        updated = await system.ask(registry, UpdateTenant("acme", settings="[dev]\n"))
        assert updated.settings == "[dev]\n"
        with pytest.raises(InvalidRequest, match="listen"):
            await system.ask(registry, UpdateTenant("acme", settings="listen = 'x:1'\n"))
        disabled = await system.ask(registry, SetTenantState("acme", "disabled"))
        assert disabled.state == "disabled"
        assert reader.refresh() == {"acme"}
        assert reader.get("acme") == disabled
        await system.ask(registry, AddTenant("beta"))
        assert [t.tenant for t in await system.ask(registry, ListTenants())] == ["acme", "beta"]
        await system.ask(registry, SetTenantState("beta", "removing"))
        assert await system.ask(registry, GetTenant("beta")) is None
        assert [t.tenant for t in await system.ask(registry, ListTenants())] == ["acme"]
        await system.ask(registry, DeleteTenant("beta"))
        with pytest.raises(NotFound):
            await system.ask(registry, SetTenantState("beta", "active"))
    reader.close()


async def test_an_own_origin_issuer_is_an_origin_alone_on_a_host_no_one_else_has(
    make_settings: Callable[..., Settings],
) -> None:
    """A host tenant's issuer is checked like the file's (RFC 8414 §2), written as its origin
    alone, and its Host is neither the root issuer's nor another tenant's; the reader maps
    each Host value of it (default port or not) to the tenant."""
    root = make_settings()
    env = Env(root, SystemClock(), KeyringHolder(), None)
    registry = registry_address()
    reader = RegistryReader(root, env.backend)
    async with running(env) as system:
        acme = await system.ask(registry, AddTenant("acme", "https://login.acme.test"))
        assert acme.issuer == "https://login.acme.test"
        await system.ask(registry, AddTenant("beta"))  # a path tenant: no host of its own
        reader.refresh()
        assert reader.hosts == {"login.acme.test": "acme", "login.acme.test:443": "acme"}
        assert reader.hosted == {"acme"}
        for bad in (
            "https://login.gamma.test/",
            "https://login.gamma.test/auth",
            "https://Login.gamma.test",
            "https://login.gamma.test:443",
            "https://user@login.gamma.test",
            "https://login.gamma.test?x=1",
            "https://login.gamma.test#x",
            "https://login.gamma.test:99999",
            "ftp://login.gamma.test",
            "https://",
        ):
            with pytest.raises(InvalidRequest, match="issuer"):
                await system.ask(registry, AddTenant("gamma", bad))
        for taken in (
            "https://login.acme.test",
            "http://login.acme.test",
            "http://login.acme.test:443",
            f"https://{ROOT.removeprefix('http://')}",
            ROOT,
        ):
            with pytest.raises(InvalidRequest, match="issuer"):
                await system.ask(registry, AddTenant("gamma", taken))
        await system.ask(registry, AddTenant("gamma", "https://login.acme.test:8443"))
        moved = await system.ask(registry, UpdateTenant("acme", "https://id.acme.test"))
        assert moved.issuer == "https://id.acme.test"
        await system.ask(registry, UpdateTenant("beta", "https://login.acme.test"))
        back = await system.ask(registry, UpdateTenant("acme", ""))
        assert back.issuer == f"{ROOT}/t/acme"
        reader.refresh()
        assert reader.hosts == {
            "login.acme.test": "beta",
            "login.acme.test:443": "beta",
            "login.acme.test:8443": "gamma",
        }
        assert reader.hosted == {"beta", "gamma"}
    reader.close()


def test_registry_file_is_in_the_data_dir(tmp_path: Path) -> None:
    from oauthd.storage.registry import registry_file

    assert registry_file(tmp_path) == tmp_path / "registry.sqlite"
