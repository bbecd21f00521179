"""Path tenants across processes sharing one data dir (the `--workers N` contract, checked
with two `oauthd serve` on two ports so each request goes where the test sends it): a tenant
added, disabled, enabled or removed by the CLI is seen by every process within the documented
bound (REGISTRY_POLL_S), and a tenant's state is shared like the default tenant's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oauthd.actors.registry import REGISTRY_POLL_S
from tests.interop.test_cli import run
from tests.interop.test_workers import two_servers

BOUND_S = REGISTRY_POLL_S + 1.0  # the poll, and a margin for a loaded machine


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    with two_servers(tmp_path) as servers:
        yield servers


def statuses(urls: tuple[str, ...], path: str) -> set[int]:
    return {httpx.get(url + path, timeout=5).status_code for url in urls}


def within(bound_s: float, urls: tuple[str, ...], path: str, want: int) -> float:
    """How long until every process answers `want`; fails past `bound_s`."""
    start_at = time.monotonic()
    while statuses(urls, path) != {want}:
        assert time.monotonic() - start_at < bound_s, statuses(urls, path)
        time.sleep(0.05)
    return time.monotonic() - start_at


def tenants(config: Path, *args: str) -> None:
    done = run("tenants", *args, "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr


def test_every_process_sees_registry_changes_within_the_bound(
    two: tuple[Path, str, str],
) -> None:
    """Added: served by both processes at once; disabled: 403 in both within the bound;
    enabled: its client, registered through one process, works through the other; removed:
    404 in both."""
    config, url_a, url_b = two
    urls = (url_a, url_b)
    jwks = "/t/acme/.well-known/jwks.json"
    assert statuses(urls, jwks) == {404}
    tenants(config, "add", "acme")
    assert statuses(urls, jwks) == {200}  # an unknown tenant is looked up at once
    keys_a = httpx.get(url_a + jwks, timeout=5).json()
    assert httpx.get(url_b + jwks, timeout=5).json() == keys_a  # one KeyManager shard
    registered = httpx.post(
        url_a + "/t/acme/register",
        json={"redirect_uris": ["http://127.0.0.1:5555/cb"], "token_endpoint_auth_method": "none"},
        timeout=5,
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    tenants(config, "disable", "acme")
    within(BOUND_S, urls, jwks, 403)
    tenants(config, "enable", "acme")
    within(BOUND_S, urls, jwks, 200)
    shown = httpx.get(
        url_b + f"/t/acme/register/{client_id}",
        headers={"Authorization": f"Bearer {registered.json()['registration_access_token']}"},
        timeout=5,
    )
    assert shown.status_code == 200, shown.text
    tenants(config, "remove", "acme")
    assert statuses(urls, jwks) == {404}
    assert not (config.parent / "data" / "acme").exists()
