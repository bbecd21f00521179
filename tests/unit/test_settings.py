"""Settings: strict TOML loading, environment overrides, and the shipped configuration files."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest

from oauthd.errors import ConfigError
from oauthd.server import open_runtime
from oauthd.settings import Settings, load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config"
BASE = 'issuer = "http://127.0.0.1:8787"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "oauthd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    return load_settings(write(tmp_path, text), environ or {})


def config_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ or {})
    return info.value


def assert_names(error: ConfigError, source: str, key: str) -> None:
    assert error.source == source
    assert error.key == key
    assert f"{source}: {key}: " in str(error)


# --- the file loads ------------------------------------------------------------------------


def test_minimal_file_gets_every_default(tmp_path: Path) -> None:
    """Only `issuer` is required; every other key has its documented default."""
    settings = load(tmp_path, BASE)
    assert settings.issuer == "http://127.0.0.1:8787"
    assert settings.tokens.code_ttl_s == 60
    assert settings.dev_mode is False
    assert settings.server.engine == "native"
    assert settings.source == str(tmp_path / "oauthd.toml")


def test_dev_toml_loads_in_dev_mode() -> None:
    """config/dev.toml loads as shipped, with dev mode on."""
    settings = load_settings(CONFIG / "dev.toml", {})
    assert settings.dev_mode is True
    assert settings.issuer == "http://127.0.0.1:8787"


def test_production_example_loads_with_its_secret_variable() -> None:
    """config/production.example.toml loads once WEB_CLIENT_SECRET is in the environment."""
    settings = load_settings(CONFIG / "production.example.toml", {"WEB_CLIENT_SECRET": "s3cret"})
    assert settings.dev_mode is False
    assert settings.issuer == "https://auth.example.com"
    assert settings.clients[0].client_secret_env == "WEB_CLIENT_SECRET"


def undocumented(cls: type[Any], table: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys of `cls` (recursing into tables and arrays of tables) missing from `table`."""
    missing = []
    for name, hint in typing.get_type_hints(cls).items():
        if name == "source":
            continue
        if name not in table:
            missing.append(prefix + name)
            continue
        value = table[name]
        inner = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
        if dataclasses.is_dataclass(inner) and isinstance(inner, type):
            for item in value if isinstance(value, list) else [value]:
                missing += undocumented(inner, item, f"{prefix}{name}.")
    return missing


def test_production_example_documents_every_key() -> None:
    """docs/architecture.md "Configuration": every key is in config/production.example.toml."""
    raw = tomllib.loads((CONFIG / "production.example.toml").read_text(encoding="utf-8"))
    assert undocumented(Settings, raw) == []


# --- unknown keys and wrong types ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (BASE + "isuser = 'x'\n", "isuser"),
        (BASE + "source = 'x'\n", "source"),
        (BASE + "[tokens]\nfoo = 1\n", "tokens.foo"),
        (BASE + "[nonsense]\nx = 1\n", "nonsense"),
        (
            BASE + "[[clients]]\nclient_id = 'a'\ntoken_endpoint_auth_method = 'none'\nx = 1\n",
            "clients[0].x",
        ),
        (
            BASE + "[dev]\nusers = [{ email = 'a@b.c', password = 'p', role = 'x' }]\n",
            "dev.users[0].role",
        ),
    ],
    ids=["top-level", "loader-internal", "in-table", "table", "in-array-table", "inline-table"],
)
def test_unknown_key_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    """An unknown key stops loading with ConfigError naming the file and the key."""
    error = config_error(tmp_path, text)
    assert_names(error, str(tmp_path / "oauthd.toml"), key)
    assert "unknown key" in str(error)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (BASE + "[tokens]\ncode_ttl_s = '60'\n", "tokens.code_ttl_s"),
        (BASE + "[tokens]\ncode_ttl_s = 60.5\n", "tokens.code_ttl_s"),
        (BASE + "dev_mode = 1\n", "dev_mode"),
        (BASE + "listen = ['127.0.0.1:1']\n", "listen"),
        (BASE + "tokens = 5\n", "tokens"),
        (BASE + "data_dir = ''\n", "data_dir"),
        (BASE + "[keys]\nalgorithm = 'HS256'\n", "keys.algorithm"),
        (
            BASE + "[[resources]]\nuri = 'https://r.example'\nscopes = 'a b'\n",
            "resources[0].scopes",
        ),
        ("issuer = 8787\n", "issuer"),
    ],
    ids=[
        "string-for-int",
        "float-for-int",
        "int-for-bool",
        "array-for-string",
        "int-for-table",
        "empty-path",
        "not-in-literal",
        "string-for-array",
        "int-for-string",
    ],
)
def test_wrong_type_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    """A value of the wrong type stops loading with ConfigError naming the file and the key."""
    assert_names(config_error(tmp_path, text), str(tmp_path / "oauthd.toml"), key)


# --- impossible values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (BASE + "[tokens]\naccess_token_ttl_s = -1\n", "tokens.access_token_ttl_s"),
        (BASE + "[tokens]\ncode_ttl_s = 0\n", "tokens.code_ttl_s"),
        (BASE + "[tokens]\ncode_ttl_s = 601\n", "tokens.code_ttl_s"),
        (BASE + "[actors]\nidle_timeout_s = nan\n", "actors.idle_timeout_s"),
        (BASE + "[keys]\nreload_interval_s = inf\n", "keys.reload_interval_s"),
        (BASE + "graceful_timeout_s = -1.0\n", "graceful_timeout_s"),
        (BASE + "graceful_timeout_s = nan\n", "graceful_timeout_s"),
        (BASE + "[keys]\nretain_s = 3599\n", "keys.retain_s"),
        (BASE + "[tokens]\nid_token_ttl_s = 700000\n", "keys.retain_s"),
        (BASE + "[keys]\nalgorithm = 'RS256'\nrsa_bits = 1024\n", "keys.rsa_bits"),
        (BASE + "[limits]\nmax_body_bytes = 0\n", "limits.max_body_bytes"),
        (BASE + "[server]\nengine = 'uvicorn'\n", "server.engine"),
        (BASE + "[server]\nkeep_alive_s = 0\n", "server.keep_alive_s"),
        (BASE + "[server]\nheader_timeout_s = inf\n", "server.header_timeout_s"),
        (BASE + "[server]\nbody_timeout_s = -1\n", "server.body_timeout_s"),
        (BASE + "[server]\nmax_connections = 0\n", "server.max_connections"),
        (BASE + "[server]\nworkers = 2\n", "server.workers"),
        (BASE + "[storage]\nbackend = 'mysql'\n", "storage.backend"),
        (BASE + "[storage]\nbackend = 'postgres'\n", "storage.dsn_env"),
    ],
    ids=[
        "negative-ttl",
        "zero-ttl",
        "code-ttl-over-600",
        "nan",
        "inf",
        "negative-grace",
        "nan-grace",
        "retain-below-access-ttl",
        "retain-below-id-ttl",
        "weak-rsa",
        "zero-body-limit",
        "unknown-engine",
        "zero-keep-alive",
        "endless-header-timeout",
        "negative-body-timeout",
        "no-connections",
        "unknown-server-key",
        "unknown-storage-backend",
        "postgres-without-dsn-variable",
    ],
)
def test_impossible_value_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    """An impossible value stops loading with ConfigError naming the file and the key."""
    assert_names(config_error(tmp_path, text), str(tmp_path / "oauthd.toml"), key)


def test_postgres_backend_is_selected_with_the_variable_of_its_dsn(tmp_path: Path) -> None:
    """`[storage] backend = "postgres"` loads with `dsn_env`, the variable's name only (the
    DSN is a secret, never in the file)."""
    storage = load(tmp_path, BASE + "[storage]\nbackend = 'postgres'\ndsn_env = 'PG_DSN'\n").storage
    assert (storage.backend, storage.dsn_env) == ("postgres", "PG_DSN")


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.1:http", ":8787", "127.0.0.1:65536", ""])
def test_bad_listen_is_rejected(tmp_path: Path, listen: str) -> None:
    """`listen` must be host:port with a port in 0..65535."""
    error = config_error(tmp_path, BASE + f"listen = '{listen}'\n")
    assert_names(error, str(tmp_path / "oauthd.toml"), "listen")


@pytest.mark.parametrize(
    "issuer",
    [
        "http://127.0.0.1:8787?tenant=1",
        "http://127.0.0.1:8787#frag",
        "http://127.0.0.1:8787?",
        "http://127.0.0.1:8787/",
        "http://127.0.0.1:8787/t1/",
        "ftp://127.0.0.1",
        "127.0.0.1:8787",
        "https://",
        "",
    ],
    ids=[
        "query",
        "fragment",
        "empty-query",
        "slash",
        "path-slash",
        "ftp",
        "no-scheme",
        "no-host",
        "empty",
    ],
)
def test_rfc8414_s2_issuer_must_be_a_plain_https_url(tmp_path: Path, issuer: str) -> None:
    """DISC-2 (RFC 8414 §2): the issuer has no query, no fragment, no trailing '/', is http(s)."""
    error = config_error(tmp_path, f"issuer = '{issuer}'\ndev_mode = true\n")
    assert_names(error, str(tmp_path / "oauthd.toml"), "issuer")


def test_html_11_http_issuer_off_loopback_needs_dev_mode(tmp_path: Path) -> None:
    """HTML-11: production startup refuses http issuers other than loopback."""
    error = config_error(tmp_path, "issuer = 'http://auth.example.com'\n")
    assert_names(error, str(tmp_path / "oauthd.toml"), "issuer")
    assert "https" in error.problem


@pytest.mark.parametrize(
    "issuer",
    ["http://127.0.0.1:8787", "http://localhost:8787", "http://[::1]:8787", "https://a.example/t1"],
)
def test_html_11_loopback_http_and_https_issuers_are_accepted(tmp_path: Path, issuer: str) -> None:
    """HTML-11: http is allowed outside dev mode only for loopback; https always."""
    assert load(tmp_path, f"issuer = '{issuer}'\n").issuer == issuer


def test_http_issuer_off_loopback_is_allowed_in_dev_mode(tmp_path: Path) -> None:
    """Dev mode is the one switch that allows an http issuer on another host."""
    settings = load(tmp_path, "issuer = 'http://dev.internal:8787'\ndev_mode = true\n")
    assert settings.issuer == "http://dev.internal:8787"


CLIENT = "[[clients]]\nclient_id = '{id}'\ntoken_endpoint_auth_method = 'none'\n"


def test_duplicate_client_ids_are_rejected(tmp_path: Path) -> None:
    """Client ids in [[clients]] are unique."""
    text = BASE + CLIENT.format(id="cli") + CLIENT.format(id="cli")
    assert_names(
        config_error(tmp_path, text), str(tmp_path / "oauthd.toml"), "clients[1].client_id"
    )


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8787/", "HTTP://127.0.0.1:8787/userinfo"])
def test_resource_naming_userinfo_is_rejected(tmp_path: Path, uri: str) -> None:
    """RFC 9728 §3.3: the issuer and its /userinfo URL are oauthd's own resource, not a
    [[resources]] entry (which it would shadow)."""
    text = BASE + f"[[resources]]\nuri = '{uri}'\n"
    error = config_error(tmp_path, text)
    assert_names(error, str(tmp_path / "oauthd.toml"), "resources[0].uri")
    assert "/userinfo" in str(error)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_secret_client_needs_client_secret_env(tmp_path: Path, method: str) -> None:
    """A client_secret_* client names the variable holding its secret (never the secret)."""
    text = BASE + f"[[clients]]\nclient_id = 'web'\ntoken_endpoint_auth_method = '{method}'\n"
    error = config_error(tmp_path, text)
    assert_names(error, str(tmp_path / "oauthd.toml"), "clients[0].client_secret_env")


@pytest.mark.parametrize("alg", ["HS256", "none", "PS256"])
def test_client_id_token_alg_must_be_one_ours_signs_with(tmp_path: Path, alg: str) -> None:
    """OIDC Registration §2: a [[clients]] id_token_signed_response_alg is one of the
    algorithms ID tokens are signed with (keys.algorithm or RS256), never none or HMAC."""
    text = BASE + CLIENT.format(id="web") + f"id_token_signed_response_alg = '{alg}'\n"
    error = config_error(tmp_path, text)
    assert_names(error, str(tmp_path / "oauthd.toml"), "clients[0].id_token_signed_response_alg")


@pytest.mark.parametrize(
    ("users", "key"),
    [
        ("[{ email = 'alice', password = 'p' }]", "dev.users[0].email"),
        (
            "[{ email = 'a@example.com', password = 'p' },"
            " { email = 'A@example.com', password = 'q' }]",
            "dev.users[1].email",
        ),
        ("[{ email = 'a@example.com' }]", "dev.users[0].password"),
    ],
    ids=["no-at", "duplicate", "no-password"],
)
def test_bad_dev_user_is_rejected(tmp_path: Path, users: str, key: str) -> None:
    """Dev users have a unique email address and a password."""
    error = config_error(tmp_path, BASE + f"[dev]\nusers = {users}\n")
    assert_names(error, str(tmp_path / "oauthd.toml"), key)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    """A syntax error stops loading with the file and the position."""
    error = config_error(tmp_path, BASE + "[tokens\n")
    assert_names(error, str(tmp_path / "oauthd.toml"), "(syntax)")
    assert "line 2" in error.problem


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError, not a traceback."""
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert_names(info.value, str(path), "(file)")


def test_missing_issuer_is_required(tmp_path: Path) -> None:
    """`issuer` is the one required key: the only source of the issuer."""
    assert_names(
        config_error(tmp_path, "dev_mode = true\n"), str(tmp_path / "oauthd.toml"), "issuer"
    )


# --- environment overrides ---------------------------------------------------------------------


def test_env_overrides_top_level_key(tmp_path: Path) -> None:
    """OAUTHD_ISSUER overrides `issuer`."""
    settings = load(tmp_path, BASE, {"OAUTHD_ISSUER": "https://auth.example.com"})
    assert settings.issuer == "https://auth.example.com"


def test_env_overrides_key_in_table_as_its_type(tmp_path: Path) -> None:
    """OAUTHD_TOKENS__CODE_TTL_S=30 sets tokens.code_ttl_s to the integer 30."""
    settings = load(
        tmp_path, BASE + "[tokens]\ncode_ttl_s = 60\n", {"OAUTHD_TOKENS__CODE_TTL_S": "30"}
    )
    assert settings.tokens.code_ttl_s == 30


def test_env_overrides_key_in_absent_table(tmp_path: Path) -> None:
    """An override of a table the file does not have still applies, with the other defaults."""
    settings = load(tmp_path, BASE, {"OAUTHD_KEYS__RELOAD_INTERVAL_S": "0.2"})
    assert settings.keys.reload_interval_s == 0.2
    assert settings.keys.algorithm == "ES256"


@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), ("FALSE", False)])
def test_env_override_parses_booleans(tmp_path: Path, text: str, value: bool) -> None:
    """OAUTHD_DEV_MODE=true sets dev_mode."""
    assert load(tmp_path, BASE, {"OAUTHD_DEV_MODE": text}).dev_mode is value


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("OAUTHD_TOKENS__CODE_TTL_S", "abc", "tokens.code_ttl_s"),
        ("OAUTHD_TOKENS__CODE_TTL_S", "601", "tokens.code_ttl_s"),
        ("OAUTHD_DEV_MODE", "yes", "dev_mode"),
        ("OAUTHD_LOG__LEVEL", "verbose", "log.level"),
        ("OAUTHD_ISSUER", "http://127.0.0.1:8787/", "issuer"),
    ],
    ids=["not-an-int", "impossible", "not-a-bool", "not-in-literal", "bad-issuer"],
)
def test_bad_env_override_names_the_key(tmp_path: Path, name: str, value: str, key: str) -> None:
    """A bad override value is checked like the file's and names the key it overrides."""
    error = config_error(tmp_path, BASE, {name: value})
    assert error.key == key
    assert key in str(error)


@pytest.mark.parametrize(
    "name",
    [
        "OAUTHD_FOO",
        "OAUTHD_TOKENS__FOO",
        "OAUTHD_TOKENS",
        "OAUTHD_SOURCE",
        "OAUTHD_CLIENTS__CLIENT_ID",
    ],
)
def test_unknown_oauthd_variable_is_rejected(tmp_path: Path, name: str) -> None:
    """An OAUTHD_* variable that overrides nothing is a typo: ConfigError naming it."""
    error = config_error(tmp_path, BASE, {name: "1"})
    assert error.key == name
    assert name in str(error)


def test_client_secret_variable_may_use_the_oauthd_prefix(tmp_path: Path) -> None:
    """A variable named by clients[].client_secret_env is a secret, not an unknown override."""
    text = (
        BASE + "[[clients]]\nclient_id = 'web'\ntoken_endpoint_auth_method = 'client_secret_post'\n"
        "client_secret_env = 'OAUTHD_WEB_SECRET'\n"
    )
    settings = load(tmp_path, text, {"OAUTHD_WEB_SECRET": "s3cret"})
    assert settings.clients[0].client_secret_env == "OAUTHD_WEB_SECRET"


def test_unrelated_variables_are_ignored(tmp_path: Path) -> None:
    """Only the OAUTHD_ prefix is read from the environment."""
    assert load(tmp_path, BASE, {"HOME": "/root", "ISSUER": "x"}).issuer == "http://127.0.0.1:8787"


# --- federation --------------------------------------------------------------------------------

FEDERATION = "[federation]\nclient_id = 'oauthd'\n"


@pytest.mark.parametrize(
    ("table", "issuer"),
    [
        ("provider = 'workos'\ndomain = 'acme.authkit.app'\n", "https://acme.authkit.app"),
        ("provider = 'auth0'\ndomain = 'acme.us.auth0.com'\n", "https://acme.us.auth0.com/"),
        (
            "provider = 'okta'\ndomain = 'example.okta.com'\n",
            "https://example.okta.com/oauth2/default",
        ),
        (
            "provider = 'okta'\ndomain = 'example.okta.com'\nokta_authorization_server = ''\n",
            "https://example.okta.com",
        ),
        ("provider = 'workos'\ndomain = 'https://acme.authkit.app/'\n", "https://acme.authkit.app"),
        (
            "provider = 'oidc'\nissuer = 'https://idp.example.com/realm'\n",
            "https://idp.example.com/realm",
        ),
        ("provider = 'oidc'\nissuer = 'http://127.0.0.1:9000'\n", "http://127.0.0.1:9000"),
    ],
    ids=[
        "workos",
        "auth0",
        "okta",
        "okta-org-server",
        "workos-url-domain",
        "oidc",
        "oidc-loopback",
    ],
)
def test_federation_presets_build_the_upstream_issuer(
    tmp_path: Path, table: str, issuer: str
) -> None:
    """OIDC Discovery §4: each preset names the issuer whose discovery document oauthd reads."""
    settings = load(tmp_path, BASE + FEDERATION + table)
    assert settings.federation.enabled
    assert settings.federation.upstream_issuer == issuer


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("provider = 'oidc'\n", "federation.issuer"),
        ("provider = 'okta'\n", "federation.domain"),
        ("provider = 'workos'\ndomain = 'acme.authkit.app/path'\n", "federation.domain"),
        ("provider = 'auth0'\ndomain = 'acme.us.auth0.com:8443'\n", "federation.domain"),
        ("provider = 'oidc'\nissuer = 'http://idp.example.com'\n", "federation.issuer"),
        ("provider = 'oidc'\nissuer = 'https://idp.example.com/?tenant=1'\n", "federation.issuer"),
        (
            "provider = 'oidc'\nissuer = 'https://idp.example.com'\nscopes = ['email']\n",
            "federation.scopes",
        ),
    ],
    ids=[
        "oidc-without-issuer",
        "preset-without-domain",
        "domain-with-a-path",
        "domain-with-a-port",
        "http-off-loopback",
        "issuer-with-query",
        "scopes-without-openid",
    ],
)
def test_bad_federation_is_refused_at_load_naming_the_key(
    tmp_path: Path, table: str, key: str
) -> None:
    """Everything the upstream login needs is checked at startup, naming the key at fault."""
    error = config_error(tmp_path, BASE + FEDERATION + table)
    assert_names(error, str(tmp_path / "oauthd.toml"), key)


def test_federation_without_client_id_is_refused_at_load(tmp_path: Path) -> None:
    """OIDC Core §3.1.2.1: client_id is REQUIRED at the upstream; a missing one is named."""
    text = BASE + "[federation]\nprovider = 'oidc'\nissuer = 'https://idp.example.com'\n"
    assert_names(
        config_error(tmp_path, text), str(tmp_path / "oauthd.toml"), "federation.client_id"
    )


@pytest.mark.parametrize("environ", [{}, {"UPSTREAM_SECRET": ""}], ids=["unset", "empty"])
async def test_startup_refuses_an_unset_upstream_secret_variable(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    """federation.client_secret_env names a variable that must hold the secret at startup."""
    text = (
        BASE
        + f"data_dir = '{tmp_path / 'data'}'\n"
        + FEDERATION
        + "provider = 'oidc'\nissuer = 'https://idp.example.com'\n"
        + "client_secret_env = 'UPSTREAM_SECRET'\n"
    )
    settings = load(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        await open_runtime(settings, environ=environ)
    assert_names(info.value, str(tmp_path / "oauthd.toml"), "federation.client_secret_env")
    assert "$UPSTREAM_SECRET is not set" in info.value.problem


# --- [branding] -----------------------------------------------------------------------------

LOGO = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0naHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmcnLz4="


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("product_name", "Acme Sign-in"),
        ("logo_url", LOGO),
        ("logo_url", "/brand/logo.svg"),
        ("logo_url", "http://127.0.0.1:8787/brand/logo.png"),
        ("accent_color", "#0B6E4F"),
        ("accent_color", "#c00"),
        ("accent_color_dark", "#ffd166"),
    ],
)
def test_branding_accepts_sensible_values(tmp_path: Path, key: str, value: str) -> None:
    """[branding] keys take names, same-origin or inlined logos and readable hex colours."""
    settings = load(tmp_path, BASE + f"[branding]\n{key} = '{value}'\n")
    assert getattr(settings.branding, key) == value


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("product_name", ""),
        ("product_name", "   "),
        ("product_name", "x" * 41),
        ("product_name", "Acme\\nSign-in"),
        ("logo_url", "https://cdn.example.com/logo.png"),
        ("logo_url", "//cdn.example.com/logo.png"),
        ("logo_url", "javascript:alert(1)"),
        ("logo_url", "data:text/html;base64,PGgxPg=="),
        ("logo_url", "data:image/png;base64," + "A" * 40_000),
        ("logo_url", '/logo.png" onerror="x'),
        ("accent_color", "blue"),
        ("accent_color", "#12345"),
        ("accent_color", "#fff"),
        ("accent_color_dark", "#20242a"),
        ("accent_color_dark", "rgb(1,2,3)"),
    ],
    ids=[
        "empty-name",
        "blank-name",
        "long-name",
        "control-in-name",
        "other-origin-logo",
        "scheme-relative-logo",
        "javascript-logo",
        "non-image-data",
        "huge-data",
        "quote-in-logo",
        "named-colour",
        "five-digits",
        "white-on-white",
        "dark-on-dark",
        "rgb-function",
    ],
)
def test_branding_rejects_what_pages_cannot_show_safely(
    tmp_path: Path, key: str, value: str
) -> None:
    """HTML-9: a logo from another origin, unreadable colours or a bad name stop startup."""
    text = BASE + f'[branding]\n{key} = "{value}"\n'.replace('" onerror="', '\\" onerror=\\"')
    assert_names(config_error(tmp_path, text), str(tmp_path / "oauthd.toml"), f"branding.{key}")


def test_branding_env_override(tmp_path: Path) -> None:
    """OAUTHD_BRANDING__PRODUCT_NAME overrides the product name like any other key."""
    settings = load(tmp_path, BASE, {"OAUTHD_BRANDING__PRODUCT_NAME": "Acme"})
    assert settings.branding.product_name == "Acme"


# --- rate limits and registration hygiene (RATE-*, REG-*) --------------------------------------


def test_rate_limit_table_keeps_the_default_for_a_key_left_out(tmp_path: Path) -> None:
    """[limits] rates are tables; a key left out keeps that rate's own default."""
    settings = load(tmp_path, BASE + "[limits]\nregister_per_ip = { requests = 5 }\n")
    assert settings.limits.register_per_ip.requests == 5
    assert settings.limits.register_per_ip.window_s == 60.0


def test_rate_limit_env_override_reaches_a_nested_key(tmp_path: Path) -> None:
    environ = {"OAUTHD_LIMITS__TOKEN_PER_IP__WINDOW_S": "30"}
    settings = load(tmp_path, BASE, environ)
    assert settings.limits.token_per_ip.window_s == 30.0
    assert settings.limits.token_per_ip.requests == 300


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            "[limits]\nregister_per_ip = { requests = 0, window_s = 60 }\n",
            "limits.register_per_ip.requests",
        ),
        (
            "[limits]\ntoken_per_ip = { requests = 1e9, window_s = 60 }\n",
            "limits.token_per_ip.requests",
        ),
        (
            "[limits]\ntoken_per_ip = { requests = 2000000, window_s = 60 }\n",
            "limits.token_per_ip.requests",
        ),
        (
            "[limits]\nintrospect_per_client = { requests = 5, window_s = 0 }\n",
            "limits.introspect_per_client.window_s",
        ),
        (
            "[limits]\nlogin_failures_per_ip = { requests = 5, window_s = 0.5 }\n",
            "limits.login_failures_per_ip.window_s",
        ),
        (
            "[limits]\ndevice_code_failures = { requests = 5, window_s = 1e12 }\n",
            "limits.device_code_failures.window_s",
        ),
        (
            "[limits]\nclient_auth_failures = { requests = 5, window_s = nan }\n",
            "limits.client_auth_failures.window_s",
        ),
        ("[limits]\nregister_per_ip = { requests = 5, per = 60 }\n", "limits.register_per_ip.per"),
        ("[limits]\nregister_per_ip = 5\n", "limits.register_per_ip"),
        ("[limits]\nmax_tracked_keys = 10\n", "limits.max_tracked_keys"),
        ("[limits]\nmax_tracked_keys = 100000000000\n", "limits.max_tracked_keys"),
        ("[limits]\ntrusted_proxies = ['10.0.0.0/33']\n", "limits.trusted_proxies[0]"),
        ("[limits]\ntrusted_proxies = ['*']\n", "limits.trusted_proxies[0]"),
        ("[limits]\nmax_users = -1\n", "limits.max_users"),
        (
            "[limits]\ntenant_requests = { requests = 2000000, window_s = 1 }\n",
            "limits.tenant_requests.requests",
        ),
        ("[limits]\ntenant_queue_s = -1\n", "limits.tenant_queue_s"),
        ("[limits]\ntenant_queue_s = 600\n", "limits.tenant_queue_s"),
        ("[metrics]\nmax_tenant_labels = 0\n", "metrics.max_tenant_labels"),
        ("[metrics]\nmax_tenant_labels = 100000\n", "metrics.max_tenant_labels"),
        ("[registration]\nmax_clients = 0\n", "registration.max_clients"),
        ("[registration]\nmax_clients = 100000000\n", "registration.max_clients"),
        ("[registration]\nunused_ttl_s = 5\n", "registration.unused_ttl_s"),
        ("[registration]\nunused_ttl_s = 100000000\n", "registration.unused_ttl_s"),
        ("[registration]\nidle_ttl_s = 3600\n", "registration.idle_ttl_s"),
        ("[registration]\nidle_ttl_s = 1000000000\n", "registration.idle_ttl_s"),
        (
            "[registration]\ninitial_access_token_hashes = ['secret']\n",
            "registration.initial_access_token_hashes[0]",
        ),
    ],
)
def test_absurd_limits_and_lifetimes_are_refused_naming_the_key(
    tmp_path: Path, text: str, key: str
) -> None:
    """RATE-*, REG-*: a limit or lifetime nobody can mean stops startup with its key named."""
    path = write(tmp_path, BASE + text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert_names(info.value, str(path), key)


def test_client_lifetime_must_outlive_refresh_token_idle_time(tmp_path: Path) -> None:
    """A client deleted while its refresh tokens still work would strand its users."""
    text = BASE + "[tokens]\nrefresh_token_idle_s = 2592000\n[registration]\nidle_ttl_s = 1296000\n"
    error = config_error(tmp_path, text)
    assert error.key == "registration.idle_ttl_s"
    assert "refresh_token_idle_s" in str(error)


async def test_startup_refuses_an_unset_initial_access_token_variable(tmp_path: Path) -> None:
    """RFC 7591 §3: a closed deployment whose token variable is missing does not start open."""
    text = (
        BASE
        + f"data_dir = '{tmp_path / 'data'}'\n"
        + "[registration]\ninitial_access_token_env = 'OAUTHD_TEST_IAT'\n"
    )
    settings = load(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        await open_runtime(settings, environ={})
    assert info.value.key == "registration.initial_access_token_env"


def test_password_login_and_federation_are_alternatives(tmp_path: Path) -> None:
    """A server offers one way to sign in: password_login with [federation] is refused."""
    path = tmp_path / "both.toml"
    path.write_text(
        'issuer = "https://auth.example.com"\npassword_login = true\n[federation]\n'
        'provider = "okta"\ndomain = "example.okta.com"\nclient_id = "x"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="password_login"):
        load_settings(path, {})


def test_rfc7591_s2_1_configured_service_client_gets_no_response_types(tmp_path: Path) -> None:
    """RFC 7591 §2.1: a configured client whose grants need no authorization endpoint is
    stored with response_types [] (not the code default); one with authorization_code gets code."""
    from oauthd.server import configured_clients
    from oauthd.settings import ClientSettings, settings_for_tests

    settings = settings_for_tests(
        issuer="http://127.0.0.1:8787",
        data_dir=tmp_path,
        clients=(
            ClientSettings(
                "svc",
                token_endpoint_auth_method="client_secret_basic",
                grant_types=("client_credentials",),
                client_secret_env="SVC_SECRET",
            ),
            ClientSettings("web", ("http://127.0.0.1/cb",), "none"),
        ),
    )
    svc, web = configured_clients(settings, {"SVC_SECRET": "s3cret-for-tests"}, 0)
    assert (svc.response_types, json.loads(svc.metadata)["response_types"]) == ((), [])
    assert web.response_types == ("code",)
