"""The `[admin]` table (settings/schema.py AdminSettings): server-wide, checked like every key,
with a ConfigError naming the key; its tokens come from the environment, long enough."""

from __future__ import annotations

from pathlib import Path

import pytest

from oauthd.errors import ConfigError
from oauthd.server import load_admin_tokens
from oauthd.settings import load_settings, load_tenant_settings
from oauthd.web import token_digest
from tests.unit.test_settings import BASE, assert_names, config_error, write

LONG = "t" * 32


def test_admin_is_off_by_default_and_loads_when_set(tmp_path: Path) -> None:
    """listen "" is no admin API; a listen and a token variable load, the tokens as digests."""
    assert not load_settings(write(tmp_path, BASE), {}).admin.enabled
    text = BASE + '[admin]\nlisten = "127.0.0.1:8788"\ntoken_env = "ADMIN_TOKENS"\n'
    settings = load_settings(write(tmp_path, text), {"ADMIN_TOKENS": f"{LONG}, {LONG}x"})
    assert settings.admin.enabled
    digests = load_admin_tokens(settings, {"ADMIN_TOKENS": f"{LONG}, {LONG}x"})
    assert digests == (token_digest(LONG), token_digest(LONG + "x"))


@pytest.mark.parametrize(
    ("admin", "key"),
    [
        ('listen = "127.0.0.1:8787"\ntoken_env = "T"\n', "admin.listen"),  # the public one
        ('listen = "0.0.0.0:8787"\ntoken_env = "T"\n', "admin.listen"),  # overlaps it
        ('listen = "127.0.0.1"\ntoken_env = "T"\n', "admin.listen"),
        ('listen = "127.0.0.1:8788"\n', "admin.token_env"),  # required with listen
        ("auth_failures = { requests = 0, window_s = 60 }\n", "admin.auth_failures.requests"),
        ('token = "x"\n', "admin.token"),
    ],
)
def test_bad_admin_settings_name_the_key(tmp_path: Path, admin: str, key: str) -> None:
    """An impossible [admin] value is a ConfigError naming its key."""
    text = BASE + 'listen = "127.0.0.1:8787"\n[admin]\n' + admin
    assert_names(config_error(tmp_path, text), str(tmp_path / "oauthd.toml"), key)


@pytest.mark.parametrize(
    ("environ", "problem"),
    [({}, "is not set"), ({"T": " , "}, "holds no token"), ({"T": f"{LONG},short"}, "32")],
)
def test_admin_tokens_must_be_set_and_long(
    tmp_path: Path, environ: dict[str, str], problem: str
) -> None:
    """The variable must hold tokens of at least 32 characters; the error names the key and
    never shows a token."""
    text = BASE + '[admin]\nlisten = "127.0.0.1:8788"\ntoken_env = "T"\n'
    settings = load_settings(write(tmp_path, text), {})
    with pytest.raises(ConfigError) as info:
        load_admin_tokens(settings, environ)
    assert info.value.key == "admin.token_env"
    assert problem in info.value.problem
    assert "short" not in str(info.value)


def test_a_tenant_cannot_have_an_admin_table(tmp_path: Path) -> None:
    """[admin] is server-wide: a tenant's settings naming it are refused, naming it."""
    root = load_settings(write(tmp_path, BASE), {})
    with pytest.raises(ConfigError) as info:
        load_tenant_settings(root, root.issuer + "/t/a", '[admin]\nlisten = "x:1"\n', "tenant a")
    assert info.value.key == "admin"
    assert "server-wide" in info.value.problem
