"""The shape of the settings: one frozen dataclass per TOML table, every key with its
default and a comment saying what it means (`config/production.example.toml` documents the
same keys for operators). Loading is in `loader.py`, the checks of values in `checks.py`."""

from __future__ import annotations

import dataclasses
import ipaddress
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "DAY_S",
    "ID_TOKEN_ALG",
    "TENANT_TABLES",
    "ActorSettings",
    "AdminSettings",
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
    "ServerSettings",
    "SessionSettings",
    "Settings",
    "StorageSettings",
    "TokenSettings",
    "fields_of",
    "is_loopback_host",
    "split_listen",
]

DAY_S = 86_400

# The tables a tenant other than `default` sets for itself (docs/architecture.md "Tenants");
# every other key is server-wide and comes from the file.
TENANT_TABLES = (
    "tokens",
    "resources",
    "clients",
    "dev",
    "password_login",
    "federation",
    "branding",
    "limits",
    "registration",
    "client_metadata",
    "keys",
)
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
    # OIDC Registration §2: the algorithm of its ID tokens, one of keys.signing_algorithms;
    # empty: RS256, the default OpenID Connect gives
    id_token_signed_response_alg: str = ""


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
class ServerSettings:
    """The HTTP front (server-wide: set in the file, never per tenant). `native`: oauthd's own
    HTTP/1.1 server on trio + httptools, the fast default; `hypercorn`: Hypercorn's trio worker,
    for what it offers beyond (HTTP/2, TLS). The limits below are the native engine's; Hypercorn
    takes `keep_alive_s` and its own defaults for the rest."""

    engine: Literal["native", "hypercorn"] = "native"
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this
    header_timeout_s: float = 10.0  # request line + headers must arrive within this (else 408)
    body_timeout_s: float = 30.0  # a request body must arrive within this of its headers (408)
    max_connections: int = 1000  # open connections per process; past it accepting pauses


@dataclass(frozen=True, slots=True)
class StorageSettings:
    fsync: bool = False  # true: fsync every commit (power-loss durable; commits go to a thread)
    busy_timeout_ms: int = 5000  # wait this long for another process's write lock
    # Where state lives: "sqlite", files under data_dir (the default), or "postgres", one
    # database that any number of hosts share (README "Running on PostgreSQL").
    backend: Literal["sqlite", "postgres"] = "sqlite"
    dsn_env: str = ""  # the variable holding the PostgreSQL DSN (never the DSN in the file)


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
    # Quotas of the tenant whose settings these are (README "Quotas"). 0 (the default): none.
    # All requests to the tenant, in one budget; `requests = 0`: off. A request past it waits
    # for its turn up to `tenant_queue_s` (nginx's limit_req delay), else is refused with 429
    # before any route runs, when `tenant_queue_s` has passed; 0: refused at once.
    tenant_requests: Rate = Rate(0, 1.0)
    tenant_queue_s: float = 1.0
    max_users: int = 0  # users of the tenant; past it no new one is created (logins answer 503)
    max_tracked_keys: int = 100_000  # per limit; past it, the least recently seen key is dropped
    # Reverse proxies (CIDRs) whose X-Forwarded-For is believed: the client IP is the rightmost
    # address in it that is not one of these. Empty: the peer address, the header ignored. Their
    # last X-Forwarded-Host value names the host that chooses a host tenant (web/tenants.py).
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
    # Distinct values of the `tenant` label per process: `default`, then the first this many
    # other tenants served; every later one is counted under `_other` (oauthd.metrics).
    max_tenant_labels: int = 100


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """The tenant admin API (README "The admin API"): the operations of `oauthd tenants` and
    `oauthd keys` over HTTP, on a listener of its own, never on the public one. Server-wide:
    a tenant's settings cannot have it. Anyone who reaches it with a token owns every tenant,
    so keep it on loopback or a private network, or firewall it."""

    listen: str = ""  # host:port of the admin listener; "" = no admin API
    # The variable holding the admin bearer tokens, separated by commas (two while rotating:
    # add the new one, restart, move callers, drop the old one, restart). Each token at least
    # MIN_ADMIN_TOKEN characters. Required when `listen` is set.
    token_env: str = ""
    # Failed authentications per client IP; past it the API answers 429 with Retry-After.
    auth_failures: Rate = Rate(10, 60.0)

    @property
    def enabled(self) -> bool:
        return bool(self.listen)


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
    server: ServerSettings = field(default_factory=ServerSettings)
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
    admin: AdminSettings = field(default_factory=AdminSettings)
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


_FIELDS: dict[type[typing.Any], tuple[dataclasses.Field[typing.Any], ...]] = {}


def fields_of(cls: type[typing.Any]) -> tuple[dataclasses.Field[typing.Any], ...]:
    """`dataclasses.fields` of a settings class, once: it rebuilds its tuple on every call
    (~4 us), and a tenant's settings are converted and checked on its activation (some 15
    calls then)."""
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = dataclasses.fields(cls)
    return found
