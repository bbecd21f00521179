"""`oauthd tenants add|list|show|update|disable|enable|remove`: the tenants beyond `default`,
beside a running server or without one (docs/architecture.md "Tenants").

Each command is an operation of `actors.tenant_admin.TenantAdmin`, the one the admin API calls
too: through the Registry actor, whose BEGIN IMMEDIATE transactions on
`<data_dir>/registry.sqlite` order it with every other writer; running servers see the change
within REGISTRY_POLL_S. `remove` first marks the tenant `removing` (every process answers
404 for it and stops its actors), waits REMOVE_GRACE_S for the servers to notice, then
deletes `<data_dir>/<tenant>/` and the row. Every command takes `--json` (the admin API's
shapes). Exit codes: 0 ok, 1 not found, 2 usage or configuration error (the message names the
faulty key)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable
from pathlib import Path

from oauthd.actors.registry import TenantRow
from oauthd.actors.tenant_admin import TenantAdmin, removal_json, tenant_json
from oauthd.cli.admin import NOT_FOUND, OK, not_found, print_table, when
from oauthd.cli.command import on_runtime
from oauthd.errors import ConfigError, NotFound, OAuthError
from oauthd.server import Runtime

__all__ = ["add_parsers", "admin_of"]


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], config: argparse.ArgumentParser
) -> None:
    tenants = sub.add_parser(
        "tenants", help="tenants beyond 'default' (issuers <root>/t/<id> or their own origin)"
    )
    tsub = tenants.add_subparsers(dest="tenants_command", required=True)
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON")
    add = tsub.add_parser("add", parents=[config, output], help="create a tenant, active")
    add.add_argument("tenant", help="id: [a-z0-9][a-z0-9-]{0,62}, not 'default'")
    add.add_argument(
        "--issuer", default="", help="<root issuer>/t/<id> (default), or an origin of its own"
    )
    add.add_argument("--settings", type=Path, help="TOML file of per-tenant tables")
    add.set_defaults(run=on_runtime(add_tenant))
    listing = tsub.add_parser("list", parents=[config, output], help="list tenants")
    listing.set_defaults(run=on_runtime(list_tenants))
    show = tsub.add_parser("show", parents=[config, output], help="show one tenant")
    show.add_argument("tenant")
    show.set_defaults(run=on_runtime(show_tenant))
    update = tsub.add_parser(
        "update", parents=[config, output], help="replace a tenant's settings or issuer"
    )
    update.add_argument("tenant")
    update.add_argument("--issuer", help='an origin of its own, or "" for <root issuer>/t/<id>')
    update.add_argument("--settings", type=Path, help="TOML file replacing the settings")
    update.set_defaults(run=on_runtime(update_tenant))
    for name, text, command in (
        ("disable", "answer 403 for the tenant, keeping its data", disable_tenant),
        ("enable", "serve a disabled tenant again", enable_tenant),
        ("remove", "stop the tenant and delete its directory", remove_tenant),
    ):
        p = tsub.add_parser(name, parents=[config, output], help=text)
        p.add_argument("tenant")
        p.set_defaults(run=on_runtime(command))


def read_settings(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "(file)", str(exc)) from None


def admin_of(runtime: Runtime) -> TenantAdmin:
    return TenantAdmin(runtime.system, runtime.env)


def report(row: TenantRow, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(tenant_json(row), indent=2))
        return OK
    for name, value in (
        ("tenant", row.tenant),
        ("issuer", row.issuer),
        ("state", row.state),
        ("created", when(row.created_at)),
        ("updated", when(row.updated_at)),
    ):
        print(f"{name:<8} {value}")
    if row.settings.strip():
        print("settings:")
        print(row.settings.rstrip())
    return OK


async def ask(args: argparse.Namespace, operation: Awaitable[TenantRow]) -> int:
    """One operation on a tenant; a refusal is a usage error naming the faulty key."""
    try:
        row = await operation
    except NotFound:
        return missing(args)
    except OAuthError as exc:
        raise ConfigError(
            "command line", f"tenants {args.tenants_command}", exc.description
        ) from None
    return report(row, args)


def missing(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({"error": "not_found", "tenant": args.tenant}))
        return NOT_FOUND
    return not_found(f"no tenant {args.tenant!r}")


async def add_tenant(runtime: Runtime, args: argparse.Namespace) -> int:
    text = read_settings(args.settings) or ""
    return await ask(args, admin_of(runtime).add(args.tenant, args.issuer, text))


async def update_tenant(runtime: Runtime, args: argparse.Namespace) -> int:
    operation = admin_of(runtime).update(args.tenant, args.issuer, read_settings(args.settings))
    return await ask(args, operation)


async def disable_tenant(runtime: Runtime, args: argparse.Namespace) -> int:
    return await ask(args, admin_of(runtime).disable(args.tenant))


async def enable_tenant(runtime: Runtime, args: argparse.Namespace) -> int:
    return await ask(args, admin_of(runtime).enable(args.tenant))


async def show_tenant(runtime: Runtime, args: argparse.Namespace) -> int:
    return await ask(args, admin_of(runtime).show(args.tenant))


async def list_tenants(runtime: Runtime, args: argparse.Namespace) -> int:
    rows = await admin_of(runtime).tenants()
    if args.json:
        print(json.dumps([tenant_json(row) for row in rows], indent=2))
        return OK
    print_table(
        ("tenant", "state", "issuer", "created"),
        [(r.tenant, r.state, r.issuer, when(r.created_at)) for r in rows],
    )
    return OK


async def remove_tenant(runtime: Runtime, args: argparse.Namespace) -> int:
    try:
        directory = await admin_of(runtime).remove(args.tenant)
    except NotFound:
        return missing(args)
    if args.json:
        print(json.dumps(removal_json(args.tenant, directory)))
    else:
        print(f"removed tenant {args.tenant} and {directory}")
    return OK
