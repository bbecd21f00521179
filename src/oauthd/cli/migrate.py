"""`oauthd migrate --from-data-dir DIR`: a SQLite data dir copied into the PostgreSQL of
`--config` (README "Running on PostgreSQL"; the work is in storage/transfer.py).

It prints, per table, the rows read from the data dir and the rows PostgreSQL holds for them
afterwards. A shard PostgreSQL already holds with other rows is a conflict: nothing at all is
written, unless `--replace`, which makes those shards' rows the data dir's. Run it with the
servers stopped (or not yet started): rows written meanwhile to the data dir are not copied.
Exit codes: 0 copied (or nothing to copy) and the counts agree, 1 a conflict or counts that
differ, 2 usage or configuration."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import trio

from oauthd.server import open_backend
from oauthd.settings import Settings
from oauthd.storage import SchemaError
from oauthd.storage.inventory import take_inventory
from oauthd.storage.transfer import Transfer, transfer_data_dir

__all__ = ["add_parser"]

OK, PROBLEMS, USAGE = 0, 1, 2


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], config: argparse.ArgumentParser
) -> None:
    m = sub.add_parser(
        "migrate",
        parents=[config],
        help="copy a SQLite data dir into the configuration's PostgreSQL",
    )
    m.add_argument(
        "--from-data-dir", dest="source", required=True, type=Path, help="the data dir to copy"
    )
    m.add_argument(
        "--replace",
        action="store_true",
        help="overwrite what PostgreSQL holds for shards where it differs from the data dir",
    )
    m.set_defaults(run=migrate_command)


def migrate_command(settings: Settings, args: argparse.Namespace) -> int:
    if settings.storage.backend != "postgres":
        return refused('the configuration\'s [storage] backend is not "postgres"')
    if not take_inventory(args.source).shards:
        return refused(f"{args.source} holds no oauthd data dir")
    try:
        report = trio.run(migrate, settings, args.source, args.replace)
    except SchemaError as exc:
        return refused(str(exc))
    return print_report(report)


async def migrate(settings: Settings, source: Path, replace: bool) -> Transfer:
    async with open_backend(settings, os.environ) as target:
        return await trio.to_thread.run_sync(
            lambda: transfer_data_dir(source, settings, target, replace=replace)
        )


def print_report(report: Transfer) -> int:
    for path in report.conflicts:
        print(f"conflict {path}: PostgreSQL holds other rows for it", file=sys.stderr)
    if report.conflicts:
        print(
            "oauthd: migrate refused: nothing written; --replace makes those shards' rows "
            "the data dir's",
            file=sys.stderr,
        )
        return PROBLEMS
    print(f"{'table':<16} {'read':>8} {'in PostgreSQL':>14}")
    for table in sorted(report.read.keys() | report.stored.keys()):
        print(f"{table:<16} {report.read[table]:>8} {report.stored[table]:>14}")
    copied, unchanged = len(report.copied), len(report.unchanged)
    print(f"shards: {copied} copied, {unchanged} already in PostgreSQL")
    if not report.verified:
        print("oauthd: migrate: the counts differ", file=sys.stderr)
        return PROBLEMS
    print("nothing changed" if not copied else "verified: every row is in PostgreSQL")
    return OK


def refused(why: str) -> int:
    print(f"oauthd: migrate refused: {why}", file=sys.stderr)
    return USAGE
