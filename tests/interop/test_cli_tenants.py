"""`oauthd tenants ...` as real subprocesses, with `--json`, beside a live `oauthd serve`: the
Registry's write lock orders them, the message of a refused setting names its key."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from oauthd.actors.registry import REGISTRY_POLL_S
from tests.interop.test_cli import (
    Config,
    run,
    serving,
    wait_until,
    write_config,
)
from tests.interop.test_cli_admin import run_with_stdin

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)


@pytest.fixture
def config(tmp_path: Path, storage_toml: str) -> Config:
    return write_config(tmp_path, '[log]\nlevel = "info"\n' + storage_toml)


def tenants(config: Config, *args: str) -> tuple[int, Any, str]:
    result = run("tenants", *args, "--config", str(config.path), "--json")
    body = json.loads(result.stdout) if result.stdout.strip() else None
    return result.returncode, body, result.stderr


def test_tenants_add_list_show_update_disable_enable_remove_with_json(
    config: Config, tmp_path: Path
) -> None:
    """Every tenants command answers JSON; a new tenant's issuer is <root>/t/<id>; disable and
    enable change its state; remove deletes its directory and its row."""
    settings = tmp_path / "acme.toml"
    settings.write_text('[branding]\nproduct_name = "Acme"\n[tokens]\naccess_token_ttl_s = 600\n')
    with serving(config, tmp_path / "serve.err"):
        code, added, err = tenants(config, "add", "acme", "--settings", str(settings))
        assert code == 0, err
        assert added["tenant"] == "acme"
        assert added["issuer"] == config.issuer + "/t/acme"
        assert added["state"] == "active"
        assert "product_name" in added["settings"]
        code, _, err = tenants(config, "add", "beta")
        assert code == 0, err
        code, listed, _ = tenants(config, "list")
        assert [t["tenant"] for t in listed] == ["acme", "beta"]
        code, shown, _ = tenants(config, "show", "acme")
        assert (code, shown) == (0, added)
        settings.write_text("[tokens]\naccess_token_ttl_s = 300\n")
        code, updated, err = tenants(config, "update", "acme", "--settings", str(settings))
        assert code == 0, err
        assert updated["settings"] == "[tokens]\naccess_token_ttl_s = 300\n"
        code, disabled, _ = tenants(config, "disable", "acme")
        assert (code, disabled["state"]) == (0, "disabled")
        code, enabled, _ = tenants(config, "enable", "acme")
        assert (code, enabled["state"]) == (0, "active")
        (config.path.parent / "data" / "acme").mkdir(parents=True, exist_ok=True)
        code, removed, err = tenants(config, "remove", "acme")
        assert code == 0, err
        assert removed["removed"] is True
        if "postgres" not in config.path.read_text():  # only SQLite keeps a tenant in files
            assert not Path(removed["directory"]).exists()
        code, listed, _ = tenants(config, "list")
        assert [t["tenant"] for t in listed] == ["beta"]


def test_tenants_refusals_exit_1_or_2_and_name_the_key(config: Config, tmp_path: Path) -> None:
    """An unknown tenant exits 1; a bad id, a server-wide or unknown key, or an impossible
    value exits 2 with a message naming it; nothing is added."""
    code, body, _ = tenants(config, "show", "nope")
    assert (code, body) == (1, {"error": "not_found", "tenant": "nope"})
    code, _, _ = tenants(config, "disable", "nope")
    assert code == 1
    for text, key in (
        ("[tokens]\ncode_ttl_s = 900\n", "tokens.code_ttl_s"),
        ("[tokens]\nbogus = 1\n", "tokens.bogus"),
        ('listen = "0.0.0.0:1"\n', "listen"),
        ("[keys]\nactive_s = 60\n", "keys.active_s"),
    ):
        path = tmp_path / "bad.toml"
        path.write_text(text)
        code, _, err = tenants(config, "add", "acme", "--settings", str(path))
        assert code == 2
        assert key in err
    for bad in ("default", "Upper", "a_b"):
        code, _, err = tenants(config, "add", bad)
        assert code == 2
        assert "tenant id" in err
    code, listed, _ = tenants(config, "list")
    assert (code, listed) == (0, [])


def test_tenants_add_and_update_take_an_issuer_of_its_own_served_at_its_host(
    config: Config, tmp_path: Path
) -> None:
    """`--issuer` gives a tenant its own origin, which a running server serves at that host
    (its documents name it); a malformed or taken origin exits 2 naming `issuer`; `--issuer
    ""` moves the tenant back to <root>/t/<id>."""
    with serving(config, tmp_path / "serve.err"):
        code, added, err = tenants(config, "add", "acme", "--issuer", "https://login.acme.example")
        assert code == 0, err
        assert added["issuer"] == "https://login.acme.example"
        at_host = {"Host": "login.acme.example"}
        url = f"{config.url}/.well-known/openid-configuration"

        def served() -> bool:
            issuer = httpx.get(url, headers=at_host, timeout=5).json()["issuer"]
            return bool(issuer == "https://login.acme.example")

        wait_until(served, 2 * REGISTRY_POLL_S + 1, "the new host to be served")  # README bound
        for issuer in ("https://login.acme.example", "https://login.beta.example/auth"):
            code, _, err = tenants(config, "add", "beta", "--issuer", issuer)
            assert code == 2
            assert "issuer" in err
        code, moved, err = tenants(config, "update", "acme", "--issuer", "")
        assert code == 0, err
        assert moved["issuer"] == config.issuer + "/t/acme"


def test_tenant2_users_and_clients_add_take_tenant_and_name_the_user_quota(
    config: Config, tmp_path: Path
) -> None:
    """TENANT-2: `users add --tenant a` past a's `limits.max_users` exits 2 naming the quota,
    while b takes the same user; `clients add|list --tenant` work on that tenant's clients
    only; an unknown tenant exits 1. Each command is a new process that knows a tenant added
    a moment before (on PostgreSQL: the registry read before the command runs)."""
    settings = tmp_path / "a.toml"
    settings.write_text("[limits]\nmax_users = 1\n")
    assert tenants(config, "add", "a", "--settings", str(settings))[0] == 0
    assert tenants(config, "add", "b")[0] == 0

    def add_user(tenant: str, email: str) -> subprocess.CompletedProcess[str]:
        args = ("users", "add", "--config", str(config.path), "--tenant", tenant)
        return run_with_stdin("a long password\n", *args, "--email", email)

    assert add_user("a", "alice@example.com").returncode == 0
    refused = add_user("a", "bob@example.com")
    assert refused.returncode == 2
    assert "limits.max_users (1) reached" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert add_user("b", "bob@example.com").returncode == 0
    result = run("users", "list", "--config", str(config.path), "--tenant", "a")
    listed = result.stdout
    assert "alice@example.com" in listed, result.stderr
    assert "bob@example.com" not in listed
    assert "@" not in run("users", "list", "--config", str(config.path)).stdout

    added = run(
        *("clients", "add", "--config", str(config.path), "--tenant", "a"),
        *("--redirect-uri", "https://app.example/cb"),
    )
    assert added.returncode == 0, added.stderr
    client_id = added.stdout.split()[1]
    assert client_id in run("clients", "list", "--config", str(config.path), "--tenant", "a").stdout
    assert client_id not in run("clients", "list", "--config", str(config.path)).stdout
    unknown = run("users", "list", "--config", str(config.path), "--tenant", "nope")
    assert unknown.returncode == 1
    assert "no tenant 'nope'" in unknown.stderr
