"""`oauthd serve --workers N`: a small supervisor for N worker processes on one host.

    supervise()                      binds the listening socket once, then
    ├── worker 0   oauthd serve      the whole runtime (server.py) on the inherited socket,
    ├── worker 1   oauthd serve      plus the janitor in worker 0 only (`WorkerRole`)
    └── ...

The admin API (`[admin] listen`, web/admin.py) must exist once per deployment: the supervisor
binds its socket too and hands it to worker 0 only, so a restarted worker 0 takes it over and
connections made meanwhile wait in the socket's queue.

Why an inherited socket rather than SO_REUSEPORT: every worker accepts from the one queue the
supervisor bound, so a worker that dies or restarts loses no queued connection (with
SO_REUSEPORT the kernel drops the connections waiting in a closing socket's own queue), and the
address is taken once, by a process that never drops it.

Lifecycle. Worker 0 starts first and alone, so the first start of a data dir (the first signing
key, the configured clients, template shards) happens once; the others then start together.
Each worker reports readiness on a pipe once it serves; the supervisor logs one line when all
do. A worker that fails before its first readiness fails the start (its exit status becomes
the supervisor's: 2 for a configuration error it already explained on stderr). A worker that
dies later is restarted, with a backoff that grows while it keeps dying young. SIGTERM or
SIGINT stops all: each worker gets one SIGTERM and `graceful_timeout_s` (plus a margin) to
finish its in-flight requests, then SIGKILL; a second signal skips the wait. Workers run in
their own session, so a terminal's Ctrl-C reaches the supervisor only and each worker is
signalled exactly once. If the supervisor itself is killed, the workers see their lifeline
pipe close and shut down gracefully instead of serving on as orphans.

What is per process (README): actors and their caches, rate-limit windows, the Fetcher's and
the federation actor's HTTP caches. What orders state across processes is SQLite: every read
that decides a write runs inside the shard's BEGIN IMMEDIATE transaction (docs/architecture.md).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from oauthd.logs import flush_logs, flush_logs_every
from oauthd.settings import Settings, split_listen

__all__ = ["StartFailed", "bind_listener", "supervise", "worker_argv"]

log = logging.getLogger("oauthd.workers")

BACKLOG = 1024
STOP_MARGIN_S = 5.0  # past graceful_timeout_s: the actors close their shards after the HTTP drain
RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
HEALTHY_AFTER_S = 30.0  # a worker that served this long starts the backoff afresh


class StartFailed(Exception):
    """A worker exited before it served for the first time; `status` is its exit status."""

    def __init__(self, index: int, status: int) -> None:
        super().__init__(f"worker {index} exited with status {status} before serving")
        self.index = index
        self.status = status


def bind_listener(listen: str) -> socket.socket:
    """The one listening socket all workers accept from."""
    host, port = split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class Supervisor:
    argv: Sequence[str]  # `oauthd serve --config ...` as this process was started
    count: int
    listener: socket.socket
    graceful_timeout_s: float
    admin: socket.socket | None = None  # the admin API's listener, worker 0's alone
    lifeline_r: int = -1
    lifeline_w: int = -1
    live: dict[int, trio.Process] = field(default_factory=dict)
    stopping: bool = False

    def admin_fd(self, index: int) -> int:
        return self.admin.fileno() if self.admin is not None and index == 0 else -1

    def command(self, index: int, ready_w: int) -> list[str]:
        fds = (index, self.listener.fileno(), ready_w, self.lifeline_r, self.admin_fd(index))
        return [*self.argv, "--worker", ",".join(map(str, fds))]

    async def spawn(self, index: int) -> tuple[trio.Process, bool]:
        """Start worker `index`; return it once it serves (True) or has exited (False)."""
        ready_r, ready_w = os.pipe()
        admin = self.admin_fd(index)
        try:
            process = await trio.lowlevel.open_process(
                self.command(index, ready_w),
                pass_fds=(self.listener.fileno(), ready_w, self.lifeline_r)
                + ((admin,) if admin >= 0 else ()),
                start_new_session=True,  # signals come from us, once
            )
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)  # from here only the worker holds the write end
        self.live[index] = process
        async with trio.lowlevel.FdStream(ready_r) as ready:
            said = await ready.receive_some(1)  # b"" when it exited first
        return process, said == b"1"

    async def keep_running(self, index: int, *, task_status: trio.TaskStatus[None]) -> None:
        """Start worker `index`, report once it serves, restart it whenever it dies."""
        process, ready = await self.spawn(index)
        if not ready:
            raise StartFailed(index, await process.wait())
        task_status.started()
        failures = 0
        while True:
            started = time.monotonic()
            status = await process.wait()
            if self.stopping:
                return
            failures = 1 if time.monotonic() - started > HEALTHY_AFTER_S else failures + 1
            delay = min(RESTART_MIN_S * 2 ** (failures - 1), RESTART_MAX_S)
            log.warning(
                "worker %d (pid %d) exited with status %d; restarting in %.1f s",
                index,
                process.pid,
                status,
                delay,
            )
            await trio.sleep(delay)
            if self.stopping:  # a stop began during the backoff
                return
            process, ready = await self.spawn(index)
            if ready:
                log.info("worker %d restarted (pid %d)", index, process.pid)

    async def stop(self, hurry: trio.Event) -> None:
        """One SIGTERM each, the graceful time to finish, then SIGKILL for what is left;
        `hurry` (a second signal) ends the wait early."""
        self.stopping = True
        processes = list(self.live.values())
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        with trio.move_on_after(self.graceful_timeout_s + STOP_MARGIN_S) as waiting:

            async def all_exited() -> None:
                async with trio.open_nursery() as nursery:
                    for process in processes:
                        nursery.start_soon(process.wait)
                waiting.cancel()

            async def hurried() -> None:
                await hurry.wait()
                waiting.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(all_exited)
                nursery.start_soon(hurried)
        for process in processes:
            if process.returncode is None:
                log.warning("worker pid %d did not stop in time: killed", process.pid)
                process.kill()
        with trio.CancelScope(shield=True):
            for process in processes:
                await process.wait()


async def start_all(supervisor: Supervisor, nursery: trio.Nursery) -> None:
    """Worker 0 alone first (it makes what a fresh data dir needs), then the rest together."""
    await nursery.start(supervisor.keep_running, 0)
    async with trio.open_nursery() as starting:
        for index in range(1, supervisor.count):
            starting.start_soon(nursery.start, supervisor.keep_running, index)


async def supervise(settings: Settings, argv: Sequence[str], count: int, listen: str) -> int:
    """Serve with `count` workers until SIGTERM/SIGINT; returns the exit status."""
    started = time.perf_counter()
    listener = bind_listener(listen)
    try:
        admin = bind_listener(settings.admin.listen) if settings.admin.enabled else None
    except BaseException:
        listener.close()
        raise
    lifeline_r, lifeline_w = os.pipe()
    supervisor = Supervisor(argv, count, listener, settings.graceful_timeout_s, admin)
    supervisor.lifeline_r, supervisor.lifeline_w = lifeline_r, lifeline_w
    stop_now, hurry = trio.Event(), trio.Event()
    status = 0
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

            async def watch_signals() -> None:
                async for signum in signals:
                    log.info("received %s, stopping the workers", signal.Signals(signum).name)
                    (hurry if stop_now.is_set() else stop_now).set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_signals)
                nursery.start_soon(flush_logs_every)
                try:
                    with trio.CancelScope() as starting:
                        nursery.start_soon(_cancel_on, stop_now, starting)
                        await start_all(supervisor, nursery)
                        pids = ", ".join(str(p.pid) for p in supervisor.live.values())
                        log.info(
                            "oauthd serving %s at http://%s with %d workers (pids %s) in %.0f ms",
                            settings.issuer,
                            listen,
                            count,
                            pids,
                            (time.perf_counter() - started) * 1000,
                        )
                        await stop_now.wait()
                except* StartFailed as failed:
                    first = failed.exceptions[0]
                    assert isinstance(first, StartFailed)
                    log.error("%s; stopping", first)  # noqa: TRY400 (it said why on stderr)
                    status = first.status if first.status > 0 else 1
                with trio.CancelScope(shield=True):
                    await supervisor.stop(hurry)
                nursery.cancel_scope.cancel()
    finally:
        os.close(lifeline_w)  # any worker still alive sees EOF and stops
        os.close(lifeline_r)
        listener.close()
        if admin is not None:
            admin.close()
        flush_logs()
    return status


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def worker_argv(argv: Sequence[str]) -> list[str]:
    """How a worker is started: this interpreter, `-m oauthd`, the supervisor's own arguments
    without `--workers`."""
    args: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            args.append(arg)
    return [sys.executable, "-m", "oauthd", *args]
