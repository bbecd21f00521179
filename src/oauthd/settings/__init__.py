"""Settings: frozen dataclasses loaded from one TOML file, with `OAUTHD_*` environment overrides.

Every key and its default is defined in `schema.py`, once; `config/production.example.toml`
documents them for operators. Loading (`loader.py`) is strict: an unknown key, a wrong type or
an impossible value (`checks.py`) stops startup with a `ConfigError` naming the file and the
key. Environment overrides use the key path in upper case with `__` between table and key:
`OAUTHD_ISSUER`, `OAUTHD_TOKENS__CODE_TTL_S`.
"""

from __future__ import annotations

from oauthd.settings.checks import MAX_WORKERS, contrast_ratio
from oauthd.settings.loader import (
    load_settings,
    load_tenant_settings,
    settings_for_tests,
)
from oauthd.settings.schema import (
    ID_TOKEN_ALG,
    TENANT_TABLES,
    ActorSettings,
    AdminSettings,
    BrandingSettings,
    ClientMetadataSettings,
    ClientQuota,
    ClientSettings,
    DevSettings,
    DevUser,
    FederationSettings,
    JanitorSettings,
    KeySettings,
    LimitSettings,
    LogSettings,
    MetricsSettings,
    Rate,
    RegistrationSettings,
    ResourceSettings,
    ServerSettings,
    SessionSettings,
    Settings,
    StorageSettings,
    TokenSettings,
    is_loopback_host,
    split_listen,
)

__all__ = [
    "ID_TOKEN_ALG",
    "MAX_WORKERS",
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
    "contrast_ratio",
    "is_loopback_host",
    "load_settings",
    "load_tenant_settings",
    "settings_for_tests",
    "split_listen",
]
