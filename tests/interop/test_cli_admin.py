"""The admin commands (`oauthd clients|users|grants`) against a live `oauthd serve`: they share
its storage through the same actors and locks (SQLite files or PostgreSQL: both legs), and the
server sees their changes."""

from __future__ import annotations

import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import DSN_ENV
from tests.flow import Authorization, form_field, secure_cookies_on_loopback
from tests.interop.test_cli import (
    ENV,
    OAUTHD,
    Config,
    run,
    serving,
    write_config,
)

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

PASSWORD = "correct horse battery staple"


def run_with_stdin(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OAUTHD, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
        check=False,
    )


def add_client(cfg: Config, *extra: str) -> tuple[str, str]:
    added = run("clients", "add", "--config", str(cfg.path), *extra)
    assert added.returncode == 0, added.stderr
    lines = dict(line.split(":", 1) for line in added.stdout.splitlines())
    return lines["client_id"].strip(), lines.get("client_secret", " ").split()[
        0
    ] if "client_secret" in lines else ""


def client_credentials_client(cfg: Config) -> tuple[str, str]:
    return add_client(
        cfg, "--redirect-uri", "https://app.example/cb", "--grant-type", "client_credentials"
    )


def token(cfg: Config, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(
        cfg.url + "/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=5,
    )


def test_clients_show_and_remove_against_a_live_server(config: Config, tmp_path: Path) -> None:
    """`clients show` prints the registration (never the secret); `clients remove` deletes the
    client so the running server refuses it (invalid_client); unknown ids exit 1."""
    with serving(config, tmp_path / "serve.err") as server:
        client_id, secret = client_credentials_client(config)
        assert token(config, client_id, secret).status_code == 200
        shown = run("clients", "show", "--config", str(config.path), client_id)
        assert shown.returncode == 0, shown.stderr
        assert client_id in shown.stdout
        assert "client_credentials" in shown.stdout
        assert secret not in shown.stdout + shown.stderr
        assert run("clients", "show", "--config", str(config.path), "nobody").returncode == 1
        removed = run("clients", "remove", "--config", str(config.path), client_id)
        assert removed.returncode == 0, removed.stderr
        assert f"client_deleted client_id={client_id} by=cli" in removed.stderr
        refused = token(config, client_id, secret)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_client"
        assert client_id not in run("clients", "list", "--config", str(config.path)).stdout
        assert run("clients", "remove", "--config", str(config.path), client_id).returncode == 1
        assert "Traceback" not in server.log()


def password_hashes(config: Config) -> list[str]:
    """The stored password of every user of the default tenant, from the config's storage."""
    if DSN_ENV in ENV and "postgres" in config.path.read_text():
        with psycopg.connect(ENV[DSN_ENV]) as conn:
            rows = conn.execute("SELECT password_hash FROM users WHERE tenant = 'default'")
            return [str(row[0]) for row in rows]
    directory = config.path.parent / "data" / "default" / "directory.sqlite"
    with closing(sqlite3.connect(directory)) as db:
        return [str(row[0]) for row in db.execute("SELECT password_hash FROM users")]


def test_users_add_reads_the_password_from_stdin_and_lists_the_user(
    config: Config, tmp_path: Path
) -> None:
    """`users add` takes the password from stdin (not argv), stores only an argon2 hash, and
    refuses a second user with the same email (exit 2); `users list` shows the user."""
    with serving(config, tmp_path / "serve.err"):
        added = run_with_stdin(
            PASSWORD + "\n",
            "users",
            "add",
            "--config",
            str(config.path),
            "--email",
            "bob@example.com",
        )
        assert added.returncode == 0, added.stderr
        assert "user_added" in added.stderr
        assert PASSWORD not in added.stdout + added.stderr
        again = run_with_stdin(
            PASSWORD + "\n",
            "users",
            "add",
            "--config",
            str(config.path),
            "--email",
            "BOB@example.com",
        )
        assert again.returncode == 2
        listed = run("users", "list", "--config", str(config.path))
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines()[0].split()[:3] == ["email", "name", "user_id"]
        assert "bob@example.com" in listed.stdout
    (stored,) = password_hashes(config)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_users_add_refuses_a_short_password_with_exit_2(config: Config) -> None:
    """A password under 8 characters is a usage error, not a user."""
    added = run_with_stdin(
        "short\n", "users", "add", "--config", str(config.path), "--email", "c@d.e"
    )
    assert added.returncode == 2
    assert "c@d.e" not in run("users", "list", "--config", str(config.path)).stdout


def test_users_remove_of_an_unknown_user_exits_1(config: Config) -> None:
    """Not found is exit 1."""
    assert (
        run("users", "remove", "--config", str(config.path), "nobody@example.com").returncode == 1
    )


def test_grants_need_a_user_or_a_client_with_exit_2(config: Config) -> None:
    """`grants list` without --user or --client is a usage error."""
    assert run("grants", "list", "--config", str(config.path)).returncode == 2


def test_grants_list_and_revoke_by_client_end_its_tokens_on_a_live_server(
    config: Config, tmp_path: Path
) -> None:
    """`grants revoke --client` ends every grant of the client: the running server then says its
    refresh token is invalid; `grants list` shows the grant before and not after."""
    with serving(config, tmp_path / "serve.err"):
        http = httpx.Client(base_url=config.url, timeout=10)
        tokens = code_flow_with_refresh(http, config)
        client_id = tokens["client_id"]
        listed = run("grants", "list", "--config", str(config.path), f"--client={client_id}")
        assert listed.returncode == 0, listed.stderr
        assert len(listed.stdout.splitlines()) == 2  # header + the one grant
        revoked = run("grants", "revoke", "--config", str(config.path), f"--client={client_id}")
        assert revoked.returncode == 0, revoked.stderr
        assert "1 grants revoked" in revoked.stdout
        assert "grant_revoked" in revoked.stderr
        refreshed = http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": client_id,
            },
        )
        assert refreshed.status_code == 400
        assert refreshed.json()["error"] == "invalid_grant"
        after = run("grants", "list", "--config", str(config.path), f"--client={client_id}")
        assert len(after.stdout.splitlines()) == 1


def test_users_remove_ends_sessions_and_grants_across_shards_on_a_live_server(
    config: Config, tmp_path: Path
) -> None:
    """`users remove` deletes the user, ends their browser sessions, and revokes their grants
    in every client shard; `grants list --user` finds them in both clients first."""
    with serving(config, tmp_path / "serve.err"):
        http = httpx.Client(base_url=config.url, timeout=10)
        first = code_flow_with_refresh(http, config)
        second = code_flow_with_refresh(http, config)  # a second client, the same session
        email = first["email"]
        listed = run("grants", "list", "--config", str(config.path), "--user", email)
        assert listed.returncode == 0, listed.stderr
        assert first["client_id"] in listed.stdout
        assert second["client_id"] in listed.stdout
        removed = run("users", "remove", "--config", str(config.path), email)
        assert removed.returncode == 0, removed.stderr
        assert "2 grants revoked" in removed.stdout
        for tokens in (first, second):
            response = http.post(
                "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens["refresh_token"],
                    "client_id": tokens["client_id"],
                },
            )
            assert response.json()["error"] == "invalid_grant"
        # The browser session is gone: a new authorization asks for the login again.
        auth = authorization(first["client_id"])
        again = http.get("/authorize", params=auth[1])
        assert again.headers["location"].startswith("/login")
        assert email not in run("users", "list", "--config", str(config.path)).stdout


# --- a code flow driven synchronously against the subprocess --------------------------------


def authorization(client_id: str) -> tuple[str, dict[str, str]]:
    from tests.flow import pkce

    verifier, challenge = pkce()
    return verifier, {
        "client_id": client_id,
        "redirect_uri": "http://127.0.0.1:5555/cb",
        "response_type": "code",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s",
        "scope": "openid",
    }


def code_flow_with_refresh(http: httpx.Client, cfg: Config) -> dict[str, str]:
    """Register a public client, log in a dev user with allow_any_credentials, consent,
    redeem; the tokens with client_id and the user's email."""
    from tests.flow import form_field, query_of

    registered = http.post(
        "/register",
        json={
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        },
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    verifier, params = authorization(client_id)
    response = http.get("/authorize", params=params)
    email = "carol@example.com"
    for _ in range(4):
        location = response.headers["location"]
        if location.startswith("/login"):
            page = http.get(location)
            response = http.post(
                "/login",
                data={
                    "request": form_field(page.text, "request"),
                    "csrf": form_field(page.text, "csrf"),
                    "email": email,
                    "password": PASSWORD,
                },
            )
        elif location.startswith("/consent"):
            page = http.get(location)
            response = http.post(
                "/consent",
                data={
                    "request": form_field(page.text, "request"),
                    "csrf": form_field(page.text, "csrf"),
                    "decision": "allow",
                },
            )
        else:
            break
    code = query_of(response.headers["location"])["code"]
    redeemed = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    assert redeemed.status_code == 200, redeemed.text
    return {**redeemed.json(), "client_id": client_id, "email": email}


@pytest.fixture
def config(tmp_path: Path, storage_toml: str) -> Config:
    """A dev-mode server whose login creates users for any credentials (the grants tests)."""
    return write_config(
        tmp_path, '[dev]\nallow_any_credentials = true\n[log]\nlevel = "info"\n' + storage_toml
    )


def test_password_login_lets_a_local_user_sign_in_outside_dev_mode(
    config: Config, tmp_path: Path
) -> None:
    """Issue 8 (local users): with `password_login`, a user added by `users add` signs in with
    email and password outside dev mode; a wrong password and an unknown email get the same
    401 page."""
    production = config.path.read_text().replace("dev_mode = true", "dev_mode = false")
    assert "dev_mode = false" in production
    config.path.write_text("password_login = true\n" + production)
    added = run_with_stdin(
        PASSWORD + "\n", "users", "add", "--config", str(config.path), "--email", "bob@example.com"
    )
    assert added.returncode == 0, added.stderr
    with serving(config, tmp_path / "serve.err"), httpx.Client(base_url=config.url) as http:
        secure_cookies_on_loopback(http)
        client = http.post(
            "/register",
            json={"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
        ).json()
        auth = Authorization(
            client["client_id"], redirect_uri="http://127.0.0.1:5555/cb", resource=None
        )
        start = http.get("/authorize", params=auth.params)
        assert start.status_code == 303, start.text
        login_url = start.headers["location"]
        assert login_url.startswith("/login?")
        refused = []
        for email, password in (
            ("bob@example.com", "wrong password"),
            ("eve@example.com", PASSWORD),
        ):
            page = http.get(login_url)
            refused.append(
                http.post(
                    "/login",
                    data={
                        "request": form_field(page.text, "request"),
                        "csrf": form_field(page.text, "csrf"),
                        "email": email,
                        "password": password,
                    },
                )
            )
        assert [r.status_code for r in refused] == [401, 401], refused[1].headers
        page = http.get(login_url)
        assert "Development mode" not in page.text
        signed_in = http.post(
            "/login",
            data={
                "request": form_field(page.text, "request"),
                "csrf": form_field(page.text, "csrf"),
                "email": "bob@example.com",
                "password": PASSWORD,
            },
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"].startswith("/consent?")
