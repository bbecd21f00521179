"""Two "hosts" on one PostgreSQL (issue 19): two `oauthd serve` processes, each with its own
empty data dir, sharing one database through `[storage] backend = "postgres"`. Each request
goes to the process the test chose, so the races below cross hosts every round: what orders
them is the actor's transaction in PostgreSQL (its advisory lock), not a file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.interop.test_cli import free_port, run
from tests.interop.test_workers import (
    redemptions_have_one_winner,
    refreshes_rotate_once,
    start,
    write_config,
)
from tests.postgres import Cluster

DSN_ENV = "PG_DSN"
STORAGE = f'[storage]\nbackend = "postgres"\ndsn_env = "{DSN_ENV}"\n'


@pytest.fixture
def hosts(tmp_path: Path, postgres_cluster: Cluster) -> Iterator[tuple[str, str]]:
    """Two processes, one issuer, two data dirs, one database: the URLs of each."""
    env = {DSN_ENV: postgres_cluster.create_database()}
    port_a, port_b = free_port(), free_port()
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config_a = write_config(tmp_path / "a", port_a, STORAGE)
    config_b = write_config(tmp_path / "b", port_a, STORAGE)  # the same issuer
    with ExitStack() as stack:
        stack.enter_context(start(config_a, tmp_path / "a.log", url_a, env=env))
        listen_b = f"127.0.0.1:{port_b}"
        stack.enter_context(
            start(config_b, tmp_path / "b.log", url_b, "--listen", listen_b, env=env)
        )
        yield url_a, url_b


async def test_a_code_redeemed_through_two_hosts_has_one_winner(
    hosts: tuple[str, str],
) -> None:
    """OAuth 2.1 §4.1.3 across hosts: each code, redeemed at once through both, yields
    exactly one 200; every other attempt is invalid_grant. 50 codes."""
    await redemptions_have_one_winner(hosts)


async def test_a_refresh_token_sent_through_two_hosts_rotates_once(
    hosts: tuple[str, str],
) -> None:
    """OAuth 2.1 §4.3.1 across hosts: one refresh token sent at once through both rotates into
    exactly one successor; the others get that same pair (grace-window replay). Fifty
    rotations in a chain, each raced; the last successor is live on both hosts."""
    await refreshes_rotate_once(hosts)


@pytest.mark.parametrize(
    "command", [["backup", "--to", "b"], ["restore", "--from", "b"], ["check-data"]]
)
def test_data_dir_commands_refuse_a_postgres_config(tmp_path: Path, command: list[str]) -> None:
    """backup, restore and check-data work on the SQLite data dir: with the state in
    PostgreSQL they refuse (exit 2) and say why, rather than copy or check nothing."""
    config = write_config(tmp_path, free_port(), STORAGE)
    done = run(*command[:1], "--config", str(config), *command[1:])
    assert done.returncode == 2, done.stderr
    assert f"{command[0]} refused" in done.stderr
    assert "PostgreSQL" in done.stderr
