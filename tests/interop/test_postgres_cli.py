"""The `oauthd` commands that work on a PostgreSQL storage (issue 19): `check-config` connects
to the database of `[storage] backend = "postgres"` and says what it found, against the
session's throwaway cluster (tests/postgres.py) and a port where nothing listens; `migrate`
copies a data dir a real SQLite server wrote into PostgreSQL, where a real server serves it."""

from __future__ import annotations

import base64
import re
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from oauthd.storage.pg_stores import PG_SCHEMA, open_postgres
from tests.flow import (
    RESOURCE,
    Authorization,
    basic,
    refresh,
    register,
    register_machine,
    secure_cookies_on_loopback,
    tokens_for,
)
from tests.interop.test_cli import ENV, OAUTHD, Config, free_port, write_config
from tests.interop.test_workers import start
from tests.interop.test_workers import write_config as workers_config
from tests.postgres import Cluster

DSN_ENV = "PG_DSN"
STORAGE = f'[storage]\nbackend = "postgres"\ndsn_env = "{DSN_ENV}"\n'
PASSWORD = "pw-never-printed-7f3a"


@pytest.fixture
def pg_config(tmp_path: Path) -> Config:
    return write_config(tmp_path, STORAGE)


def oauthd(
    *args: str, dsn: str | None, more: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`oauthd ARGS` with the DSN variable set to `dsn` (unset when None), and `more`."""
    env = {**ENV, **(more or {})} if dsn is None else {**ENV, DSN_ENV: dsn, **(more or {})}
    return subprocess.run(
        [*OAUTHD, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def check_config(config: Config, dsn: str | None) -> subprocess.CompletedProcess[str]:
    return oauthd("check-config", "--config", str(config.path), dsn=dsn)


def make_tables(dsn: str) -> None:
    """What `oauthd serve` does first on a new database: its tables, at this version."""
    _, db = open_postgres(dsn, pool_size=1, timeout_s=5)
    db.close()


def test_check_config_reports_the_database_reachable_and_its_schema_version(
    pg_config: Config, postgres_dsn: str
) -> None:
    """check-config on PostgreSQL connects: an empty database is reachable with no tables yet
    (made at first start); after a start, the schema version found is this oauthd's."""
    empty = check_config(pg_config, postgres_dsn)
    assert empty.returncode == 0, empty.stderr
    assert "reachable" in empty.stdout
    assert f"no oauthd tables yet (made at first start, version {PG_SCHEMA.version})" in (
        empty.stdout
    )
    make_tables(postgres_dsn)
    current = check_config(pg_config, postgres_dsn)
    assert current.returncode == 0, current.stderr
    assert f"schema version {PG_SCHEMA.version}, this oauthd's" in current.stdout


def test_check_config_refuses_a_database_written_by_a_newer_oauthd(
    pg_config: Config, postgres_dsn: str
) -> None:
    """A schema newer than this oauthd's is a configuration error (exit 2) naming both
    versions, as `oauthd serve` would refuse it."""
    make_tables(postgres_dsn)
    newer = PG_SCHEMA.version + 1
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("UPDATE oauthd_schema SET version = %s WHERE name = 'oauthd'", (newer,))
    result = check_config(pg_config, postgres_dsn)
    assert result.returncode == 2
    assert f"version {newer} is newer than this oauthd understands" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_names_an_unset_dsn_variable(pg_config: Config) -> None:
    """The DSN's variable unset: exit 2 naming `storage.dsn_env` and the variable."""
    result = check_config(pg_config, None)
    assert result.returncode == 2
    assert "storage.dsn_env" in result.stderr
    assert DSN_ENV in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_says_unreachable_without_printing_the_password(pg_config: Config) -> None:
    """Nothing listening at the DSN's port: exit 2, `unreachable`, the host and port named,
    the password in the DSN printed nowhere."""
    port = free_port()
    result = check_config(pg_config, f"postgresql://oauthd:{PASSWORD}@127.0.0.1:{port}/oauthd")
    assert result.returncode == 2
    assert "unreachable" in result.stderr
    assert f"oauthd@127.0.0.1:{port}/oauthd" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_check_config_says_authentication_failed_without_printing_the_password(
    pg_config: Config, postgres_cluster: Cluster
) -> None:
    """A role the server refuses: exit 2, `authentication failed`, the password nowhere."""
    dsn = f"postgresql://nobody_here:{PASSWORD}@127.0.0.1:{postgres_cluster.port}/postgres"
    result = check_config(pg_config, dsn)
    assert result.returncode == 2
    assert "authentication failed" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_check_config_on_sqlite_names_the_data_dir(tmp_path: Path) -> None:
    """On SQLite check-config connects to nothing and says where the files are."""
    config = write_config(tmp_path, "")
    result = oauthd("check-config", "--config", str(config.path), dsn=None)
    assert result.returncode == 0, result.stderr
    assert f"storage: SQLite files under {tmp_path / 'data'}" in result.stdout


# --- migrate --------------------------------------------------------------------------------

KEK_ENV = "TEST_KEK"
KEK = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
SEALED = f'[keys]\nencryption_key_env = "{KEK_ENV}"\n'
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class Built:
    """What a SQLite server left in its data dir, to find again on PostgreSQL."""

    public: dict[str, Any]
    refresh_token: str
    machine: dict[str, Any]
    device: dict[str, Any]
    device_code: str
    jwks: dict[str, Any]
    tenant_jwks: dict[str, Any]


async def build_data_dir(url: str) -> Built:
    """A code flow's grants and a refresh token (a user logged in), a device code pending, a
    confidential client at the path tenant, and both tenants' keys."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        secure_cookies_on_loopback(http)
        public = await register(http)
        tokens = await tokens_for(http, Authorization(public["client_id"]))
        device = await register(http, grant_types=[DEVICE_GRANT])
        started = await http.post("/device_authorization", data={"client_id": device["client_id"]})
        assert started.status_code == 200, started.text
        machine = await register_machine(http, "/t/acme")
        jwks = (await http.get("/.well-known/jwks.json")).json()
        tenant_jwks = (await http.get("/t/acme/.well-known/jwks.json")).json()
    return Built(
        public,
        tokens["refresh_token"],
        machine,
        device,
        started.json()["device_code"],
        jwks,
        tenant_jwks,
    )


async def still_served(url: str, built: Built) -> None:
    """Everything built on SQLite answers the same from PostgreSQL."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        refreshed = await refresh(http, built.public["client_id"], built.refresh_token)
        assert refreshed.status_code == 200, refreshed.text
        granted = await http.post(
            "/t/acme/token",
            data={"grant_type": "client_credentials", "scope": "mcp:tools"},
            headers=basic(built.machine),
        )
        assert granted.status_code == 200, granted.text
        polled = await http.post(
            "/token",
            data={
                "grant_type": DEVICE_GRANT,
                "device_code": built.device_code,
                "client_id": built.device["client_id"],
            },
        )
        assert polled.json().get("error") == "authorization_pending", polled.text
        assert (await http.get("/.well-known/jwks.json")).json() == built.jwks
        assert (await http.get("/t/acme/.well-known/jwks.json")).json() == built.tenant_jwks


def sealed_keys_sqlite(data_dir: Path) -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    for tenant in ("default", "acme"):
        with closing(sqlite3.connect(data_dir / tenant / "keys.sqlite")) as conn:
            rows = conn.execute("SELECT kid, private_jwk FROM keys").fetchall()
        found |= {(tenant, kid, private) for kid, private in rows}
    return found


def sealed_keys_postgres(dsn: str) -> set[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tenant, kid, private_jwk FROM keys").fetchall()
    return {(tenant, kid, private) for tenant, kid, private in rows}


async def test_migrate_copies_a_data_dir_that_then_serves_from_postgresql(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """`oauthd migrate` copies every tenant's shards (registry, directory, keys sealed byte
    for byte, client shards and their grants) into PostgreSQL, verified by counts; a second
    run changes nothing; `oauthd serve` on PostgreSQL then refreshes the refresh token,
    authenticates the tenant's client, knows the device code and serves the same JWKS. Once
    PostgreSQL has moved on, a third run refuses and writes nothing."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {KEK_ENV: KEK, DSN_ENV: postgres_dsn}
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "pg").mkdir()
    sqlite_config = workers_config(tmp_path / "sqlite", port, SEALED)
    data_dir = tmp_path / "sqlite" / "data"
    tenant = tmp_path / "acme.toml"
    tenant.write_text(
        f"[registration]\nallow_client_credentials = true\n"
        f'[[resources]]\nuri = "{RESOURCE}"\nscopes = ["mcp:tools"]\n'
    )
    added = oauthd(
        "tenants",
        "add",
        "acme",
        "--config",
        str(sqlite_config),
        "--settings",
        str(tenant),
        dsn=None,
        more=env,
    )
    assert added.returncode == 0, added.stderr
    with start(sqlite_config, tmp_path / "sqlite.log", url, env=env):
        built = await build_data_dir(url)
    pg_config = workers_config(tmp_path / "pg", port, STORAGE + SEALED)

    def migrate(*args: str) -> subprocess.CompletedProcess[str]:
        command = ("migrate", "--from-data-dir", str(data_dir), "--config", str(pg_config))
        return oauthd(*command, *args, dsn=postgres_dsn, more=env)

    first = migrate()
    assert first.returncode == 0, first.stderr
    assert "verified: every row is in PostgreSQL" in first.stdout
    assert re.search(r"refresh_tokens\s+1\s+1\n", first.stdout), first.stdout
    assert re.search(r"tenants\s+1\s+1\n", first.stdout), first.stdout
    assert sealed_keys_postgres(postgres_dsn) == sealed_keys_sqlite(data_dir)
    assert all(private.count(".") == 4 for _, _, private in sealed_keys_sqlite(data_dir))
    second = migrate()
    assert second.returncode == 0, second.stderr
    assert "shards: 0 copied" in second.stdout
    assert "nothing changed" in second.stdout
    with start(pg_config, tmp_path / "pg.log", url, env=env):
        await still_served(url, built)
    moved_on = migrate()
    assert moved_on.returncode == 1
    assert "conflict default/clients/" in moved_on.stderr
    assert "nothing written" in moved_on.stderr
    replaced = migrate("--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert "verified" in replaced.stdout


def test_migrate_refuses_a_sqlite_configuration_and_a_missing_data_dir(
    tmp_path: Path, pg_config: Config
) -> None:
    """migrate writes only into PostgreSQL, and only from a data dir: exit 2 otherwise."""
    (tmp_path / "other").mkdir()
    sqlite_config = write_config(tmp_path / "other", "")
    into_sqlite = oauthd(
        "migrate", "--from-data-dir", str(tmp_path), "--config", str(sqlite_config.path), dsn=None
    )
    assert into_sqlite.returncode == 2
    assert 'backend is not "postgres"' in into_sqlite.stderr
    empty = oauthd(
        "migrate",
        "--from-data-dir",
        str(tmp_path / "none"),
        "--config",
        str(pg_config.path),
        dsn="postgresql://unused@127.0.0.1:1/x",
    )
    assert empty.returncode == 2
    assert "holds no oauthd data dir" in empty.stderr
