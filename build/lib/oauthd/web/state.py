"""What routes share: settings, the actor system, the keyring, and URL building."""

from __future__ import annotations

from dataclasses import dataclass, field

from oauthd.keys import KeyringHolder
from oauthd.metrics import Metrics
from oauthd.runtime import ActorSystem, Clock
from oauthd.settings import Settings

__all__ = ["AppState"]


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    system: ActorSystem
    keyring: KeyringHolder
    clock: Clock
    tenant: str = "default"
    # RFC 7591 §3: hashes of the initial access tokens /register accepts (empty: open)
    initial_access_tokens: frozenset[str] = frozenset()
    metrics: Metrics = field(default_factory=Metrics)  # the runtime's (Env.metrics)
    metrics_token: str = ""  # bearer token for /metrics; "" = loopback peers only

    def path(self, endpoint: str) -> str:
        """Endpoints live under the issuer's path, so `issuer + endpoint` resolves."""
        return self.settings.issuer_path + endpoint

    def url(self, endpoint: str) -> str:
        """Absolute URLs are built from the configured issuer, never from request headers."""
        return self.settings.issuer + endpoint
