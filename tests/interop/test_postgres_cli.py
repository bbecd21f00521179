"""The `oauthd` commands that work on a PostgreSQL storage (issue 19): `check-config` connects
to the database of `[storage] backend = "postgres"` and says what it found, against the
session's throwaway cluster (tests/postgres.py) and a port where nothing listens."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from oauthd.storage.pg_stores import PG_SCHEMA, open_postgres
from tests.interop.test_cli import ENV, OAUTHD, Config, free_port, write_config
from tests.postgres import Cluster

DSN_ENV = "PG_DSN"
STORAGE = f'[storage]\nbackend = "postgres"\ndsn_env = "{DSN_ENV}"\n'
PASSWORD = "pw-never-printed-7f3a"


@pytest.fixture
def pg_config(tmp_path: Path) -> Config:
    return write_config(tmp_path, STORAGE)


def oauthd(*args: str, dsn: str | None) -> subprocess.CompletedProcess[str]:
    """`oauthd ARGS` with the DSN variable set to `dsn` (unset when None)."""
    env = dict(ENV) if dsn is None else {**ENV, DSN_ENV: dsn}
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
