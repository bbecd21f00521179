"""`oauthd backup` beside `oauthd serve --workers 2` under token traffic, then `oauthd restore`
and a server on the restored data dir (issue 18's acceptance test; README "Operations")."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import trio

from tests.flow import Authorization, refresh, register, tokens_for
from tests.interop.test_cli import ENV, OAUTHD, free_port
from tests.interop.test_workers import start, write_config

ACKNOWLEDGED = 4  # grants completed before the backup starts
TRAFFIC_TASKS = 2
UNLIMITED = "[limits]\ntoken_per_ip = { requests = 100000, window_s = 60 }\n"


async def grant(http: httpx.AsyncClient, client_id: str) -> str:
    """A code flow for `client_id`; its refresh token."""
    tokens = await tokens_for(http, Authorization(client_id))
    return str(tokens["refresh_token"])


async def traffic(
    http: httpx.AsyncClient, client_ids: list[str], done: trio.Event, served: list[int]
) -> None:
    """New grants for the same clients, each refreshed at once, until `done`: their shards
    change all through the backup. Each token response is counted in `served`."""
    while not done.is_set():
        for client_id in client_ids:
            token = await grant(http, client_id)
            rotated = await refresh(http, client_id, token)
            assert rotated.status_code == 200, rotated.text
            served[0] += 2


def oauthd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OAUTHD, *args], capture_output=True, text=True, timeout=120, env=ENV, check=False
    )


async def backup_under_traffic(url: str, config: Path, backup: Path) -> list[tuple[str, str]]:
    """The acknowledged grants (client_id, refresh token), then a backup taken while token
    traffic runs on the same clients."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        client_ids = [(await register(http))["client_id"] for _ in range(ACKNOWLEDGED)]
        acknowledged = [(client_id, await grant(http, client_id)) for client_id in client_ids]
        done = trio.Event()
        served = [0]
        async with trio.open_nursery() as nursery:
            for _ in range(TRAFFIC_TASKS):
                nursery.start_soon(traffic, http, client_ids, done, served)
            await trio.sleep(0.2)  # traffic is under way before the backup starts
            before = served[0]
            result = await trio.to_thread.run_sync(
                oauthd, "backup", "--config", str(config), "--to", str(backup)
            )
            during = served[0] - before
            done.set()
    assert result.returncode == 0, result.stdout + result.stderr
    assert during > 0
    assert " 0 failed" in result.stdout
    return acknowledged


async def test_a_backup_under_traffic_restores_every_acknowledged_grant(tmp_path: Path) -> None:
    """Every grant acknowledged before the backup started still refreshes on a server whose
    data dir was restored from it: a backup taken from a live server with two workers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_config(tmp_path, port, UNLIMITED)
    with start(config, tmp_path / "serve.log", url, "--workers", "2"):
        acknowledged = await backup_under_traffic(url, config, tmp_path / "backup")
    shutil.move(tmp_path / "data", tmp_path / "data-lost")
    restored = oauthd("restore", "--config", str(config), "--from", str(tmp_path / "backup"))
    assert restored.returncode == 0, restored.stderr
    checked = oauthd("check-data", "--config", str(config))
    assert checked.returncode == 0, checked.stdout
    with start(config, tmp_path / "restored.log", url, "--workers", "2"):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for client_id, token in acknowledged:
                response = await refresh(http, client_id, token)
                assert response.status_code == 200, response.text
