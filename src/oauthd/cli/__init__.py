"""The `oauthd` command: serve | check-config | keys list|rotate | gc, and the admin commands
clients add|list|show|remove, users add|list|remove, grants list|revoke (cli/admin.py), and
tenants add|list|show|update|disable|enable|remove (cli/tenants.py), and the data dir's
backup | restore | check-data (cli/data.py), and `migrate` from a data dir into
PostgreSQL (cli/migrate.py).
Exit codes: 0 ok, 1 not found, 2 usage or configuration error."""

from __future__ import annotations

import argparse
import errno
import json
import sys
import time
from collections.abc import Awaitable, Sequence
from functools import partial

import trio

from oauthd.actors import KeyInfo
from oauthd.actors.janitor import collect_once
from oauthd.actors.tenant_admin import key_json
from oauthd.cli import admin, data, migrate, tenants
from oauthd.cli.command import Command, config_option, on_runtime, tenant_option
from oauthd.errors import ConfigError, NotFound
from oauthd.logs import flush_logs, setup_logging
from oauthd.server import (
    TENANT,
    Runtime,
    WorkerRole,
    check_storage,
    configured_clients,
    load_admin_tokens,
    load_initial_access_tokens,
    load_kek,
    load_metrics_token,
    load_upstream_secret,
    serve_process,
)
from oauthd.settings import MAX_WORKERS, Settings, load_settings, split_listen
from oauthd.workers import supervise, worker_argv

__all__ = ["main"]


def parser() -> argparse.ArgumentParser:
    config = config_option()
    p = argparse.ArgumentParser(prog="oauthd", description="OAuth 2.1 authorization server")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", parents=[config], help="serve HTTP until SIGINT/SIGTERM")
    s.add_argument("--listen", help="host:port, overriding the file's listen")
    s.add_argument(
        "--workers",
        type=worker_count,
        help="worker processes serving one socket and one data dir, overriding the file's workers",
    )
    s.add_argument("--worker", help=argparse.SUPPRESS)  # set by the supervisor (workers.py)
    s.set_defaults(run=serve_command)
    c = sub.add_parser(
        "check-config", parents=[config], help="validate a configuration file without serving"
    )
    c.set_defaults(run=check_config)
    k = sub.add_parser("keys", help="signing keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    tenant = tenant_option()
    tenant.add_argument("--json", action="store_true", help="print JSON (the admin API's shape)")
    kl = ksub.add_parser("list", parents=[config, tenant], help="list keys and their states")
    kl.set_defaults(run=on_runtime(list_keys))
    kr = ksub.add_parser("rotate", parents=[config, tenant], help="start a new signing key")
    kr.add_argument(
        "--immediate",
        action="store_true",
        help="sign with the new key now instead of after keys.publish_ahead_s",
    )
    kr.set_defaults(run=on_runtime(rotate_keys))
    admin.add_parsers(sub, config)
    tenants.add_parsers(sub, config)
    data.add_parsers(sub, config)
    migrate.add_parser(sub, config)
    g = sub.add_parser(
        "gc", parents=[config], help="delete expired rows and deleted clients' shards now"
    )
    g.set_defaults(run=on_runtime(gc_command))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    args.argv = argv  # `serve --workers N` starts each worker with the same arguments
    run: Command = args.run
    try:
        return run(load_settings(args.config), args)
    except (ConfigError, OSError, BaseExceptionGroup) as exc:
        problem = startup_problem(exc)
        if problem is None:
            raise
        print(f"oauthd: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        flush_logs()  # the audit lines of what the command did


def serve_command(settings: Settings, args: argparse.Namespace) -> int:
    setup_logging(settings.log)
    check_listen_option(args.listen)
    if args.worker is not None:
        trio.run(partial(serve_process, settings, worker=parse_worker_role(args.worker)))
        return 0
    count = settings.workers if args.workers is None else args.workers
    if count > 1:
        listen = settings.listen if args.listen is None else args.listen
        return trio.run(supervise, settings, worker_argv(args.argv), count, listen)
    trio.run(partial(serve_process, settings, listen=args.listen))
    return 0


def worker_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WORKERS}, got {text!r}")
    return int(text)


def parse_worker_role(text: str) -> WorkerRole:
    index, listen_fd, ready_fd, lifeline_fd, admin_fd = (int(part) for part in text.split(","))
    return WorkerRole(index, listen_fd, ready_fd, lifeline_fd, admin_fd)


def startup_problem(exc: BaseException) -> str | None:
    """A configuration error or an unusable address, however deep in exception groups the
    nurseries put it: said in one line instead of a traceback."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            problem = startup_problem(inner)
            if problem is not None:
                return problem
        return None
    if isinstance(exc, ConfigError):
        return f"configuration error: {exc}"
    if isinstance(exc, OSError) and exc.errno in (
        errno.EADDRINUSE,
        errno.EADDRNOTAVAIL,
        errno.EACCES,
    ):
        return f"cannot listen: {exc.strerror}"
    return None


def check_listen_option(listen: str | None) -> None:
    """`--listen` is checked like the file's `listen`: a clear message, not a traceback."""
    if listen is None:
        return
    try:
        split_listen(listen)
    except ValueError as exc:
        raise ConfigError("command line", "--listen", str(exc)) from None


def check_config(settings: Settings, args: argparse.Namespace) -> int:
    """Loads what serving would load and looks at the storage (PostgreSQL: connects once,
    writes nothing), then says so; no logging is set up, so the lines printed are the whole
    answer."""
    import os

    configured_clients(settings, os.environ, 0)
    load_kek(settings, os.environ)
    load_upstream_secret(settings, os.environ)
    load_metrics_token(settings, os.environ)
    load_admin_tokens(settings, os.environ)
    load_initial_access_tokens(settings, os.environ)
    login = "dev" if settings.dev_mode else "password" if settings.password_login else "none"
    if not settings.dev_mode and settings.federation.enabled:
        login = f"federation via {settings.federation.upstream_issuer}"
    storage = check_storage(settings, os.environ)
    print(f"{settings.source}: ok (issuer {settings.issuer}, login: {login})")
    print(storage)
    return 0


async def list_keys(runtime: Runtime, args: argparse.Namespace) -> int:
    """Works beside a running server: the shard's write lock orders both."""
    return await show_keys(args, tenants.admin_of(runtime).keys(args.tenant))


async def rotate_keys(runtime: Runtime, args: argparse.Namespace) -> int:
    operation = tenants.admin_of(runtime).rotate_keys(args.tenant, immediate=args.immediate)
    return await show_keys(args, operation)


async def show_keys(args: argparse.Namespace, operation: Awaitable[list[KeyInfo]]) -> int:
    try:
        infos = await operation
    except NotFound:
        return admin.not_found(f"no tenant {args.tenant!r}")
    if args.json:
        print(json.dumps([key_json(info) for info in infos], indent=2))
    else:
        print_keys(infos)
    return 0


def print_keys(infos: list[KeyInfo]) -> None:
    def when(t: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t))

    print(f"{'kid':<45} {'alg':<6} {'state':<10} {'signs from':<21} {'retires':<21} removed")
    for k in infos:
        mark = "*" if k.signing else " "
        print(
            f"{k.kid:<44}{mark} {k.alg:<6} {k.state:<10} {when(k.activate_at):<21} "
            f"{when(k.retire_at):<21} {when(k.remove_at)}"
        )


async def gc_command(runtime: Runtime, args: argparse.Namespace) -> int:
    """One janitor pass, beside a running server or not: the same actors and SQLite locks."""
    report = await collect_once(runtime.system, runtime.env, TENANT)
    for kind, count in sorted(report.counts.items()):
        print(f"{kind:<16} {count}")
    print(f"{'shards':<16} {report.shards}")
    print(f"{'shards removed':<16} {len(report.removed)}")
    return 1 if report.failed else 0
