"""A shard's WAL checkpoint in a thread of its own, off the event loop (issue 17).

SQLite checkpoints a WAL file in the COMMIT that takes it past `wal_autocheckpoint` pages:
every page copied back into the database file, the -wal fsynced before and the database
after (under `synchronous = NORMAL` the only fsyncs). A shard's actor commits on the event
loop, so on a hot shard that COMMIT stalled every request in flight: at 4,000 pages, 16 MB
written and two fsyncs, the token rows' p99 at half their peak rate went from ~10 to 69-144
ms (bench/README.md).

Here the writer's connection only appends: every `CHECK_EVERY` commits it reads how many of
the -wal's frames are not yet copied back, from the WAL-index header in the -shm file (its
`mxFrame` less the checkpoint's `nBackfill`: SQLite's documented file format,
https://www.sqlite.org/walformat.html §2.1; one `pread`), and past `CHECKPOINT_PAGES` a
thread opens a connection of its own and checkpoints in two steps:

- PASSIVE: the bulk of the copy and the -wal's fsync, without waiting for, or blocking, the
  writer or any reader. The writer goes on appending meanwhile, so this alone never brings
  the -wal to an end it could restart from: it would grow until SQLite's own checkpoint on
  the writer took it all, on the loop.
- FULL: what the writer appended meanwhile (a few hundred frames) and both fsyncs, with the
  shard's writes held: the thread asks the loop to hold them (`holds_writes`: the shard's
  next write message waits for `writes_may_go`, parked, on the loop) and the loop answers
  between two of its steps, so no write of this process is half done. A write of another
  process, or one running in a thread, is waited for by SQLite's busy handler.

Once FULL is done the -wal is all copied, and the shard's next write restarts it from its
start, which syncs its new header (SQLite's rule): that write runs in a thread. Nothing of a
checkpoint is left on the loop but a `pread` every `CHECK_EVERY` commits. SQLite's own
checkpoint stays on the writer, far above, for a thread that cannot keep up
(`WRITER_CHECKPOINT_PAGES`).

Durability is SQLite's either way: a checkpoint is crash-safe at any point, and the same
`synchronous` level governs the checkpointing connection's fsyncs. A shard is closed only once
its checkpoint is done, so its last close still checkpoints and deletes its -wal and -shm.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from oauthd.storage.sqlite import WAL_AUTOCHECKPOINT_PAGES

__all__ = ["CHECKPOINT_PAGES", "CHECK_EVERY", "WRITER_CHECKPOINT_PAGES", "BackgroundCheckpoint"]

log = logging.getLogger("oauthd.storage")

# A hot shard's -wal is checkpointed in the background past as many pages as a writer's
# would be (storage/sqlite.py: a page written by many commits is copied and synced once per
# 4,000 pages rather than at SQLite's default of 1,000).
CHECKPOINT_PAGES = WAL_AUTOCHECKPOINT_PAGES
# Commits between two looks at the -wal's size: a token's commit adds a few pages, so the
# -wal passes CHECKPOINT_PAGES by at most a few hundred, for a stat per 32 commits.
CHECK_EVERY = 32
# SQLite's own checkpoint on the writer, if the thread falls that far behind (a disk that
# cannot keep up): the -wal stays bounded.
WRITER_CHECKPOINT_PAGES = 4 * CHECKPOINT_PAGES
# The WAL-index header (walformat.html §2.1): mxFrame, the -wal's last valid frame, and the
# checkpoint's nBackfill, how many of them are in the database file; native byte order.
MX_FRAME = struct.Struct("=I")
MX_FRAME_AT = 16
BACKFILL_AT = 96
INDEX_HEADER_BYTES = 100
HOLD_POLL_S = 0.05  # the thread's look at `closing` while it waits for the loop to hold writes


class BackgroundCheckpoint:
    """The checkpoints of one open shard, run by a trio loop's actor: `committed` after each
    commit of its writer, `holds_writes` before each write (and `writes_may_go` when it did),
    `stop` before its writer's connection is closed."""

    def __init__(
        self, path: Path, synchronous: str, busy_s: float, token: trio.lowlevel.TrioToken
    ) -> None:
        self.path = path
        self.shm = path.with_name(path.name + "-shm")
        self.synchronous = synchronous
        self.busy_s = busy_s  # FULL's wait for a writer of another process
        self.token = token  # the loop the writer runs on
        self.commits = 0
        self.idle = threading.Event()  # no checkpoint of this shard is running
        self.idle.set()
        self.finishing: trio.Event | None = None  # (loop) set once FULL is done
        self.restart_next = False  # (loop) the next write restarts the -wal: in a thread
        self._held = threading.Event()  # (thread) the loop holds the shard's writes
        self.closing = False

    def committed(self) -> None:
        """After a commit of the shard's writer: start a checkpoint if the -wal is past due."""
        self.commits += 1
        if self.commits % CHECK_EVERY or not self.idle.is_set():
            return
        if self.pending_frames() >= CHECKPOINT_PAGES:
            self.idle.clear()
            trio.lowlevel.start_thread_soon(self.checkpoint, self._done)

    def holds_writes(self) -> bool:
        """(loop) Whether a write must go through `writes_may_go` first."""
        return self.finishing is not None or self.restart_next

    async def writes_may_go(self) -> bool:
        """(loop) Wait while FULL runs; True for the write that restarts the -wal, which then
        runs in a thread (its header's fsync)."""
        while self.finishing is not None:
            await self.finishing.wait()
        restart, self.restart_next = self.restart_next, False
        return restart

    def pending_frames(self) -> int:
        """Frames in the -wal not yet copied back (0 without a -shm: a rollback journal). Read
        without SQLite's locks, so it may be a moment old: it only times the next checkpoint."""
        try:
            fd = os.open(self.shm, os.O_RDONLY)
        except OSError:
            return 0
        try:
            header = os.pread(fd, INDEX_HEADER_BYTES, 0)
        finally:
            os.close(fd)
        if len(header) < INDEX_HEADER_BYTES:
            return 0
        (frames,) = MX_FRAME.unpack_from(header, MX_FRAME_AT)
        (backfilled,) = MX_FRAME.unpack_from(header, BACKFILL_AT)
        return max(0, int(frames) - int(backfilled))

    def checkpoint(self) -> None:
        """The two steps on a connection of their own (in a thread)."""
        conn = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=self.busy_s)
        try:
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            if self._hold_writes():
                try:
                    conn.execute("PRAGMA wal_checkpoint(FULL)").fetchall()
                finally:
                    self._on_loop(self._release_writes)
        finally:
            conn.close()  # never the last connection: the writer's is open (`stop`)

    def _hold_writes(self) -> bool:
        """(thread) Have the loop hold the shard's writes; False if the loop has ended or the
        shard is being closed (perhaps by the loop itself, which then cannot answer)."""
        self._held.clear()
        if self.closing or not self._on_loop(self._hold):
            return False
        while not self._held.wait(HOLD_POLL_S):
            if self.closing:
                return False
        return True

    def _hold(self) -> None:
        self.finishing = trio.Event()
        self._held.set()

    def _release_writes(self) -> None:
        finishing, self.finishing = self.finishing, None
        self.restart_next = True
        if finishing is not None:
            finishing.set()

    def _on_loop(self, callback: Callable[[], None]) -> bool:
        try:
            self.token.run_sync_soon(callback)
        except trio.RunFinishedError:
            return False
        return True

    def _done(self, outcome: Any) -> None:
        try:
            outcome.unwrap()
        except Exception as exc:  # e.g. the shard removed meanwhile: the next one will try
            log.warning("checkpoint of %s not done: %s", self.path, exc)
        finally:
            self.idle.set()

    def stop(self) -> None:
        """Before the writer's connection closes: no more FULL steps, and none running."""
        self.closing = True
        self.idle.wait()
