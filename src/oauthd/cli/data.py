"""`oauthd backup | restore | check-data`: operating the data dir of `--config` (README
"Operations"; the work is in storage/backup.py and storage/check.py).

`backup` runs beside a server with any number of workers: it reads each shard in one read
transaction and takes no write lock. `restore` writes a data dir only where there is none.
`check-data` reads everything and changes nothing unless `--repair` is given.
Exit codes: 0 ok, 1 a shard could not be backed up or a problem remains, 2 usage,
configuration, or a backup that cannot be restored."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from oauthd.actors.janitor import STRAY_AFTER_S
from oauthd.settings import Settings
from oauthd.storage.backup import BackupError, backup_data_dir, restore_data_dir
from oauthd.storage.check import CheckOptions, check_data_dir

__all__ = ["add_parsers"]

OK, PROBLEMS, USAGE = 0, 1, 2
Command = Callable[[Settings, argparse.Namespace], int]
BACKUP_NICE = 10  # a background job: requests keep their share of a shared core


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], config: argparse.ArgumentParser
) -> None:
    b = sub.add_parser(
        "backup", parents=[config], help="copy every shard into DIR (online, while serving)"
    )
    b.add_argument("--to", required=True, type=Path, help="backup directory (kept between runs)")
    b.add_argument(
        "--full", action="store_true", help="copy every shard, not only those changed since"
    )
    b.add_argument(
        "--nice",
        type=int,
        default=BACKUP_NICE,
        choices=range(20),
        metavar="N",
        help=f"lower this process's CPU priority by N first (0-19, default {BACKUP_NICE})",
    )
    b.set_defaults(run=embedded_only("backup", backup_command))
    r = sub.add_parser("restore", parents=[config], help="restore a backup as the data dir")
    r.add_argument("--from", dest="source", required=True, type=Path, help="backup directory")
    r.set_defaults(run=embedded_only("restore", restore_command))
    c = sub.add_parser("check-data", parents=[config], help="check every shard and the layout")
    c.add_argument("--quick", action="store_true", help="quick_check instead of integrity_check")
    c.add_argument(
        "--repair",
        action="store_true",
        help="remove orphan client shards and migrate old schemas (nothing else)",
    )
    c.set_defaults(run=embedded_only("check-data", check_command))


def embedded_only(name: str, command: Command) -> Command:
    """These commands work on the SQLite files of the data dir: with PostgreSQL holding the
    state there is nothing of it to copy or check there, so they refuse rather than report a
    backup or a check of nothing."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        if settings.storage.backend == "postgres":
            print(
                f"oauthd: {name} refused: it works on the SQLite data dir, and the state is in "
                "PostgreSQL ([storage] backend); use PostgreSQL's own tools (pg_dump, "
                "pg_basebackup, amcheck)",
                file=sys.stderr,
            )
            return USAGE
        return command(settings, args)

    return run


def backup_command(settings: Settings, args: argparse.Namespace) -> int:
    # The backup takes no write lock: what it costs the server is CPU. On a shared core at full
    # priority it raised the token p99 1.5-3.8x, at nice 10 within 2x (bench/README "Backup").
    os.nice(args.nice)
    try:
        report = backup_data_dir(settings.data_dir, args.to, full=args.full, between=os.sched_yield)
    except BackupError as exc:
        return refused("backup", exc)
    for path, why in sorted(report.failed.items()):
        print(f"failed {path}: {why}")
    if not settings.keys.encryption_key_env:
        print("note: keys.encryption_key_env is not set, so signing keys are unsealed on disk")
    print(report.summary())
    return PROBLEMS if report.failed else OK


def restore_command(settings: Settings, args: argparse.Namespace) -> int:
    try:
        report = restore_data_dir(args.source, settings.data_dir)
    except BackupError as exc:
        return refused("restore", exc)
    for path, why in sorted(report.failed.items()):
        print(f"not in the backup (it could not be copied): {path}: {why}")
    print(f"restored {report.shards} shards ({report.bytes / 1e6:.1f} MB) into {settings.data_dir}")
    return OK


def refused(command: str, exc: BackupError) -> int:
    print(f"oauthd: {command} refused: {exc}", file=sys.stderr)
    return USAGE


def check_command(settings: Settings, args: argparse.Namespace) -> int:
    options = CheckOptions(quick=args.quick, repair=args.repair, orphan_after_s=STRAY_AFTER_S)
    report = check_data_dir(settings.data_dir, options)
    for finding in report.findings:
        state = "repaired" if finding.repaired else finding.problem
        print(f"{state:<14} {finding.path}: {finding.problem}, {finding.detail}")
    unresolved = len(report.unresolved)
    print(f"check-data: {report.shards} shards, {len(report.findings)} findings, {unresolved} open")
    return PROBLEMS if unresolved else OK
