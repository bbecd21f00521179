"""More than one process on one data dir (docs/architecture.md "Beyond one process"): `oauthd serve
--workers N` as operators run it, and the multi-process contract itself, checked with two
`oauthd serve` processes on two ports sharing one data dir, so each request goes to the process
the test chose. Every race is repeated; its outcome must not depend on the interleaving."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.flow import RESOURCE, Authorization, authorize_code, redeem, register, tokens_for
from tests.interop.test_cli import ENV, EXIT_S, OAUTHD, STARTUP_S, free_port, wait_until

ROUNDS = 50
PER_PROCESS = 2  # racers per process in each round


def write_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = tmp_path / "oauthd.toml"
    path.write_text(
        f'issuer = "http://127.0.0.1:{port}"\n'
        f'data_dir = "{tmp_path / "data"}"\n'
        f'listen = "127.0.0.1:{port}"\n'
        "dev_mode = true\n"
        f"{extra}"
        "[tokens]\nrefresh_grace_s = 30\n"
        f'[[resources]]\nuri = "{RESOURCE}"\nscopes = ["mcp:tools"]\n'
        '[log]\nlevel = "info"\nformat = "text"\naccess_log = false\n',
        encoding="utf-8",
    )
    return path


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    stderr: Path
    url: str

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


@contextmanager
def start(
    config: Path, stderr: Path, url: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[Process]:
    """`oauthd serve` until the block ends, answering /healthz; killed in `finally`. `env`:
    variables beyond the tests' environment (secrets the config names)."""
    with stderr.open("wb") as err:
        popen = subprocess.Popen(
            [*OAUTHD, "serve", "--config", str(config), *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**ENV, **(env or {})},
        )
        process = Process(popen, stderr, url)
        try:

            def ready() -> bool:
                if popen.poll() is not None:
                    raise AssertionError(f"oauthd exited {popen.returncode}: {process.log()}")
                try:
                    return httpx.get(url + "/healthz", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, STARTUP_S, "oauthd serve to answer /healthz")
            yield process
        finally:
            if popen.poll() is None:
                popen.kill()
            popen.wait(timeout=EXIT_S)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def worker_pids(process: Process) -> list[int]:
    match = re.search(r"with \d+ workers \(pids ([\d, ]+)\)", process.log())
    assert match, process.log()
    return [int(pid) for pid in match.group(1).split(", ")]


# --- oauthd serve --workers N ----------------------------------------------------------------


def test_workers_serve_restart_a_crashed_worker_and_stop_together(tmp_path: Path) -> None:
    """Two workers serve one socket; a killed worker is replaced; SIGTERM stops all, exit 0."""
    port = free_port()
    config = write_config(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    with start(config, tmp_path / "serve.log", url, "--workers", "2") as served:
        wait_until(lambda: "with 2 workers" in served.log(), STARTUP_S, "the readiness line")
        first, second = worker_pids(served)
        os.kill(second, signal.SIGKILL)
        wait_until(lambda: "worker 1 restarted" in served.log(), STARTUP_S, "a restart")
        (restarted,) = re.findall(r"worker 1 restarted \(pid (\d+)\)", served.log())
        assert int(restarted) != second
        for _ in range(10):  # whichever worker accepts, the server answers
            assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        served.popen.send_signal(signal.SIGTERM)
        assert served.popen.wait(timeout=30) == 0, served.log()
        for pid in (first, int(restarted)):
            wait_until(lambda pid=pid: not pid_alive(pid), EXIT_S, f"worker {pid} to exit")


def test_workers_stop_when_the_supervisor_dies(tmp_path: Path) -> None:
    """A SIGKILLed supervisor leaves no orphans: the workers see their lifeline close."""
    port = free_port()
    config = write_config(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    with start(config, tmp_path / "serve.log", url, "--workers", "2") as served:
        wait_until(lambda: "with 2 workers" in served.log(), STARTUP_S, "the readiness line")
        pids = worker_pids(served)
        served.popen.kill()
        served.popen.wait(timeout=EXIT_S)
        for pid in pids:
            wait_until(lambda pid=pid: not pid_alive(pid), 30, f"worker {pid} to exit")
    assert "the supervisor is gone" in served.log()


def test_workers_setting_is_checked(tmp_path: Path) -> None:
    """`workers = 0` in the file is a configuration error naming the key, before any bind."""
    config = write_config(tmp_path, free_port(), "workers = 0\n")
    done = subprocess.run(
        [*OAUTHD, "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
        check=False,
    )
    assert done.returncode == 2
    assert "workers" in done.stderr


# --- two processes, one data dir ---------------------------------------------------------------


@contextmanager
def two_servers(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """Two `oauthd serve` on two ports, one config, one issuer, one data dir: (config, the
    first one's URL, the second one's)."""
    port_a, port_b = free_port(), free_port()
    config = write_config(tmp_path, port_a)
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    with ExitStack() as stack:
        stack.enter_context(start(config, tmp_path / "a.log", url_a))
        listen_b = f"127.0.0.1:{port_b}"
        stack.enter_context(start(config, tmp_path / "b.log", url_b, "--listen", listen_b))
        yield config, url_a, url_b


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with two_servers(tmp_path) as (_config, url_a, url_b):
        yield url_a, url_b


async def race(
    https: tuple[httpx.AsyncClient, httpx.AsyncClient], send: Any
) -> list[httpx.Response]:
    """PER_PROCESS copies of one request to each process, released together."""
    responses: list[httpx.Response] = []
    gate = trio.Event()

    async def one(http: httpx.AsyncClient) -> None:
        await gate.wait()
        responses.append(await send(http))

    async with trio.open_nursery() as nursery:
        for http in https:
            for _ in range(PER_PROCESS):
                nursery.start_soon(one, http)
        await trio.lowlevel.checkpoint()
        gate.set()
    return responses


def async_clients(urls: tuple[str, str]) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=PER_PROCESS, max_keepalive_connections=PER_PROCESS)
    a, b = (httpx.AsyncClient(base_url=u, limits=limits, timeout=30) for u in urls)
    return a, b


async def redemptions_have_one_winner(urls: tuple[str, str]) -> None:
    """ROUNDS codes, each redeemed at once through both servers: one 200, the rest
    invalid_grant."""
    a, b = async_clients(urls)
    async with a, b:
        client = await register(a)
        auth = Authorization(client["client_id"])
        for i in range(ROUNDS):
            code = (await authorize_code((a, b)[i % 2], auth))["code"]
            responses = await race((a, b), lambda http, code=code: redeem(http, auth, code))
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [200] + [400] * (2 * PER_PROCESS - 1), (i, statuses)
            errors = {r.json()["error"] for r in responses if r.status_code == 400}
            assert errors == {"invalid_grant"}


async def refreshes_rotate_once(urls: tuple[str, str]) -> None:
    """A chain of ROUNDS rotations, each refresh token sent at once through both servers: one
    successor, the same pair for every sender; the last one is live on both."""
    a, b = async_clients(urls)
    async with a, b:
        client = await register(a)
        auth = Authorization(client["client_id"], resource=None)
        token = (await tokens_for(a, auth))["refresh_token"]
        for i in range(ROUNDS):

            async def send(http: httpx.AsyncClient, token: str = token) -> httpx.Response:
                data = {"grant_type": "refresh_token", "refresh_token": token}
                return await http.post("/token", data={**data, "client_id": auth.client_id})

            responses = await race((a, b), send)
            assert [r.status_code for r in responses] == [200] * (2 * PER_PROCESS), (
                i,
                [r.text for r in responses],
            )
            pairs = {(r.json()["access_token"], r.json()["refresh_token"]) for r in responses}
            assert len(pairs) == 1, i
            ((_, token),) = pairs
        for http in (a, b):
            assert (await send(http, token)).status_code == 200


async def test_concurrent_redemptions_over_two_processes_have_one_winner(
    pair: tuple[str, str],
) -> None:
    """OAuth 2.1 §4.1.3 across processes: each code, redeemed at once through both, yields
    exactly one 200; every other attempt is invalid_grant. 50 codes."""
    await redemptions_have_one_winner(pair)


async def test_concurrent_refreshes_over_two_processes_rotate_once(
    pair: tuple[str, str],
) -> None:
    """OAuth 2.1 §4.3.1 across processes: one refresh token sent at once through both rotates
    into exactly one successor; the others get that same pair (grace-window replay). Fifty
    rotations in a chain, each raced."""
    await refreshes_rotate_once(pair)


async def test_rfc7592_update_and_delete_are_seen_by_the_other_process_at_once(
    pair: tuple[str, str],
) -> None:
    """RFC 7592 §2.2/§2.3 across processes: a PUT or DELETE through one process holds in the
    other on its very next request, although that process has the client's actor warm."""
    a, b = async_clients(pair)
    async with a, b:
        registered = await register(a)
        client_id = registered["client_id"]
        path = "/register/" + client_id
        bearer = {"Authorization": "Bearer " + registered["registration_access_token"]}
        auth = Authorization(client_id, redirect_uri="http://127.0.0.1/cb")
        assert "code" in await authorize_code(b, auth)  # B's actor now caches the client
        assert (await b.get(path, headers=bearer)).json()["client_name"] == "test client"

        body = {k: registered[k] for k in ("redirect_uris", "grant_types", "client_id")}
        body |= {"token_endpoint_auth_method": "none", "client_name": "renamed"}
        body["redirect_uris"] = ["http://127.0.0.1/new"]
        assert (await a.put(path, headers=bearer, json=body)).status_code == 200
        # /authorize first: it reads the registration without writing (GetClient).
        refused = await b.get("/authorize", params=auth.params)
        assert refused.status_code == 400, refused.text  # the old redirect_uri, at once
        assert "location" not in refused.headers
        assert (await b.get(path, headers=bearer)).json()["client_name"] == "renamed"

        tokens = await tokens_for(b, Authorization(client_id, redirect_uri="http://127.0.0.1/new"))
        new = Authorization(client_id, redirect_uri="http://127.0.0.1/new")
        assert (await b.get("/authorize", params=new.params)).status_code in (302, 303)
        assert (await a.delete(path, headers=bearer)).status_code == 204
        assert (await b.get("/authorize", params=new.params)).status_code == 400
        assert (await b.get(path, headers=bearer)).status_code == 401
        refreshed = await b.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": client_id,
            },
        )
        assert refreshed.status_code == 401, refreshed.text
        assert refreshed.json()["error"] == "invalid_client"
        info = await b.get(
            "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
        )
        assert info.status_code == 401


async def test_a_key_made_by_another_process_verifies_at_once(tmp_path: Path) -> None:
    """An immediate rotation elsewhere (`oauthd keys rotate --immediate`, then a process that
    signs with the new key): a process that has not reloaded its keys yet (reload_interval_s
    is an hour here) accepts the token at once, because an unknown kid makes it re-read them."""
    port_b, port_c = free_port(), free_port()
    config = write_config(tmp_path, port_b, "[keys]\nreload_interval_s = 3600\n")
    url_b, url_c = f"http://127.0.0.1:{port_b}", f"http://127.0.0.1:{port_c}"
    with start(config, tmp_path / "b.log", url_b):
        rotated = await trio.run_process(
            [*OAUTHD, "keys", "rotate", "--config", str(config), "--immediate"],
            capture_stdout=True,
            capture_stderr=True,
            env=ENV,
            check=False,
        )
        assert rotated.returncode == 0, rotated.stderr
        # A process started now (a restarted worker) signs with the new key.
        with start(config, tmp_path / "c.log", url_c, "--listen", f"127.0.0.1:{port_c}"):
            async with (
                httpx.AsyncClient(base_url=url_b, timeout=30) as b,
                httpx.AsyncClient(base_url=url_c, timeout=30) as c,
            ):
                before = {k["kid"] for k in (await b.get("/.well-known/jwks.json")).json()["keys"]}
                client = await register(c)
                tokens = await tokens_for(c, Authorization(client["client_id"], resource=None))
                bearer = {"Authorization": "Bearer " + tokens["access_token"]}
                info = await b.get("/userinfo", headers=bearer)
                assert info.status_code == 200, info.text
                after = {k["kid"] for k in (await b.get("/.well-known/jwks.json")).json()["keys"]}
                assert len(after - before) == 2  # B now publishes the new keys too (both lines)
