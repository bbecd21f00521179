"""Settings: frozen dataclasses loaded from one TOML file, with `OAUTHD_*` environment overrides.

Every key and its default is defined here, once; `config/production.example.toml` documents them
for operators. Loading is strict: an unknown key, a wrong type or an impossible value stops
startup with a `ConfigError` naming the file and the key. Environment overrides use the key path
in upper case with `__` between table and key: `OAUTHD_ISSUER`, `OAUTHD_TOKENS__CODE_TTL_S`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from oauthd.errors import ConfigError

__all__ = [
    "MAX_WORKERS",
    "ActorSettings",
    "BrandingSettings",
    "ClientMetadataSettings",
    "ClientQuota",
    "ClientSettings",
    "DevSettings",
    "DevUser",
    "FederationSettings",
    "JanitorSettings",
    "KeySettings",
    "LimitSettings",
    "LogSettings",
    "MetricsSettings",
    "Rate",
    "RegistrationSettings",
    "ResourceSettings",
    "SessionSettings",
    "Settings",
    "StorageSettings",
    "TokenSettings",
    "contrast_ratio",
    "is_loopback_host",
    "load_settings",
    "split_listen",
]

ENV_PREFIX = "OAUTHD_"
DAY_S = 86_400
# OIDC Core §3.1.3.7, Registration §2: the ID token algorithm by default (not a secret)
ID_TOKEN_ALG = "RS256"  # noqa: S105


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Lifetimes in seconds (docs/architecture.md "Tokens")."""

    access_token_ttl_s: int = 3600  # JWT access tokens (RFC 9068)
    id_token_ttl_s: int = 3600  # OIDC ID tokens
    refresh_token_ttl_s: int = 30 * DAY_S  # absolute lifetime of a refresh-token family
    refresh_token_idle_s: int = 14 * DAY_S  # a refresh token unused this long expires
    code_ttl_s: int = 60  # authorization codes; OAuth 2.1 §4.1.2 recommends at most 600
    device_code_ttl_s: int = 600  # RFC 8628 device codes
    # A rotated refresh token replayed this soon returns the same pair (a client retrying after
    # a lost response); later, replay revokes the family. Kept to a few seconds (REFRESH-2).
    refresh_grace_s: int = 5


@dataclass(frozen=True, slots=True)
class ResourceSettings:
    """An RFC 8707 resource (audience) this server issues tokens for."""

    uri: str
    scopes: tuple[str, ...] = ()
    # The client that is this resource server: it may introspect tokens whose audience is this
    # resource (RFC 7662 §2.1, §4). Empty: only a token's own client may introspect it.
    client_id: str = ""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """A client pre-registered in the configuration file."""

    client_id: str
    redirect_uris: tuple[str, ...] = ()
    token_endpoint_auth_method: Literal[
        "none", "client_secret_basic", "client_secret_post", "private_key_jwt"
    ] = "client_secret_basic"  # noqa: S105 (a method name, not a secret)
    client_name: str = ""
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    scope: str = ""
    first_party: bool = False  # first-party clients skip the consent page
    client_secret_env: str = ""  # name of the environment variable holding the secret
    jwks: str = ""  # private_key_jwt: the client's public JWK set, as a JSON string


@dataclass(frozen=True, slots=True)
class DevUser:
    email: str
    password: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class DevSettings:
    """Dev-mode login: users from this file, email + password."""

    users: tuple[DevUser, ...] = (DevUser("alice@example.com", "password", "Alice"),)
    allow_any_credentials: bool = False  # creates unknown users; never opens a known one


@dataclass(frozen=True, slots=True)
class FederationSettings:
    """Production login at an upstream OpenID Connect provider (docs/architecture.md,
    "Browser side"). `provider` picks how the upstream issuer is found: `oidc` takes `issuer`
    as it is; the presets build it from `domain` (see `upstream_issuer`). Empty `provider`: no
    federation."""

    provider: Literal["", "oidc", "workos", "auth0", "okta"] = ""
    issuer: str = ""  # oidc: the upstream issuer URL (its OIDC discovery document names it)
    domain: str = ""  # workos (AuthKit domain), auth0 (tenant domain), okta (org domain)
    okta_authorization_server: str = "default"  # okta: custom server id; "" = org server
    client_id: str = ""  # oauthd's client id at the upstream
    client_secret_env: str = ""  # env var with oauthd's client secret; "" = a public client
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    display_name: str = ""  # "Continue with <display_name>"; default from the provider
    login_ttl_s: int = 600  # a person has this long at the upstream before `state` expires
    timeout_s: float = 5.0  # every upstream HTTP call (discovery, keys, token) is bounded
    metadata_ttl_s: int = 3600  # upstream discovery document and JWKS are refetched after this

    @property
    def enabled(self) -> bool:
        return bool(self.provider)

    @property
    def upstream_issuer(self) -> str:
        """The issuer whose `/.well-known/openid-configuration` describes the upstream."""
        domain = self.domain.strip().removeprefix("https://").rstrip("/")
        if self.provider == "workos":
            return f"https://{domain}"  # AuthKit: https://<subdomain>.authkit.app
        if self.provider == "auth0":
            return f"https://{domain}/"  # Auth0 issuers end with a slash
        if self.provider == "okta":
            server = self.okta_authorization_server.strip("/")
            return f"https://{domain}/oauth2/{server}" if server else f"https://{domain}"
        return self.issuer

    @property
    def label(self) -> str:
        names = {"workos": "WorkOS", "auth0": "Auth0", "okta": "Okta"}
        if self.display_name:
            return self.display_name
        return (
            names.get(self.provider) or urlsplit(self.issuer).hostname or "your identity provider"
        )


@dataclass(frozen=True, slots=True)
class KeySettings:
    """Signing keys: published -> active -> retired -> gone (docs/architecture.md "Tokens")."""

    algorithm: Literal["ES256", "RS256", "EdDSA"] = "ES256"
    active_s: int = 90 * DAY_S  # how long a key signs before the next one takes over
    publish_ahead_s: int = DAY_S  # a new key is in the JWKS this long before it signs
    retain_s: int = 7 * DAY_S  # a retired key stays in the JWKS this long; >= token lifetimes
    rsa_bits: int = 2048
    reload_interval_s: float = 5.0  # how often a server notices keys changed by the CLI
    encryption_key_env: str = ""  # env var with a base64url 32-byte key-encryption key

    @property
    def signing_algorithms(self) -> tuple[str, ...]:
        """The algorithms with keys of their own: `algorithm` (access tokens) and RS256, which
        OIDC Discovery §3 requires for ID tokens (one line of keys when they are the same)."""
        return tuple(dict.fromkeys((self.algorithm, ID_TOKEN_ALG)))


@dataclass(frozen=True, slots=True)
class ActorSettings:
    """The actor kernel (docs/architecture.md "Actors")."""

    mailbox_size: int = 256  # a full mailbox answers 503 temporarily_unavailable
    idle_timeout_s: float = 300.0  # an actor idle this long is evicted (its shard closed)
    max_live: int = 1000  # LRU cap on live actors; bounds memory, not clients
    retry_after_s: int = 1  # Retry-After on a full mailbox


@dataclass(frozen=True, slots=True)
class StorageSettings:
    fsync: bool = False  # true: fsync every commit (power-loss durable; commits go to a thread)
    busy_timeout_ms: int = 5000  # wait this long for another process's write lock


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Browser sessions at the authorization server (login once, then consent only)."""

    ttl_s: int = 86_400  # a session lasts this long after login


@dataclass(frozen=True, slots=True)
class Rate:
    """`requests` per `window_s` seconds for one key (one IP, one client, one account): a burst
    of `requests` at once, then one more every `window_s / requests` (GCRA, `runtime.ratelimit`)."""

    requests: int
    window_s: float


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Request limits. Rate limits count per key (an IP, a client, an account), never in one
    bucket for everyone, and per process: N workers admit up to N times these rates."""

    max_body_bytes: int = 65_536  # request bodies over this answer 413
    register_per_ip: Rate = Rate(30, 60.0)  # POST /register (RATE-1); MCP clients register often
    token_per_ip: Rate = Rate(300, 60.0)  # POST /token, every request (RATE-6)
    # Failed client authentication (invalid_client) per client IP and client_id at /token,
    # /introspect, /revoke and /device_authorization: a client secret or assertion cannot be
    # guessed, and one address failing never refuses another (RATE-3, OAuth 2.1 §2.4.1).
    client_auth_failures: Rate = Rate(20, 300.0)
    introspect_per_client: Rate = Rate(600, 60.0)  # POST /introspect per client_id (RATE-6)
    login_failures_per_account: Rate = Rate(10, 900.0)  # wrong passwords, dev login (RATE-2)
    login_failures_per_ip: Rate = Rate(50, 900.0)  # the same, per client IP
    device_code_failures: Rate = Rate(10, 600.0)  # wrong user codes per IP and per browser
    max_tracked_keys: int = 100_000  # per limit; past it, the least recently seen key is dropped
    # Reverse proxies (CIDRs) whose X-Forwarded-For is believed: the client IP is the rightmost
    # address in it that is not one of these. Empty: the peer address, the header ignored.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RegistrationSettings:
    """Dynamic client registration (RFC 7591): how many clients, for how long, and who may
    register. Clients from the file, the CLI or metadata documents are not counted or expired."""

    max_clients: int = 10_000  # dynamically registered clients; past it /register answers 503
    unused_ttl_s: int = DAY_S  # a client never issued a token is deleted this long after
    idle_ttl_s: int = 90 * DAY_S  # a client issued no token for this long is deleted
    # RFC 7591 §3: when either is set, /register needs `Authorization: Bearer <token>`, one of
    # these tokens. Hashes: lowercase hex SHA-256 of each token. Env: a variable holding tokens
    # separated by commas.
    initial_access_token_hashes: tuple[str, ...] = ()
    initial_access_token_env: str = ""
    # Clients that registered themselves (RFC 7591) or describe themselves (metadata documents)
    # may use client_credentials: tokens with no person behind them, for any resource. Off, so
    # that open registration cannot mint them; clients from the file or the CLI always may.
    allow_client_credentials: bool = False

    @property
    def closed(self) -> bool:
        return bool(self.initial_access_token_hashes or self.initial_access_token_env)


@dataclass(frozen=True, slots=True)
class ClientMetadataSettings:
    """Client ID Metadata Documents: a client_id that is an https URL is fetched by the Fetcher
    (draft-ietf-oauth-client-id-metadata-document). Only public addresses are ever fetched."""

    enabled: bool = True  # advertise client_id_metadata_document_supported and fetch documents
    timeout_s: float = 5.0  # the whole fetch, connection to last byte
    max_bytes: int = 5120  # CIMD-00 §6.6 recommends at most 5 KB
    cache_default_s: int = 300  # reuse a document this long when it sends no max-age
    cache_min_s: int = 60  # a smaller max-age is raised to this (no-store is honoured)
    cache_max_s: int = DAY_S  # a larger max-age is lowered to this
    cache_entries: int = 1024  # documents kept in memory (LRU)
    # Outbound requests to one host for client ids not yet registered, and jwks_uri fetches; a
    # refetch of a registered client's document is not counted here, so made-up ids on a host
    # cannot spend the budget its real clients need.
    fetches_per_host_per_minute: int = 20
    fetches_per_client_per_minute: int = 6  # outbound requests for one client id (or jwks_uri)
    fetches_per_minute: int = 300  # outbound requests in all
    # Stale-while-error: a registered document client whose host cannot answer (or whose
    # refetch is refused) keeps working from its stored registration this long past its
    # document's cache lifetime; a document that is gone (404, 410) or invalid ends it at once.
    stale_if_error_s: int = DAY_S
    # A document client gets a shard: capped and expired like dynamic registrations
    # ([registration]), with numbers of its own. An expired one is fetched again on next use.
    max_clients: int = 10_000  # document clients; past it a new one answers 503
    unused_ttl_s: int = DAY_S  # a document client never issued a token is deleted this long after
    idle_ttl_s: int = 90 * DAY_S  # a document client issued no token for this long is deleted
    # Networks fetched although not public (tests; a private deployment's own client hosts).
    # Loopback, private, link-local and reserved addresses are refused unless listed here.
    allow_networks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JanitorSettings:
    """Deleting expired rows and deleted clients' shards (docs/architecture.md "Storage")."""

    interval_s: float = 3600.0  # a pass over every shard this often; `oauthd gc` runs one now


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    access_log: bool = True  # one line per request


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """GET /metrics in the Prometheus text format. Request counts per endpoint show the shape
    of the traffic (who logs in when, how many clients), so it is not public: without a token
    only loopback peers may scrape it; with `bearer_token_env` set, a peer presenting that
    token may (`Authorization: Bearer ...`), loopback or not."""

    enabled: bool = True  # false: /metrics answers 404
    bearer_token_env: str = ""  # env var holding the scrape token; "" = loopback peers only


@dataclass(frozen=True, slots=True)
class BrandingSettings:
    """What the pages a person sees say and look like (login, consent, device, logout, error).

    Pages load nothing from another origin (HTML-9, CSP `img-src 'self' data:`), so the logo
    is a `data:image/...` URL inlined into each page, or a URL on the issuer's own origin (an
    absolute path, or an absolute URL with the issuer's scheme, host and port) that a reverse
    proxy in front of oauthd serves. Colours are CSS hex colours that must stand out (3:1,
    WCAG 1.4.11) against the card they sit on; button text is black or white, whichever reads
    better on them."""

    product_name: str = "oauthd"  # page headers and titles; 1-40 characters
    logo_url: str = ""  # empty: no logo; else a data:image URL (<= 32 KB) or same-origin URL
    accent_color: str = "#2952cc"  # primary buttons and focus rings, light mode
    accent_color_dark: str = "#7b9cff"  # the same in dark mode (prefers-color-scheme: dark)


@dataclass(frozen=True, slots=True)
class Settings:
    issuer: str  # the only source of the issuer; no request header changes it
    data_dir: Path = Path("data")  # relative paths are relative to the working directory
    dev_mode: bool = False
    # Outside dev mode: email + password login for the local users (`oauthd users add`, argon2).
    # An alternative to [federation]: a server offers one way to sign in.
    password_login: bool = False
    listen: str = "127.0.0.1:8787"
    graceful_timeout_s: float = 10.0  # in-flight requests get this long at shutdown
    workers: int = 1  # processes serving one socket and one data dir (`oauthd serve --workers`)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    resources: tuple[ResourceSettings, ...] = ()
    clients: tuple[ClientSettings, ...] = ()
    dev: DevSettings = field(default_factory=DevSettings)
    federation: FederationSettings = field(default_factory=FederationSettings)
    keys: KeySettings = field(default_factory=KeySettings)
    actors: ActorSettings = field(default_factory=ActorSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    janitor: JanitorSettings = field(default_factory=JanitorSettings)
    client_metadata: ClientMetadataSettings = field(default_factory=ClientMetadataSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    branding: BrandingSettings = field(default_factory=BrandingSettings)
    source: str = "<defaults>"  # the file these settings came from, for messages

    @property
    def listen_host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def issuer_path(self) -> str:
        """The issuer's path ('' or '/t1'): endpoints and path-suffixed metadata live under it."""
        return urlsplit(self.issuer).path.rstrip("/")

    def client_quota(self, source: str) -> tuple[str, ClientQuota] | None:
        """The table whose cap and lifetimes apply to clients from `source`: clients that
        registered themselves (RFC 7591) or that a stranger's document made (CIMD). Clients
        from the file or the CLI are an operator's, neither capped nor expired: None."""
        quotas: dict[str, tuple[str, ClientQuota]] = {
            "dynamic": ("registration", self.registration),
            "document": ("client_metadata", self.client_metadata),
        }
        return quotas.get(source)


class ClientQuota(typing.Protocol):
    """How many self-registered clients of one kind, and for how long (`client_quota`)."""

    @property
    def max_clients(self) -> int: ...
    @property
    def unused_ttl_s(self) -> int: ...
    @property
    def idle_ttl_s(self) -> int: ...


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {listen!r}")
    return host.strip("[]"), int(port)


# --- loading -------------------------------------------------------------------------------


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, override from the environment, convert and check; raise ConfigError on any fault."""
    source = str(path)
    environ = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "(file)", "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(syntax)", str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "(file)", str(exc)) from None
    if "source" in raw:  # set by the loader, not a key of the file
        raise ConfigError(source, "source", "unknown key")
    used_env = apply_env_overrides(raw, environ, source)
    raw["source"] = source
    settings: Settings = convert(Settings, raw, source, "")
    check_unknown_env(settings, environ, used_env, source)
    for check in CHECKS:
        check(settings)
    return settings


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str], source: str) -> set[str]:
    """Put each OAUTHD_A__B=value into raw[a][b] as text; conversion parses it later."""
    used: set[str] = set()
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        target: type[Any] = Settings
        table = raw
        for i, part in enumerate(path):
            fields = {f.name: f for f in dataclasses.fields(target)}
            hint = _hints(target).get(part) if part in fields and part != "source" else None
            if hint is None:
                break
            if isinstance(hint, type) and dataclasses.is_dataclass(hint) and i < len(path) - 1:
                target = hint
                sub = table.setdefault(part, {})
                if not isinstance(sub, dict):
                    raise ConfigError(source, name, "overrides a key that is not a table")
                table = sub
                continue
            if i == len(path) - 1 and _is_scalar(hint):
                table[part] = EnvText(value)
                used.add(name)
            break
    return used


def check_unknown_env(
    settings: Settings, environ: Mapping[str, str], used: set[str], source: str
) -> None:
    """An OAUTHD_* variable that is neither an override nor a named secret is a typo."""
    named = {c.client_secret_env for c in settings.clients} | {
        settings.keys.encryption_key_env,
        settings.federation.client_secret_env,
        settings.metrics.bearer_token_env,
    }
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in used and name not in named:
            raise ConfigError(
                "environment", name, "unknown OAUTHD_ variable (use OAUTHD_TABLE__KEY)"
            )


class EnvText(str):
    """A value that came from an environment variable: text to be parsed as the key's type."""


def _is_scalar(hint: Any) -> bool:
    return hint in (str, int, float, bool, Path) or get_origin(hint) is Literal


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def convert(hint: Any, value: Any, source: str, key: str) -> Any:
    """Convert a TOML value to `hint`, naming `key` in any error."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _convert_dataclass(hint, value, source, key)
    origin = get_origin(hint)
    if origin is tuple:
        (item,) = get_args(hint)[:1]
        if isinstance(value, EnvText):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(source, key, f"expected an array, got {_kind(value)}")
        return tuple(convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(source, key, f"must be one of {choices}, got {value!r}")
        return str(value)
    if origin in (types.UnionType, typing.Union):
        raise TypeError(f"unions are not supported in settings: {key}")
    return _convert_scalar(hint, value, source, key)


def _convert_dataclass(cls: type[Any], value: Any, source: str, key: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(source, key or "(root)", f"expected a table, got {_kind(value)}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for name in value:
        if name not in names:
            where = f"{key}.{name}" if key else name
            raise ConfigError(source, where, "unknown key")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        where = f"{key}.{f.name}" if key else f.name
        default = f.default
        if f.name in value:
            given = value[f.name]
            if isinstance(given, dict) and dataclasses.is_dataclass(default):
                # A table whose default is a value (a Rate): keys left out keep that default.
                given = {**_members(default), **given}
            kwargs[f.name] = convert(hints[f.name], given, source, where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(source, where, "required key is missing")
    return cls(**kwargs)


def _members(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def _convert_scalar(hint: Any, value: Any, source: str, key: str) -> Any:
    if isinstance(value, EnvText):
        value = _parse_env(hint, value, source, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return str(value)
    elif hint is Path:
        if isinstance(value, str) and value:
            return Path(value)
    else:
        raise TypeError(f"unsupported settings type {hint!r} at {key}")
    raise ConfigError(source, key, f"expected {_name(hint)}, got {_kind(value)} {value!r}")


def _parse_env(hint: Any, value: str, source: str, key: str) -> Any:
    parsers: dict[Any, Callable[[str], Any]] = {
        bool: lambda v: {"true": True, "1": True, "false": False, "0": False}[v.lower()],
        int: int,
        float: float,
    }
    parse = parsers.get(hint)
    if parse is None:
        return str(value)
    try:
        return parse(value)
    except (KeyError, ValueError):
        raise ConfigError(source, key, f"expected {_name(hint)}, got {value!r}") from None


def _name(hint: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        hint, "a path"
    )


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


# --- checks: impossible values --------------------------------------------------------------


def check_issuer(s: Settings) -> None:
    """RFC 8414 §2: https URL, no query or fragment; http only for loopback outside dev mode."""
    parts = urlsplit(s.issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(s.source, "issuer", f"must be an absolute https URL, got {s.issuer!r}")
    if parts.query or parts.fragment or "#" in s.issuer or "?" in s.issuer:
        raise ConfigError(s.source, "issuer", "must not have a query or fragment (RFC 8414 §2)")
    if s.issuer.endswith("/"):
        raise ConfigError(s.source, "issuer", "must not end with '/' (clients compare bytes)")
    if parts.scheme == "http" and not s.dev_mode and not is_loopback_host(parts.hostname):
        raise ConfigError(s.source, "issuer", "must be https outside dev mode (OAuth 2.1 §1.5)")


def check_listen(s: Settings) -> None:
    try:
        split_listen(s.listen)
    except ValueError as exc:
        raise ConfigError(s.source, "listen", str(exc)) from None


def check_positive(s: Settings) -> None:
    sections: dict[str, Any] = {
        "tokens": s.tokens,
        "keys": s.keys,
        "actors": s.actors,
        "limits": s.limits,
        "registration": s.registration,
        "storage": s.storage,
        "sessions": s.sessions,
        "janitor": s.janitor,
        "federation": s.federation,
        "client_metadata": s.client_metadata,
    }
    for name, section in sections.items():
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if is_number and not (math.isfinite(value) and value > 0):  # TOML allows nan, inf
                raise ConfigError(s.source, f"{name}.{f.name}", f"must be positive, got {value}")
    if not (math.isfinite(s.graceful_timeout_s) and s.graceful_timeout_s >= 0):
        raise ConfigError(s.source, "graceful_timeout_s", "must be a finite, non-negative number")


MAX_WORKERS = 256  # far past any core count; a typo such as 1000 is caught


def check_workers(s: Settings) -> None:
    if not 1 <= s.workers <= MAX_WORKERS:
        raise ConfigError(s.source, "workers", f"must be 1 to {MAX_WORKERS}, got {s.workers}")


def check_key_schedule(s: Settings) -> None:
    """A retired key must outlive every token it signed (docs/architecture.md "Key rotation":
    a rotation never makes a valid token unverifiable)."""
    longest = max(s.tokens.access_token_ttl_s, s.tokens.id_token_ttl_s)
    if s.keys.retain_s < longest:
        raise ConfigError(
            s.source,
            "keys.retain_s",
            f"must be at least the longest token lifetime ({longest} s), got {s.keys.retain_s}",
        )
    if s.keys.algorithm == "RS256" and s.keys.rsa_bits < 2048:
        raise ConfigError(s.source, "keys.rsa_bits", "must be at least 2048 (RFC 7518 §3.3)")
    if s.tokens.refresh_token_idle_s > s.tokens.refresh_token_ttl_s:
        raise ConfigError(
            s.source,
            "tokens.refresh_token_idle_s",
            "must not exceed tokens.refresh_token_ttl_s",
        )
    if s.tokens.code_ttl_s > 600:
        raise ConfigError(s.source, "tokens.code_ttl_s", "must be at most 600 (OAuth 2.1 §4.1.2)")


def check_resources(s: Settings) -> None:
    """RFC 8707 §2: a resource is an absolute URI without a fragment."""
    seen: set[str] = set()
    for i, r in enumerate(s.resources):
        parts = urlsplit(r.uri)
        if not parts.scheme or not parts.netloc or parts.fragment or "#" in r.uri:
            raise ConfigError(
                s.source, f"resources[{i}].uri", f"must be an absolute URI, got {r.uri!r}"
            )
        if r.uri in seen:
            raise ConfigError(s.source, f"resources[{i}].uri", f"duplicate {r.uri!r}")
        seen.add(r.uri)


def check_clients(s: Settings) -> None:
    seen: set[str] = set()
    for i, c in enumerate(s.clients):
        if not c.client_id or c.client_id in seen:
            raise ConfigError(s.source, f"clients[{i}].client_id", "must be unique and not empty")
        seen.add(c.client_id)
        secret_based = c.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post")
        if secret_based and not c.client_secret_env:
            raise ConfigError(
                s.source,
                f"clients[{i}].client_secret_env",
                "a client_secret_* client needs the name of the variable holding its secret",
            )
        key_based = c.token_endpoint_auth_method == "private_key_jwt"  # noqa: S105 (a method)
        if key_based and not _is_jwks(c.jwks):
            raise ConfigError(
                s.source,
                f"clients[{i}].jwks",
                'a private_key_jwt client needs its JWK set: a JSON string {"keys": [...]}',
            )


def _is_jwks(text: str) -> bool:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("keys"), list)


def check_client_metadata(s: Settings) -> None:
    c = s.client_metadata
    for i, network in enumerate(c.allow_networks):
        try:
            ipaddress.ip_network(network)
        except ValueError:
            key = f"client_metadata.allow_networks[{i}]"
            raise ConfigError(s.source, key, f"not an IP network: {network!r}") from None
    if not c.cache_min_s <= c.cache_default_s <= c.cache_max_s:
        key = "client_metadata.cache_default_s"
        raise ConfigError(s.source, key, "must lie between cache_min_s and cache_max_s")


MAX_RATE_REQUESTS = 1_000_000
MAX_RATE_WINDOW_S = DAY_S
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def check_limits(s: Settings) -> None:
    """Rates an operator can mean: 1 to a million requests in 1 s to a day; bounded memory."""
    for f in dataclasses.fields(s.limits):
        rate = getattr(s.limits, f.name)
        if not isinstance(rate, Rate):
            continue
        if not 1 <= rate.requests <= MAX_RATE_REQUESTS:
            raise ConfigError(
                s.source,
                f"limits.{f.name}.requests",
                f"must be 1 to {MAX_RATE_REQUESTS}, got {rate.requests}",
            )
        if not (math.isfinite(rate.window_s) and 1 <= rate.window_s <= MAX_RATE_WINDOW_S):
            raise ConfigError(
                s.source,
                f"limits.{f.name}.window_s",
                f"must be 1 to {MAX_RATE_WINDOW_S} seconds, got {rate.window_s}",
            )
    if not 1_000 <= s.limits.max_tracked_keys <= 10_000_000:
        raise ConfigError(s.source, "limits.max_tracked_keys", "must be 1000 to 10000000")
    for i, network in enumerate(s.limits.trusted_proxies):
        try:
            ipaddress.ip_network(network)
        except ValueError:
            key = f"limits.trusted_proxies[{i}]"
            raise ConfigError(s.source, key, f"not an IP network: {network!r}") from None


def check_registration(s: Settings) -> None:
    """Lifetimes that cannot delete a client still holding live grants, and real hashes."""
    r = s.registration
    check_quota(s, "registration", r)
    check_quota(s, "client_metadata", s.client_metadata)  # the same rules for document clients
    for i, digest in enumerate(r.initial_access_token_hashes):
        if not SHA256_HEX.fullmatch(digest):
            raise ConfigError(
                s.source,
                f"registration.initial_access_token_hashes[{i}]",
                "must be the lowercase hex SHA-256 of a token (64 characters)",
            )


def check_quota(s: Settings, table: str, q: ClientQuota) -> None:
    if q.max_clients > 10_000_000:
        raise ConfigError(s.source, f"{table}.max_clients", "must be at most 10000000")
    if not 600 <= q.unused_ttl_s <= 365 * DAY_S:
        raise ConfigError(
            s.source, f"{table}.unused_ttl_s", f"must be 600 to {365 * DAY_S} seconds"
        )
    # Use renews a client at most once a day (to keep writes cheap), so a lifetime shorter
    # than a refresh token's idle time could delete a client whose tokens still work.
    floor = max(7 * DAY_S, s.tokens.refresh_token_idle_s)
    if not floor <= q.idle_ttl_s <= 10 * 365 * DAY_S:
        raise ConfigError(
            s.source,
            f"{table}.idle_ttl_s",
            f"must be {floor} (7 days, and at least tokens.refresh_token_idle_s) to "
            f"{10 * 365 * DAY_S} seconds, got {q.idle_ttl_s}",
        )


def check_dev(s: Settings) -> None:
    emails = [u.email.lower() for u in s.dev.users]
    for i, email in enumerate(emails):
        if "@" not in email or emails.index(email) != i:
            raise ConfigError(s.source, f"dev.users[{i}].email", "must be a unique email address")


def check_federation(s: Settings) -> None:
    """Everything the upstream login needs, named at startup rather than at the first login."""
    f = s.federation
    if not f.enabled:
        return
    if s.password_login:
        raise ConfigError(
            s.source, "password_login", "is an alternative to [federation]: choose one"
        )
    if f.provider == "oidc" and not f.issuer:
        raise ConfigError(s.source, "federation.issuer", "provider 'oidc' needs the issuer URL")
    if f.provider != "oidc":
        domain = f.domain.strip().removeprefix("https://").rstrip("/")
        if not domain or "/" in domain or "?" in domain or "#" in domain or ":" in domain:
            raise ConfigError(
                s.source,
                "federation.domain",
                f"provider {f.provider!r} needs a domain like example.okta.com, got {f.domain!r}",
            )
    parts = urlsplit(f.upstream_issuer)
    plain_loopback = parts.scheme == "http" and is_loopback_host(parts.hostname or "")
    if (
        not parts.hostname
        or parts.query
        or parts.fragment
        or (parts.scheme != "https" and not plain_loopback)
    ):
        raise ConfigError(
            s.source,
            "federation.issuer",
            f"must be an https URL (http only on loopback), got {f.upstream_issuer!r}",
        )
    if not f.client_id:
        raise ConfigError(s.source, "federation.client_id", "the client id at the upstream")
    if "openid" not in f.scopes:
        raise ConfigError(s.source, "federation.scopes", "must include 'openid'")
    if f.login_ttl_s > 3600:
        raise ConfigError(s.source, "federation.login_ttl_s", "must be at most 3600")
    if f.timeout_s > 60:
        raise ConfigError(s.source, "federation.timeout_s", "must be at most 60")


HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}")
MAX_PRODUCT_NAME = 40
MAX_LOGO_DATA = 32 * 1024  # inlined into every page
LIGHT_CARD, DARK_CARD = "#ffffff", "#1a1f26"  # the card colours of web/templates/style.css
MIN_CONTRAST = 3.0  # WCAG 2.2 §1.4.11: non-text contrast of buttons and focus rings


def _luminance(color: str) -> float:
    """WCAG 2.2 relative luminance of a #rgb or #rrggbb colour."""
    digits = color[1:] if len(color) == 7 else "".join(c * 2 for c in color[1:])
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2.2 contrast ratio of two hex colours, from 1 to 21."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def check_branding(s: Settings) -> None:
    b = s.branding
    name = b.product_name
    if not name.strip() or len(name) > MAX_PRODUCT_NAME or not name.isprintable():
        raise ConfigError(
            s.source,
            "branding.product_name",
            f"must be 1 to {MAX_PRODUCT_NAME} printable characters, got {name!r}",
        )
    for key, card in (("accent_color", LIGHT_CARD), ("accent_color_dark", DARK_CARD)):
        color = getattr(b, key)
        if not HEX_COLOR.fullmatch(color):
            raise ConfigError(
                s.source,
                f"branding.{key}",
                f"must be a CSS hex colour (#rgb or #rrggbb), got {color!r}",
            )
        if contrast_ratio(color, card) < MIN_CONTRAST:
            raise ConfigError(
                s.source,
                f"branding.{key}",
                f"{color} is too close to the card colour {card} (needs {MIN_CONTRAST}:1 contrast)",
            )
    if b.logo_url and not _is_own_logo(b.logo_url, s.issuer):
        raise ConfigError(
            s.source,
            "branding.logo_url",
            "must be empty, a base64 data:image URL of at most 32 KB, or a URL on the issuer's "
            "own origin (pages load nothing from another origin)",
        )


def _is_own_logo(url: str, issuer: str) -> bool:
    if url.startswith("data:"):
        return len(url) <= MAX_LOGO_DATA and DATA_IMAGE.fullmatch(url) is not None
    if any(c.isspace() or not c.isprintable() or c in "\\\"'<>" for c in url):
        return False
    if url.startswith("/"):
        return not url.startswith("//")
    parts, own = urlsplit(url), urlsplit(issuer)
    return (parts.scheme, parts.netloc) == (own.scheme, own.netloc) and parts.path.startswith("/")


CHECKS: tuple[Callable[[Settings], None], ...] = (
    check_issuer,
    check_listen,
    check_positive,
    check_workers,
    check_key_schedule,
    check_resources,
    check_clients,
    check_client_metadata,
    check_limits,
    check_registration,
    check_dev,
    check_federation,
    check_branding,
)


def settings_for_tests(**overrides: Any) -> Settings:
    """Defaults with overrides, checked like a loaded file (used by tests and benchmarks)."""
    settings = dataclasses.replace(
        Settings(issuer="http://127.0.0.1:8787", dev_mode=True, source="<test>"), **overrides
    )
    for check in CHECKS:
        check(settings)
    return settings
