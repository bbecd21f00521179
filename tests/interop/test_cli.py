"""The `oauthd` command as operators run it: real subprocesses on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

OAUTHD = [sys.executable, "-m", "oauthd"]
STARTUP_S = 15.0  # generous bound for a cold interpreter; a start takes ~1 s
EXIT_S = 5.0
# The tests' environment must not leak stray overrides into the child (they would be rejected).
ENV = {k: v for k, v in os.environ.items() if not k.startswith("OAUTHD_")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Config:
    path: Path
    issuer: str
    url: str


def write_config(tmp_path: Path, body: str, *, dev_mode: bool = True) -> Config:
    """`<tmp_path>/oauthd.toml` for a server on a free loopback port with its data in
    `<tmp_path>/data`: the issuer, data_dir and listen lines, then `body` (more keys, tables)."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    path = tmp_path / "oauthd.toml"
    path.write_text(
        f'issuer = "{issuer}"\ndev_mode = {str(dev_mode).lower()}\n'
        f'data_dir = "{tmp_path / "data"}"\nlisten = "127.0.0.1:{port}"\n' + body,
        encoding="utf-8",
    )
    return Config(path, issuer, issuer)


@pytest.fixture
def config(tmp_path: Path, storage_toml: str) -> Config:
    return write_config(
        tmp_path,
        "[keys]\nreload_interval_s = 0.2\n"
        '[log]\nlevel = "info"\nformat = "text"\naccess_log = true\n' + storage_toml,
        dev_mode=False,
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OAUTHD, *args], capture_output=True, text=True, timeout=30, env=ENV, check=False
    )


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Bounded polling: the only waiting these tests do."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Serving:
    process: subprocess.Popen[bytes]
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serving(config: Config, stderr: Path) -> Iterator[Serving]:
    """`oauthd serve` until the block ends; killed in `finally` whatever happens."""
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [*OAUTHD, "serve", "--config", str(config.path)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=ENV,
        )
        try:

            def ready() -> bool:
                if process.poll() is not None:
                    raise AssertionError(
                        f"oauthd exited {process.returncode}: {stderr.read_text()}"
                    )
                try:
                    return httpx.get(config.url + "/healthz", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, STARTUP_S, "oauthd serve to answer /healthz")
            yield Serving(process, stderr)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=EXIT_S)


def jwks_kids(config: Config) -> set[str]:
    response = httpx.get(config.url + "/.well-known/jwks.json", timeout=5)
    assert response.status_code == 200
    return {key["kid"] for key in response.json()["keys"]}


# --- check-config --------------------------------------------------------------------------


def test_check_config_accepts_a_good_file_with_exit_0(config: Config) -> None:
    """`oauthd check-config` on a valid file exits 0 and says so."""
    result = run("check-config", "--config", str(config.path))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert config.issuer in result.stdout


def test_check_config_rejects_a_bad_file_with_exit_2_naming_the_key(tmp_path: Path) -> None:
    """`oauthd check-config` on a bad file exits 2 with a message naming the file and the key."""
    path = tmp_path / "bad.toml"
    path.write_text('issuer = "http://127.0.0.1:8787"\n[tokens]\ncode_ttl_s = "sixty"\n')
    result = run("check-config", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}: tokens.code_ttl_s:" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_names_a_missing_federation_secret(tmp_path: Path) -> None:
    """Issue 6: a federation whose secret variable is unset stops at check-config, with the
    key named; with the variable set, the upstream login is reported."""
    path = tmp_path / "fed.toml"
    path.write_text(
        'issuer = "https://auth.example.com"\n'
        "[federation]\n"
        'provider = "okta"\ndomain = "example.okta.com"\nclient_id = "0oa1"\n'
        'client_secret_env = "OKTA_SECRET_FOR_TEST"\n'
    )
    missing = run("check-config", "--config", str(path))
    assert missing.returncode == 2
    assert "federation.client_secret_env" in missing.stderr
    assert "Traceback" not in missing.stderr
    present = subprocess.run(
        [*OAUTHD, "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**ENV, "OKTA_SECRET_FOR_TEST": "s"},
        check=False,
    )
    assert present.returncode == 0, present.stderr
    assert "federation via https://example.okta.com/oauth2/default" in present.stdout


def test_serve_rejects_a_bad_listen_option_with_exit_2(config: Config) -> None:
    """`oauthd serve --listen garbage` is a configuration error (exit 2), not a traceback."""
    result = run("serve", "--config", str(config.path), "--listen", "nonsense")
    assert result.returncode == 2
    assert "--listen" in result.stderr
    assert "Traceback" not in result.stderr


# --- serve -----------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_answers_with_configured_issuer_and_exits_0_on_signal(
    config: Config, tmp_path: Path, signum: signal.Signals
) -> None:
    """`oauthd serve` serves the configured issuer; SIGTERM/SIGINT shut it down gracefully (0)."""
    with serving(config, tmp_path / "serve.err") as server:
        response = httpx.get(config.url + "/.well-known/oauth-authorization-server", timeout=5)
        assert response.status_code == 200
        assert response.json()["issuer"] == config.issuer
        server.process.send_signal(signum)
        assert server.process.wait(timeout=EXIT_S) == 0
        assert f"received {signum.name}, shutting down" in server.log()
        assert "Traceback" not in server.log()


def access_lines(log: str, method: str, path: str, status: int) -> list[str]:
    """Access-log lines `<method> <path> <status> <duration>ms` (path matched literally)."""
    pattern = re.compile(rf" oauthd\.access {method} {re.escape(path)} {status} \d+\.\d+ms ")
    return [line for line in log.splitlines() if pattern.search(line)]


def test_access_log_has_one_line_per_request_and_never_the_query(
    config: Config, tmp_path: Path
) -> None:
    """Access log: method, path, status, duration per request; no query string, no forged line."""
    with serving(config, tmp_path / "serve.err") as server:
        httpx.get(config.url + "/.well-known/jwks.json?code=SECRET&state=s", timeout=5)
        httpx.post(config.url + "/.well-known/jwks.json?token=SECRET", timeout=5)
        httpx.get(config.url + "/nope%0a2026-01-01 INFO oauthd.access FORGED", timeout=5)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=EXIT_S) == 0
    log = server.log()
    assert len(access_lines(log, "GET", "/.well-known/jwks.json", 200)) == 1
    assert len(access_lines(log, "POST", "/.well-known/jwks.json", 405)) == 1
    assert "SECRET" not in log
    assert "code=" not in log
    # A decoded %0a in the path is escaped, so it cannot start a forged line.
    forged = "/nope\\n2026-01-01 INFO oauthd.access FORGED"
    assert len(access_lines(log, "GET", forged, 404)) == 1
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())


@pytest.mark.both_backends
def test_restart_on_the_same_data_dir_serves_the_same_jwks(config: Config, tmp_path: Path) -> None:
    """Keys are durable: a restarted server publishes the key set it published before."""
    with serving(config, tmp_path / "first.err") as server:
        before = jwks_kids(config)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=EXIT_S) == 0
    with serving(config, tmp_path / "second.err"):
        assert jwks_kids(config) == before


@pytest.mark.both_backends
def test_keys_rotate_reaches_a_running_server_within_reload_interval(
    config: Config, tmp_path: Path
) -> None:
    """JWKS-5: `oauthd keys rotate` publishes a new key; a running server serves it promptly."""
    with serving(config, tmp_path / "serve.err"):
        kids = jwks_kids(config)
        assert len(kids) == 2  # ES256 for access tokens, RS256 for ID tokens
        listed = run("keys", "list", "--config", str(config.path))
        assert listed.returncode == 0, listed.stderr
        assert all(kid in listed.stdout for kid in kids)
        assert "active" in listed.stdout

        rotated = run("keys", "rotate", "--config", str(config.path))
        assert rotated.returncode == 0, rotated.stderr
        assert all(kid in rotated.stdout for kid in kids)
        assert "published" in rotated.stdout

        # keys.reload_interval_s is 0.2 s; allow for a loaded machine, but bounded.
        wait_until(lambda: len(jwks_kids(config)) == 4, 5.0, "the rotated keys in the JWKS")
        assert kids <= jwks_kids(config)  # the old keys keep verifying


def test_clients_add_registers_a_client_the_server_knows(config: Config, tmp_path: Path) -> None:
    """`oauthd clients add` validates like RFC 7591 registration, prints the id and a secret
    once, stores only the hash, and a running server serves /authorize for the client."""
    added = run(
        "clients",
        "add",
        "--config",
        str(config.path),
        "--name",
        "Shell",
        "--redirect-uri",
        "https://app.example/cb",
    )
    assert added.returncode == 0, added.stderr
    lines = dict(line.split(":", 1) for line in added.stdout.splitlines())
    client_id = lines["client_id"].strip()
    secret = lines["client_secret"].split()[0]
    listed = run("clients", "list", "--config", str(config.path))
    assert client_id in listed.stdout
    shards = list((config.path.parent / "data" / "default" / "clients").rglob("*.sqlite"))
    assert shards
    assert not any(secret.encode() in shard.read_bytes() for shard in shards)
    refused = run(
        "clients", "add", "--config", str(config.path), "--redirect-uri", "http://evil.example/cb"
    )
    assert refused.returncode == 2
    assert "redirect" in refused.stderr
    with serving(config, tmp_path / "stderr.log"):
        page = httpx.get(
            f"{config.url}/authorize",
            params={"client_id": client_id, "response_type": "code", "state": "s"},
        )
    # Known client, its only redirect URI used: PKCE missing is redirected, not an error page.
    assert page.status_code == 303
    assert page.headers["location"].startswith("https://app.example/cb?error=invalid_request")


def test_gc_removes_a_deleted_clients_shard_and_prints_counts(config: Config) -> None:
    """SQLite only: it marks the client deleted in its shard file and looks for the file.
    `oauthd gc` runs one janitor pass on the data dir: it prints what it deleted, and a
    client deregistered over RFC 7592 §2.3 leaves no shard file and no index entry."""
    added = run("clients", "add", "--config", str(config.path), "--redirect-uri", "https://a/cb")
    assert added.returncode == 0, added.stderr
    client_id = dict(line.split(":", 1) for line in added.stdout.splitlines())["client_id"].strip()
    (shard,) = (config.path.parent / "data" / "default" / "clients").glob("??/*.sqlite")
    with closing(sqlite3.connect(shard)) as db, db:
        db.execute("UPDATE client SET deleted_at = 1")  # as DELETE /register/<id> leaves it
    collected = run("gc", "--config", str(config.path))
    assert collected.returncode == 0, collected.stderr
    counts = dict(line.rsplit(None, 1) for line in collected.stdout.splitlines())
    assert counts["shards removed"] == "1"
    assert counts["codes"] == "0"
    assert not shard.exists()
    assert not list(shard.parent.glob(f"{shard.name}*"))  # nor its -wal and -shm
    assert client_id not in run("clients", "list", "--config", str(config.path)).stdout
