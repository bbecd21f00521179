"""What a resource server tells `oauthd.resource`: who issues its tokens, who it is, what each
path needs, and how tokens are checked. Every default is documented here."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["Mode", "ResourceConfig"]

Mode = Literal["local", "introspection"]
PRM_WELL_KNOWN = "/.well-known/oauth-protected-resource"  # RFC 9728 §3
OFFLINE_ACCESS = "offline_access"  # a client asks the AS for it; no resource requires it


@dataclass(frozen=True, slots=True)
class ResourceConfig:
    """One protected resource.

    `scopes` maps a path prefix to the scopes every request under it needs; the longest prefix
    wins and "/" covers everything. `public_paths` are prefixes the middleware lets through
    without a token (its own metadata document is always public)."""

    issuer: str  # the oauthd issuer, byte for byte as its metadata says (RFC 8414 §3.3)
    resource: str  # this resource's identifier: the `aud` of its tokens (RFC 8707 §2, RFC 9728 §2)
    mode: Mode = "local"
    scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    public_paths: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()  # for the metadata; default: every scope in `scopes`
    # introspection mode: this resource server's own client at oauthd (client_secret_basic)
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    introspection_endpoint: str = ""  # default: `introspection_endpoint` of the AS metadata
    # local mode: the JWKS is used at most this long, then fetched again
    jwks_max_age_s: float = 300.0
    # local mode: fetches (an unknown kid, a failed fetch) happen at most once per this interval,
    # so a flood of tokens with made-up kids cannot hammer oauthd
    jwks_refetch_interval_s: float = 10.0
    # introspection mode: an active answer is reused this long (0: every request asks oauthd).
    # A revoked token stays usable here for at most this many seconds.
    introspection_cache_s: float = 0.0
    http_timeout_s: float = 5.0
    # Refuse tokens with no person behind them (client_credentials, where `sub` is the client's
    # own id, RFC 9068 §2.2) with 401 invalid_token: for APIs that act for a person.
    require_user: bool = False
    now: Callable[[], float] = time.time  # seconds since the epoch; injectable for tests

    def __post_init__(self) -> None:
        for name in ("issuer", "resource"):
            parts = urlsplit(getattr(self, name))
            if parts.scheme not in ("https", "http") or not parts.netloc:
                raise ValueError(f"{name} must be an absolute http(s) URL")
            if parts.query or parts.fragment:
                raise ValueError(f"{name} must have no query and no fragment")
        if self.mode not in ("local", "introspection"):
            raise ValueError("mode must be 'local' or 'introspection'")
        if self.mode == "introspection" and not (self.client_id and self.client_secret):
            raise ValueError("introspection mode needs client_id and client_secret")
        if any(not p.startswith("/") for p in (*self.scopes, *self.public_paths)):
            raise ValueError("paths in scopes and public_paths must start with '/'")

    @property
    def metadata_path(self) -> str:
        """RFC 9728 §3.1: the well-known segment goes between the host and the path."""
        path = urlsplit(self.resource).path
        return PRM_WELL_KNOWN + ("" if path == "/" else path)

    @property
    def metadata_url(self) -> str:
        parts = urlsplit(self.resource)
        return f"{parts.scheme}://{parts.netloc}{self.metadata_path}"

    def required_scopes(self, path: str) -> tuple[str, ...]:
        """The scopes of the longest prefix in `scopes` that covers `path`."""
        matches = [prefix for prefix in self.scopes if _covers(prefix, path)]
        return self.scopes[max(matches, key=len)] if matches else ()

    def is_public(self, path: str) -> bool:
        return any(_covers(prefix, path) for prefix in self.public_paths)

    def metadata(self) -> dict[str, object]:
        """RFC 9728 §2; bearer tokens in the header only (OAuth 2.1 §5.1)."""
        listed = self.scopes_supported or tuple(
            dict.fromkeys(s for scopes in self.scopes.values() for s in scopes)
        )
        return {
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": [s for s in listed if s != OFFLINE_ACCESS],
        }


def _covers(prefix: str, path: str) -> bool:
    base = prefix.rstrip("/")
    return not base or path == base or path.startswith(base + "/")
