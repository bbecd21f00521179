"""Online backup and restore of a data dir (`oauthd backup`, `oauthd restore`).

A backup directory holds `manifest.json` and `objects/<2 hex>/<sha256>.sqlite`, one object per
copied shard, named by the SHA-256 of its bytes. Each shard is copied with SQLite's online
backup API from a read-only connection: one read transaction, a consistent snapshot of the
shard's last commit, taken beside live writers (in WAL mode a reader blocks no writer, and this
one never checkpoints; the keys shard's rollback journal makes a rotation wait for its copy,
a few rows). A live WAL database is never copied as files. The copy is
`quick_check`ed and its rows counted before it is accepted; a shard that cannot be read is
reported and the backup goes on (its last good copy, if any, stays in the manifest). Copies are
byte images of the shards: signing keys sealed under `keys.encryption_key_env` stay sealed.

Incremental by default: a shard is copied again only if its change signature differs from the
one recorded at its last copy. The signature is read before the copy and covers every way a
commit reaches the files: the database file's inode, size, mtime and file change counter
(rollback-journal commits), and its -wal file's size, mtime and 32-byte header. A WAL commit
either appends frames (the -wal grows) or restarts the log (its header gets new salts), so a
commit after the signature was read always changes it, even within one tick of a coarse
mtime; a commit between the signature and the copy is in the copy and only costs a copy next
time. `full=True` copies every shard.

The manifest is written last, atomically, after one `sync` has put every copy on disk (one
flush instead of an fsync per shard): an interrupted backup leaves the previous one whole, and
objects no manifest names are removed afterwards. A shard's entry records its tenant, kind,
key, schema version, row counts, SHA-256 and size, so `restore` verifies every object first.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from oauthd.storage.inventory import ShardFile, open_read_only, schema_version, take_inventory

__all__ = [
    "BackupError",
    "BackupReport",
    "ManifestEntry",
    "RestoreReport",
    "backup_data_dir",
    "restore_data_dir",
]

FORMAT = 1
MANIFEST = "manifest.json"
OBJECTS = "objects"
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup that cannot be read or trusted, or a restore that must not proceed."""


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str  # relative to the data dir
    tenant: str
    kind: str
    key: str
    schema: int
    rows: dict[str, int]
    sha256: str
    bytes: int
    signature: str  # the source's change signature when it was copied (see the module docstring)

    @property
    def object(self) -> str:
        return f"{OBJECTS}/{self.sha256[:2]}/{self.sha256}.sqlite"


@dataclass(slots=True)
class BackupReport:
    shards: int = 0
    copied: int = 0
    unchanged: int = 0
    bytes_copied: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # path -> why
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.copied / self.seconds if self.seconds else 0.0
        mb_s = self.bytes_copied / 1e6 / self.seconds if self.seconds else 0.0
        return (
            f"backup: {self.shards} shards, {self.copied} copied, {self.unchanged} unchanged, "
            f"{len(self.failed)} failed; {self.bytes_copied / 1e6:.1f} MB in {self.seconds:.1f} s "
            f"({rate:.0f} shards/s, {mb_s:.1f} MB/s)"
        )


@dataclass(slots=True)
class RestoreReport:
    shards: int = 0
    bytes: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # shards the backup could not copy


# --- backup -----------------------------------------------------------------------------------


def backup_data_dir(
    data_dir: Path, to: Path, *, full: bool = False, between: Callable[[], None] = lambda: None
) -> BackupReport:
    """Back `data_dir` up into `to` (see the module docstring). `between` runs after each
    shard: the caller's chance to yield the CPU to the servers."""
    started = time.perf_counter()
    if not data_dir.is_dir():
        raise BackupError(f"there is no data dir at {data_dir}")
    if to.resolve().is_relative_to(data_dir.resolve()):
        raise BackupError(f"{to} is inside the data dir {data_dir}: back up somewhere else")
    to.mkdir(parents=True, exist_ok=True)
    report = BackupReport()
    previous = {} if full else {e.path: e for e in load_manifest(to, missing_ok=True)[0]}
    entries: list[ManifestEntry] = []
    for shard in take_inventory(data_dir).shards:
        report.shards += 1
        entry = _backup_shard(data_dir, to, shard, previous.get(shard.path), report)
        if entry is not None:
            entries.append(entry)
        between()
    os.sync()  # every copy on disk before a manifest names it: one flush, not one per shard
    _write_manifest(to, entries, report.failed)
    _remove_unnamed_objects(to, entries)
    report.seconds = time.perf_counter() - started
    return report


def _backup_shard(
    data_dir: Path, to: Path, shard: ShardFile, last: ManifestEntry | None, report: BackupReport
) -> ManifestEntry | None:
    source = data_dir / shard.path
    try:
        signature = change_signature(source)
        if last is not None and last.signature == signature and (to / last.object).is_file():
            report.unchanged += 1
            return last
        entry = _copy(source, to, shard, signature)
        entry = replace(entry, signature=_after_copy(signature, change_signature(source)))
    except (sqlite3.Error, OSError) as exc:
        report.failed[shard.path] = str(exc)
        return last
    report.copied += 1
    report.bytes_copied += entry.bytes
    return entry


def change_signature(path: Path) -> str:
    """What changes whenever a commit reaches `path` or its -wal (see the module docstring):
    `<database part>|<wal part>`."""
    db = path.stat()
    with path.open("rb") as f:
        counter = f.read(28)[24:28].hex()  # the file change counter (rollback-journal mode)
    wal = path.with_name(path.name + "-wal")
    try:
        with wal.open("rb") as f:
            stat = os.fstat(f.fileno())
            wal_part = f"{stat.st_size}:{stat.st_mtime_ns}:{f.read(32).hex()}"
    except FileNotFoundError:
        wal_part = "none"
    return f"{db.st_ino}:{db.st_size}:{db.st_mtime_ns}:{counter}|{wal_part}"


def _after_copy(before: str, after: str) -> str:
    """The signature to record for a copy: `before`, unless the only difference is the empty
    -wal that the copy's own read-only connection made for a shard that had none (no commit
    happened: a commit writes frames, or, closing, changes the database file)."""
    db_before, wal_before = before.split("|")
    db_after, wal_after = after.split("|")
    if db_before == db_after and wal_before == "none" and wal_after.startswith("0:"):
        return after
    return before


def _copy(source: Path, to: Path, shard: ShardFile, signature: str) -> ManifestEntry:
    scratch = to / OBJECTS / f".{secrets.token_hex(8)}.sqlite"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    try:
        with closing(open_read_only(source)) as src, closing(sqlite3.connect(scratch)) as dst:
            # The copy is a scratch file until the one sync before the manifest: no journal and
            # no fsync of its own (they were most of a copy's cost).
            dst.execute("PRAGMA journal_mode = OFF")
            dst.execute("PRAGMA synchronous = OFF")
            src.backup(dst)  # one step: a consistent snapshot under one read transaction
            check_copy(dst)
            rows = count_rows(dst)
            version = schema_version(dst)
        digest, size = file_digest(scratch)
        entry = ManifestEntry(
            shard.path, shard.tenant, shard.kind, shard.key, version, rows, digest, size, signature
        )
        target = to / entry.object
        target.parent.mkdir(exist_ok=True)
        os.replace(scratch, target)  # made durable all at once, before the manifest names it
        return entry
    finally:
        scratch.unlink(missing_ok=True)


def check_copy(conn: sqlite3.Connection) -> None:
    problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError("quick_check: " + "; ".join(problems[:5]))


def count_rows(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        n
        for (n,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}  # noqa: S608 (names from sqlite_master)


def file_digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _durable(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


# --- the manifest -----------------------------------------------------------------------------


def load_manifest(
    backup: Path, *, missing_ok: bool = False
) -> tuple[list[ManifestEntry], dict[str, str]]:
    """The entries and failed shards of the manifest in `backup`."""
    path = backup / MANIFEST
    if missing_ok and not path.exists():
        return [], {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != FORMAT:
            raise BackupError(f"{path}: unknown manifest format {document.get('format')!r}")
        entries = [ManifestEntry(**e) for e in document["shards"]]
        return entries, dict(document["failed"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path}: not a readable oauthd backup manifest ({exc})") from None


def _write_manifest(to: Path, entries: list[ManifestEntry], failed: dict[str, str]) -> None:
    document: dict[str, Any] = {
        "format": FORMAT,
        "created_at": int(time.time()),
        "shards": [asdict(e) for e in entries],
        "failed": failed,
    }
    scratch = to / f".{MANIFEST}.{secrets.token_hex(8)}"
    scratch.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
    _durable(scratch)
    os.replace(scratch, to / MANIFEST)


def _remove_unnamed_objects(to: Path, entries: list[ManifestEntry]) -> None:
    named = {to / e.object for e in entries}
    for path in (to / OBJECTS).glob("*/*.sqlite"):
        if path not in named:
            path.unlink()


# --- restore ----------------------------------------------------------------------------------


def restore_data_dir(backup: Path, data_dir: Path) -> RestoreReport:
    """Restore the backup in `backup` as `data_dir`, which must be empty or absent (a data dir
    in use or holding data is never overwritten). Every object is verified against the
    manifest before anything is written; the shards are assembled in a scratch directory
    beside `data_dir` and renamed into place at once."""
    entries, failed = load_manifest(backup)
    verify_objects(backup, entries)
    refuse_occupied(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = data_dir.with_name(f".{data_dir.name}.restoring-{secrets.token_hex(4)}")
    try:
        report = _assemble(backup, entries, scratch)
        report.failed = failed
        os.sync()  # every shard on disk before the data dir appears
        _move_into_place(scratch, data_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def verify_objects(backup: Path, entries: list[ManifestEntry]) -> None:
    problems = []
    for entry in entries:
        try:
            digest, _size = file_digest(backup / entry.object)
        except OSError as exc:
            problems.append(f"{entry.path}: {exc.strerror or exc}")
            continue
        if digest != entry.sha256:
            problems.append(f"{entry.path}: its copy's SHA-256 does not match the manifest")
    if problems:
        raise BackupError("backup damaged, nothing restored: " + "; ".join(problems[:10]))


def refuse_occupied(data_dir: Path) -> None:
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupError(
            f"{data_dir} is not empty: restore only into an empty or new data dir "
            f"(stop the server and move the old one aside)"
        )


def _assemble(backup: Path, entries: list[ManifestEntry], scratch: Path) -> RestoreReport:
    report = RestoreReport()
    for entry in entries:
        target = scratch / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(backup / entry.object, target)
        digest, size = file_digest(target)
        if digest != entry.sha256:
            raise BackupError(f"{entry.path}: the restored copy does not match the manifest")
        report.shards += 1
        report.bytes += size
    return report


def _move_into_place(scratch: Path, data_dir: Path) -> None:
    try:
        scratch.mkdir(exist_ok=True)  # an empty backup restores an empty data dir
        os.rename(scratch, data_dir)  # replaces an empty directory, never a non-empty one
    except OSError as exc:
        raise BackupError(f"{data_dir}: cannot restore into it ({exc.strerror})") from None
