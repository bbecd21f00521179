"""`hypercorn -k trio 'oauthd.asgi:app'` as an operator runs it: a real Hypercorn process with
its own binds, oauthd's config named by OAUTHD_CONFIG, the runtime started and stopped by the
ASGI lifespan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from tests.flow import Authorization, refresh, register, secure_cookies_on_loopback, tokens_for
from tests.interop.test_cli import ENV, EXIT_S, STARTUP_S, Config, wait_until, write_config

HYPERCORN = [sys.executable, "-m", "hypercorn", "-k", "trio"]


@contextmanager
def hypercorn(
    config: Config, stderr: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Hypercorn serving oauthd.asgi:app on the config's port until the block ends."""
    bind = config.url.removeprefix("http://")
    with stderr.open("wb") as err:
        process = subprocess.Popen(  # its own group: Hypercorn's worker is a child process
            [*HYPERCORN, "--bind", bind, "oauthd.asgi:app"],
            stdout=err,
            stderr=err,
            env=env,
            start_new_session=True,
        )
        try:

            def ready() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"hypercorn exited: {stderr.read_text()}")
                try:
                    return httpx.get(config.url + "/healthz", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, STARTUP_S, "hypercorn to serve oauthd")
            yield process
        finally:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the worker too, whatever happened
            process.wait(timeout=EXIT_S)


async def test_hypercorn_serves_oauthd_asgi_app_and_stops_it(tmp_path: Path) -> None:
    """OAUTHD_CONFIG names the file; a code flow with refresh works; SIGTERM runs the lifespan
    shutdown and Hypercorn exits cleanly."""
    config = write_config(tmp_path, '[[resources]]\nuri = "https://mcp.example.com/mcp"\n')
    env = {**ENV, "OAUTHD_CONFIG": str(config.path)}
    log = tmp_path / "hypercorn.log"
    with hypercorn(config, log, env) as process:
        async with httpx.AsyncClient(base_url=config.url) as http:
            secure_cookies_on_loopback(http)
            assert (await http.get("/.well-known/jwks.json")).json()["keys"]
            client = await register(http)
            tokens = await tokens_for(http, Authorization(client["client_id"]))
            refreshed = await refresh(http, client["client_id"], tokens["refresh_token"])
            assert refreshed.status_code == 200, refreshed.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=EXIT_S + 10) == 0
    assert (tmp_path / "data" / "default" / "keys.sqlite").exists()
    assert "Traceback" not in log.read_text()


def test_hypercorn_without_oauthd_config_fails_to_start_saying_why(tmp_path: Path) -> None:
    """No OAUTHD_CONFIG: the lifespan startup fails, Hypercorn stops (with status 0: its own
    choice), and the message names the variable."""
    result = subprocess.run(
        [*HYPERCORN, "--bind", "127.0.0.1:0", "oauthd.asgi:app"],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
        check=False,
    )
    assert "OAUTHD_CONFIG: is not set" in result.stdout + result.stderr
