"""Fixtures of the interop tests: the `[storage]` table of a config written for `oauthd`
subprocesses, in the leg of a module marked `both_backends` (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import DSN_ENV
from tests.interop.test_cli import ENV
from tests.postgres import Cluster


@pytest.fixture
def storage_toml(
    storage_backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """None for SQLite; for PostgreSQL a new database of the session's cluster, its DSN in
    ENV, so every `oauthd` the test starts finds it."""
    if storage_backend == "sqlite":
        return ""
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    monkeypatch.setitem(ENV, DSN_ENV, cluster.create_database())
    return f'[storage]\nbackend = "postgres"\ndsn_env = "{DSN_ENV}"\n'
