"""The admin API of `oauthd serve --workers 2` as operators run it (README "The admin API"): one
admin listener per deployment, bound by the supervisor and served by worker 0 (a restarted
worker 0 takes it over), and tenants added, disabled, enabled and removed through it while
traffic runs, every worker acting on each change within the documented bound.

Which worker answers a request is the kernel's choice; every check is made on fresh
connections, and "every worker answers X" is STREAK fresh-connection answers X in a row."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from oauthd.actors.registry import REGISTRY_POLL_S
from oauthd.actors.tenant_admin import REMOVE_GRACE_S
from tests.flow import RESOURCE, basic, register_machine
from tests.interop.test_cli import ENV, OAUTHD, STARTUP_S, free_port, run, wait_until
from tests.interop.test_workers import Process, start, worker_pids, write_config

TOKEN = secrets.token_urlsafe(32)
BEARER = {"Authorization": f"Bearer {TOKEN}"}
BOUND_S = REGISTRY_POLL_S + 1.0  # the documented bound, and a margin for a loaded machine
STREAK = 12  # fresh connections in a row that must agree
FRESH = httpx.Limits(max_keepalive_connections=0)  # each request on a new connection
BASE_SETTINGS = (
    "[registration]\nallow_client_credentials = true\n"
    f'[[resources]]\nuri = "{RESOURCE}"\nscopes = ["mcp:tools"]\n'
    # The traffic loop asks for tokens back to back: its rate depends on the engine's speed,
    # and a 429 from the per-IP limit is not what this test looks for.
    "[limits]\ntoken_per_ip = { requests = 100000, window_s = 60 }\n"
)


@dataclass
class Deployment:
    served: Process
    config: Path
    url: str
    admin_url: str


@contextmanager
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """`oauthd serve --workers 2` with the admin API on its own free port."""
    port, admin_port = free_port(), free_port()
    admin = f'[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken_env = "ADMIN_TOKENS"\n'
    config = write_config(tmp_path, port, admin)
    url = f"http://127.0.0.1:{port}"
    env = {"ADMIN_TOKENS": TOKEN}
    with start(config, tmp_path / "serve.log", url, "--workers", "2", env=env) as served:
        wait_until(lambda: "with 2 workers" in served.log(), STARTUP_S, "the readiness line")
        yield Deployment(served, config, url, f"http://127.0.0.1:{admin_port}")


@dataclass
class Traffic:
    """What the background traffic saw: answers by kind, and anything wrong."""

    answers: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def saw(self, kind: str, ok: bool, what: str) -> None:
        self.answers[kind] = self.answers.get(kind, 0) + 1
        if not ok:
            self.problems.append(f"{kind}: {what}")


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    loaded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return loaded


async def traffic_loop(url: str, client: dict[str, Any], stop: trio.Event, seen: Traffic) -> None:
    """client_credentials tokens at the path tenant `base`, and discovery at the root, on fresh
    connections, until `stop`: every answer must be a 200 with the right issuer."""
    root, base = url, url + "/t/base"
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=FRESH) as http:
        while not stop.is_set():
            try:
                token = await http.post(
                    "/t/base/token",
                    data={"grant_type": "client_credentials", "resource": RESOURCE},
                    headers=basic(client),
                )
                good = (
                    token.status_code == 200 and claims(token.json()["access_token"])["iss"] == base
                )
                seen.saw("token", good, f"{token.status_code} {token.text[:200]}")
                metadata = await http.get("/.well-known/oauth-authorization-server")
                good = metadata.status_code == 200 and metadata.json()["issuer"] == root
                seen.saw("discovery", good, f"{metadata.status_code} {metadata.text[:200]}")
            except httpx.TransportError as exc:
                seen.saw("connection", False, repr(exc))


async def everywhere(http: httpx.AsyncClient, path: str, want: int) -> float:
    """Seconds until STREAK fresh-connection answers in a row are `want`; fails past BOUND_S."""
    started = trio.current_time()
    streak = 0
    while streak < STREAK:
        status = (await http.get(path)).status_code
        streak = streak + 1 if status == want else 0
        if not streak:
            assert trio.current_time() - started < BOUND_S, f"{path}: {status}, want {want}"
            await trio.sleep(0.05)
    return trio.current_time() - started


async def test_tenant_changes_through_the_admin_api_while_traffic_runs(tmp_path: Path) -> None:
    """Added: both workers serve it; disabled: 403 at both; enabled: 200 again; removed: 404
    at both and its directory gone; each within REGISTRY_POLL_S (plus a margin). Meanwhile the
    traffic at another tenant and at the root saw no 5xx, no connection error and no wrong
    answer."""
    with deployment(tmp_path) as d:
        async with (
            httpx.AsyncClient(base_url=d.admin_url, headers=BEARER, timeout=30) as admin,
            httpx.AsyncClient(base_url=d.url, timeout=10, limits=FRESH) as public,
        ):
            base = await admin.post("/tenants", json={"id": "base", "settings": BASE_SETTINGS})
            assert base.status_code == 201, base.text
            client = await register_machine(public, "/t/base")
            seen, stop = Traffic(), trio.Event()
            jwks = "/t/acme/.well-known/jwks.json"
            async with trio.open_nursery() as nursery:
                nursery.start_soon(traffic_loop, d.url, client, stop, seen)
                assert (await admin.post("/tenants", json={"id": "acme"})).status_code == 201
                await everywhere(public, jwks, 200)
                assert (await admin.post("/tenants/acme/disable")).status_code == 200
                await everywhere(public, jwks, 403)
                assert (await admin.post("/tenants/acme/enable")).status_code == 200
                await everywhere(public, jwks, 200)
                removed = await admin.delete("/tenants/acme")
                assert removed.status_code == 200, removed.text
                await everywhere(public, jwks, 404)
                assert not (tmp_path / "data" / "acme").exists()
                stop.set()
            assert seen.problems == [], seen.problems[:5]
            # the loop ran all through the changes (the removal alone waits REMOVE_GRACE_S)
            assert seen.answers["token"] >= 10 * REMOVE_GRACE_S, seen.answers
            shown = (await admin.get("/tenants/base")).json()
    cli = run("tenants", "show", "base", "--config", str(d.config), "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == shown  # the CLI's --json shape


def test_the_admin_listener_is_worker_0s_and_survives_its_restart(tmp_path: Path) -> None:
    """The supervisor binds the admin socket once and hands it to worker 0 only: one admin
    listener per deployment; a killed worker 0 is replaced and the new one serves it; the
    public port never answers the admin paths; SIGTERM stops it all."""
    with deployment(tmp_path) as d:
        served = d.served
        wait_until(lambda: "admin API at" in served.log(), STARTUP_S, "the admin line")
        assert served.log().count("admin API at") == 1
        assert httpx.get(d.admin_url + "/tenants", headers=BEARER, timeout=5).json() == []
        assert httpx.get(d.url + "/tenants", headers=BEARER, timeout=5).status_code == 404
        first, _second = worker_pids(served)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: "worker 0 restarted" in served.log(), STARTUP_S, "a restart")
        # the new worker 0, and only it (it logs the line a moment after the restart line)
        wait_until(lambda: served.log().count("admin API at") == 2, STARTUP_S, "its admin line")
        assert served.log().count("admin API at") == 2
        added = httpx.post(
            d.admin_url + "/tenants", json={"id": "acme"}, headers=BEARER, timeout=10
        )
        assert added.status_code == 201, added.text
        (restarted,) = re.findall(r"worker 0 restarted \(pid (\d+)\)", served.log())
        assert int(restarted) != first
        served.popen.send_signal(signal.SIGTERM)
        assert served.popen.wait(timeout=30) == 0, served.log()
        assert TOKEN not in served.log()


def test_serve_refuses_a_short_admin_token(tmp_path: Path) -> None:
    """An admin token shorter than 32 characters stops `oauthd serve` at startup with the key
    named (exit 2), without showing the token."""
    port = free_port()
    admin = f'[admin]\nlisten = "127.0.0.1:{free_port()}"\ntoken_env = "ADMIN_TOKENS"\n'
    config = write_config(tmp_path, port, admin)
    done = run_with(config, {"ADMIN_TOKENS": "too-short-a-token"})
    assert done.returncode == 2
    assert "admin.token_env" in done.stderr
    assert "too-short-a-token" not in done.stderr


def run_with(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`oauthd serve` with `env` added to the tests' environment, until it exits."""
    return subprocess.run(
        [*OAUTHD, "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**ENV, **env},
        check=False,
    )
