"""Upgrades never strand data (issue 18): a data dir written by each earlier release's schemas
(tests/fixtures/README.md) opens with today's code, and its clients, grants, refresh tokens and
signing keys keep working over HTTP; a data dir from a newer oauthd is refused, unchanged."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from oauthd.settings import Settings
from oauthd.storage.check import check_data_dir
from tests.conftest import ManualClock, running_server
from tests.fixtures.upgrades import RELEASES, materialize
from tests.flow import Authorization
from tests.interop.test_cli import ENV, OAUTHD, write_config
from tests.spec.test_rfc7009_revocation import Caller, code_tokens, introspect, refresh

RESOURCE = "https://mcp.example.com/mcp"


def clock_at(tokens: dict[str, Any]) -> ManualClock:
    """A clock a minute after the fixture's tokens were issued: they are still valid."""
    clock = ManualClock()
    clock.advance(tokens["issued_at"] + 60 - time.time())
    return clock


@pytest.mark.parametrize("release", [r.name for r in RELEASES])
async def test_a_data_dir_of_each_release_opens_and_works(
    release: str, make_settings: Callable[..., Settings]
) -> None:
    """The release's access token introspects active (its key and jti survived), its refresh
    token rotates (the family, the hashed token and the client secret survived), its machine
    client gets a client_credentials token, its user logs in to a new grant (the directory);
    afterwards every shard is at today's version."""
    settings = make_settings()
    tokens = materialize(release, settings.data_dir)
    caller = Caller(tokens["client_id"], tokens["client_secret"])
    async with running_server(settings, clock_at(tokens)) as server:
        assert (await introspect(server.http, caller, tokens["access_token"]))["active"] is True
        rotated = await refresh(server.http, caller, tokens["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        pair = rotated.json()
        assert (await introspect(server.http, caller, pair["access_token"]))["active"] is True
        machine = await server.http.post(
            "/token",
            data={"grant_type": "client_credentials", "resource": RESOURCE},
            auth=(tokens["machine_id"], tokens["machine_secret"]),
        )
        assert machine.status_code == 200, machine.text
        await code_tokens(server, caller, Authorization(caller.client_id))
    assert check_data_dir(settings.data_dir).findings == []


@pytest.mark.parametrize("shard", ["keys", "directory"])
def test_a_data_dir_from_a_newer_oauthd_is_refused_unchanged(shard: str, tmp_path: Path) -> None:
    """`oauthd serve` on a data dir whose shard has a schema version past the code's: exit 2,
    a message naming the file and saying a newer oauthd wrote it, every file unchanged."""
    config = write_config(tmp_path, "")
    data = tmp_path / "data"
    materialize(RELEASES[-1].name, data)
    path = data / "default" / f"{shard}.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    served = subprocess.run(
        [*OAUTHD, "serve", "--config", str(config.path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
        check=False,
    )
    assert served.returncode == 2, served.stderr
    assert str(path) in served.stderr
    assert "written by a newer oauthd" in served.stderr
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before
