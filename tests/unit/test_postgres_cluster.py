"""The tests' throwaway PostgreSQL (tests/postgres.py) is a real server on loopback."""

from __future__ import annotations

import psycopg
import pytest

from tests.postgres import Cluster, missing


def test_cluster_is_a_real_server_on_loopback(postgres_cluster: Cluster) -> None:
    """The session's cluster answers on 127.0.0.1 at its own port, from its temporary directory."""
    with psycopg.connect(postgres_cluster.dsn()) as conn:
        address, port, version = conn.execute(
            "SELECT host(inet_server_addr()), inet_server_port(),"
            " current_setting('server_version_num')"
        ).fetchone() or (None, None, None)
    assert (address, port) == ("127.0.0.1", postgres_cluster.port)
    assert int(version) >= 130000
    assert (postgres_cluster.data / "PG_VERSION").exists()


def test_each_test_gets_an_empty_database(postgres_dsn: str) -> None:
    """`postgres_dsn` names a new database with no tables of its own."""
    with psycopg.connect(postgres_dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_missing_postgres_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PostgreSQL the tests skip with the reason; under CI=true they fail instead."""
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL tests skipped: no initdb"):
        missing("no initdb")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI: no initdb"):
        missing("no initdb")
