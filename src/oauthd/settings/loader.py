"""Loading the settings: one TOML file, `OAUTHD_*` environment overrides on top, each value
converted to the type its dataclass field declares (`schema.py`), then every check of
`checks.py`. Strict: an unknown key or variable, or a value of the wrong type, is a
`ConfigError` naming the file (or the environment) and the key."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from oauthd.errors import ConfigError
from oauthd.settings.checks import check_settings, check_tenant_settings
from oauthd.settings.schema import TENANT_TABLES, Settings, fields_of

__all__ = [
    "ENV_PREFIX",
    "load_settings",
    "load_tenant_settings",
    "settings_for_tests",
]

ENV_PREFIX = "OAUTHD_"


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
    check_settings(settings)
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
            fields = {f.name: f for f in fields_of(target)}
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
        settings.admin.token_env,
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
    names = {f.name for f in fields_of(cls)}
    for name in value:
        if name not in names:
            where = f"{key}.{name}" if key else name
            raise ConfigError(source, where, "unknown key")
    return cls(**_convert_members(cls, value, source, key))


def _convert_members(
    cls: type[Any], value: dict[str, Any], source: str, key: str
) -> dict[str, Any]:
    """The members of `value` (a table of `cls`, its keys known) converted, by name; those it
    leaves out are not there (the class's defaults), a required one missing is an error."""
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields_of(cls):
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
    return kwargs


def _default(cls: type[Any], name: str) -> Any:
    """The default of `cls`'s member `name`, as `cls()` would make it."""
    f = cls.__dataclass_fields__[name]
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


def _members(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in fields_of(type(value))}


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


def settings_for_tests(**overrides: Any) -> Settings:
    """Defaults with overrides, checked like a loaded file (used by tests and benchmarks)."""
    settings = dataclasses.replace(
        Settings(issuer="http://127.0.0.1:8787", dev_mode=True, source="<test>"), **overrides
    )
    check_settings(settings)
    return settings


TENANT_KEYS_KEYS = ("algorithm",)  # [keys]: the schedule and the key-encryption key are the file's
SERVER_WIDE_LIMITS = ("max_body_bytes", "max_tracked_keys", "trusted_proxies")


@cache
def _tenant_defaults() -> dict[str, Any]:
    """Each tenant table's schema default, made once: the tables are frozen (tuples and frozen
    dataclasses), so every tenant that leaves one out shares its default."""
    return {name: _default(Settings, name) for name in TENANT_TABLES}


@cache
def _file_keys() -> frozenset[str]:
    return frozenset(f.name for f in fields_of(Settings)) - {"source"}


def load_tenant_settings(root: Settings, issuer: str, text: str, source: str) -> Settings:
    """A tenant's settings: the per-tenant tables of `text` (TOML, the file's shape), schema
    defaults for those it leaves out, and the server-wide keys of `root` (the file, already
    checked). Checked like the file, but for the checks of server-wide keys alone; a
    server-wide or unknown key is a ConfigError naming it."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(syntax)", str(exc)) from None
    for name in raw:
        if name not in TENANT_TABLES:
            why = "server-wide: set in the file, not per tenant" if name in _file_keys() else None
            raise ConfigError(source, name, why or "unknown key")
    for table, allowed in (("keys", TENANT_KEYS_KEYS), ("limits", None)):
        given = raw.get(table, {})
        for key in given if isinstance(given, dict) else ():
            if (allowed is not None and key not in allowed) or key in SERVER_WIDE_LIMITS:
                raise ConfigError(
                    source, f"{table}.{key}", "server-wide: set in the file, not per tenant"
                )
    # Only the tenant's tables are converted (no whole `Settings` of defaults made for them):
    # the rest comes from `root`, already converted and checked.
    own = _convert_members(Settings, {**raw, "issuer": issuer}, source, "")
    tables = {name: own.get(name, default) for name, default in _tenant_defaults().items()}
    tables["keys"] = dataclasses.replace(root.keys, algorithm=tables["keys"].algorithm)
    tables["limits"] = dataclasses.replace(
        tables["limits"], **{key: getattr(root.limits, key) for key in SERVER_WIDE_LIMITS}
    )
    settings = dataclasses.replace(root, issuer=issuer, source=source, **tables)
    check_tenant_settings(settings)
    return settings
