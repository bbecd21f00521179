"""The checks of values no type can rule out: an http issuer outside dev mode, a key retired
before the tokens it signed expire, a rate nobody can mean. Each `check_*` takes the whole
`Settings` and raises a `ConfigError` naming the key; `check_settings` runs them all, in
order, for a loaded file and for `settings_for_tests` alike, and `check_tenant_settings` those
that read what a tenant sets (its other keys are the file's, already checked)."""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import urlsplit

from oauthd.errors import ConfigError
from oauthd.settings.schema import (
    DAY_S,
    TENANT_TABLES,
    ClientQuota,
    Rate,
    Settings,
    fields_of,
    is_loopback_host,
    split_listen,
)

__all__ = [
    "CHECKS",
    "MAX_WORKERS",
    "POSITIVE_SECTIONS",
    "TENANT_CHECKS",
    "TENANT_SECTIONS",
    "check_settings",
    "check_tenant_settings",
    "contrast_ratio",
]


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


# Limits where 0 means "none" (a quota an operator has not set): zero passes the checks.
ZERO_IS_OFF = ("limits.max_users", "limits.tenant_requests", "limits.tenant_queue_s")
MAX_QUEUE_S = 60.0  # a request held longer than this has long been given up by its client


WILDCARD = {"0.0.0.0", "::"}  # noqa: S104  # addresses that listen on every interface


def check_admin(s: Settings) -> None:
    """The admin API's own listener: a host:port that is not the public one (whose app has no
    admin routes), and a variable for its tokens. Their length is checked where the variable
    is read (`server.load_admin_tokens`)."""
    a = s.admin
    check_rate(s, "admin.auth_failures", a.auth_failures)
    if not a.listen:
        return
    try:
        host, port = split_listen(a.listen)
    except ValueError as exc:
        raise ConfigError(s.source, "admin.listen", str(exc)) from None
    public_host, public_port = split_listen(s.listen)
    hosts_meet = host == public_host or WILDCARD & {host, public_host}
    if port == public_port and port != 0 and hosts_meet:
        raise ConfigError(
            s.source, "admin.listen", f"must not be the public listen address ({s.listen})"
        )
    if not a.token_env:
        raise ConfigError(s.source, "admin.token_env", "required when admin.listen is set")


# The sections whose numbers must be positive (a zero only where ZERO_IS_OFF). A tenant's
# settings check those among its own tables (TENANT_TABLES); the others are the file's, which
# a tenant takes as they are, checked when the file was loaded.
POSITIVE_SECTIONS = (
    "tokens",
    "keys",
    "actors",
    "limits",
    "registration",
    "storage",
    "sessions",
    "janitor",
    "federation",
    "client_metadata",
    "server",
)
TENANT_SECTIONS = tuple(name for name in POSITIVE_SECTIONS if name in TENANT_TABLES)


def check_positive(s: Settings) -> None:
    _check_positive(s, POSITIVE_SECTIONS)
    if not (math.isfinite(s.graceful_timeout_s) and s.graceful_timeout_s >= 0):
        raise ConfigError(s.source, "graceful_timeout_s", "must be a finite, non-negative number")


def check_tenant_positive(s: Settings) -> None:
    _check_positive(s, TENANT_SECTIONS)


def _check_positive(s: Settings, sections: tuple[str, ...]) -> None:
    for name in sections:
        section = getattr(s, name)
        for f in fields_of(type(section)):  # cached per class
            key = f.name
            value = getattr(section, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if value > 0 and math.isfinite(value):  # TOML allows nan and inf
                continue
            if value == 0 and f"{name}.{key}" in ZERO_IS_OFF:
                continue
            raise ConfigError(s.source, f"{name}.{key}", f"must be positive, got {value}")


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
    """RFC 8707 §2: a resource is an absolute URI without a fragment. The issuer and its
    /userinfo URL name oauthd's own resource (oauth/rfc8707_resources.py: granted with openid),
    so an entry for them would only be shadowed."""
    seen: set[str] = set()
    own = {_resource_key(s.issuer), _resource_key(s.issuer + "/userinfo")}
    for i, r in enumerate(s.resources):
        parts = urlsplit(r.uri)
        if not parts.scheme or not parts.netloc or parts.fragment or "#" in r.uri:
            raise ConfigError(
                s.source, f"resources[{i}].uri", f"must be an absolute URI, got {r.uri!r}"
            )
        if r.uri in seen:
            raise ConfigError(s.source, f"resources[{i}].uri", f"duplicate {r.uri!r}")
        if _resource_key(r.uri) in own:
            own_resource = "names oauthd's own resource, /userinfo, which needs no entry"
            raise ConfigError(s.source, f"resources[{i}].uri", own_resource)
        seen.add(r.uri)


def _resource_key(uri: str) -> str:
    """As resources are matched (RFC 8707 rules): scheme and host in any case, a root URL's
    lone "/" dropped."""
    parts = urlsplit(uri)
    path = "" if parts.path == "/" and not parts.query else parts.path
    rest = path + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{rest}"


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
        algorithms = s.keys.signing_algorithms
        if c.id_token_signed_response_alg and c.id_token_signed_response_alg not in algorithms:
            raise ConfigError(
                s.source,
                f"clients[{i}].id_token_signed_response_alg",
                f"must be one of {sorted(algorithms)} (the algorithms ID tokens are signed with)",
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


def check_rate(s: Settings, key: str, rate: Rate) -> None:
    if not 1 <= rate.requests <= MAX_RATE_REQUESTS:
        raise ConfigError(
            s.source, f"{key}.requests", f"must be 1 to {MAX_RATE_REQUESTS}, got {rate.requests}"
        )
    if not (math.isfinite(rate.window_s) and 1 <= rate.window_s <= MAX_RATE_WINDOW_S):
        raise ConfigError(
            s.source,
            f"{key}.window_s",
            f"must be 1 to {MAX_RATE_WINDOW_S} seconds, got {rate.window_s}",
        )


def check_limits(s: Settings) -> None:
    """Rates an operator can mean: 1 to a million requests in 1 s to a day; bounded memory."""
    for f in fields_of(type(s.limits)):
        rate = getattr(s.limits, f.name)
        if not isinstance(rate, Rate):
            continue
        if rate.requests == 0 and f"limits.{f.name}" in ZERO_IS_OFF:
            continue
        check_rate(s, f"limits.{f.name}", rate)
    if s.limits.tenant_queue_s > MAX_QUEUE_S:
        raise ConfigError(s.source, "limits.tenant_queue_s", f"must be 0 to {MAX_QUEUE_S:.0f}")
    if not 1_000 <= s.limits.max_tracked_keys <= 10_000_000:
        raise ConfigError(s.source, "limits.max_tracked_keys", "must be 1000 to 10000000")
    for i, network in enumerate(s.limits.trusted_proxies):
        try:
            ipaddress.ip_network(network)
        except ValueError:
            key = f"limits.trusted_proxies[{i}]"
            raise ConfigError(s.source, key, f"not an IP network: {network!r}") from None


MAX_TENANT_LABELS = 10_000  # each value multiplies the per-request series


def check_metrics(s: Settings) -> None:
    if not 1 <= s.metrics.max_tenant_labels <= MAX_TENANT_LABELS:
        raise ConfigError(
            s.source,
            "metrics.max_tenant_labels",
            f"must be 1 to {MAX_TENANT_LABELS}, got {s.metrics.max_tenant_labels}",
        )


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


@lru_cache(maxsize=256)  # a tenant's settings are checked on each activation: same colours
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


def check_storage(s: Settings) -> None:
    """The PostgreSQL backend needs the variable that holds its DSN (a secret, never in the
    file); whether it is set is checked when the server opens the database."""
    if s.storage.backend == "postgres" and not s.storage.dsn_env:
        raise ConfigError(s.source, "storage.dsn_env", "required when storage.backend is postgres")


CHECKS: tuple[Callable[[Settings], None], ...] = (
    check_issuer,
    check_listen,
    check_admin,
    check_storage,
    check_positive,
    check_workers,
    check_key_schedule,
    check_resources,
    check_clients,
    check_client_metadata,
    check_limits,
    check_metrics,
    check_registration,
    check_dev,
    check_federation,
    check_branding,
)


# A tenant's settings (settings/loader.py `load_tenant_settings`): the checks that read what a
# tenant sets, in the same order. The others read only the file's server-wide keys, which the
# tenant's settings take from the file as they are, checked when it was loaded.
TENANT_CHECKS: tuple[Callable[[Settings], None], ...] = tuple(
    check_tenant_positive if check is check_positive else check
    for check in CHECKS
    if check not in (check_listen, check_admin, check_storage, check_workers, check_metrics)
)


def check_settings(settings: Settings) -> None:
    """Every check, in order: the first fault found is the one named."""
    for check in CHECKS:
        check(settings)


def check_tenant_settings(settings: Settings) -> None:
    """`check_settings` for a tenant's settings over an already checked file's."""
    for check in TENANT_CHECKS:
        check(settings)
