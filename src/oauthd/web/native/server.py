"""The native engine's server: listening sockets, the accept loop, ASGI lifespan, shutdown.

    serve_native()
    ├── Lifespan          the app's startup before the first accept, its shutdown after the last
    └── connections       one task per connection (connection.py), at most `max_connections`:
                          past it the accept loop waits for one to close (the kernel's backlog
                          holds the next), so a flood slows accepting and crashes nothing

Shutdown, when `shutdown()` returns (SIGTERM, or a worker's supervisor gone): stop accepting,
close the listening sockets, close idle keep-alive connections at once, let requests in flight
finish (their responses say `Connection: close`) within `graceful_timeout_s`, then cancel what
is left, then the app's lifespan shutdown.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from oauthd.web.access_log import ASGIApp, Message
from oauthd.web.native.connection import Connection, Limits
from oauthd.web.native.exchange import ASGI

__all__ = ["open_listeners", "serve_native"]

log = logging.getLogger("oauthd.http")

# accept() failing for want of resources: wait and retry, as trio.serve_listeners does
CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
CAPACITY_PAUSE_S = 0.1


async def open_listeners(host: str, port: int, listen_fd: int | None) -> list[trio.SocketListener]:
    """Bind `host:port` (IPv4 or IPv6; a name: each of its addresses), or take the listening
    socket inherited from the `--workers` supervisor as file descriptor `listen_fd`."""
    if listen_fd is not None:
        sock = trio.socket.from_stdlib_socket(socket.socket(fileno=os.dup(listen_fd)))
        return [trio.SocketListener(sock)]
    return await trio.open_tcp_listeners(port, host=host)


def bind_url(listener: trio.SocketListener) -> str:
    host, port = listener.socket.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Lifespan:
    """ASGI lifespan (startup and shutdown events), for apps that speak it. An app that raises
    on the lifespan scope, or answers it with anything but the lifespan events, does not
    speak it and is served without; its lifespan task never outlives the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.to_app, self._app_inbox = trio.open_memory_channel[Message](2)
        self._app_outbox, self.from_app = trio.open_memory_channel[Message](2)
        self.supported = True
        self.scope = trio.CancelScope()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The app's lifespan task; reports started once the app has started up."""
        with self.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._app)
                await self.to_app.send({"type": "lifespan.startup"})
                reply = await self._reply()
                if reply["type"] == "lifespan.startup.failed":
                    raise RuntimeError(f"the app failed to start: {reply.get('message', '')}")
                if reply["type"] != "lifespan.startup.complete":
                    self.supported = False
                    nursery.cancel_scope.cancel()
                task_status.started()

    async def _app(self) -> None:
        async with self._app_outbox:
            try:
                scope = {"type": "lifespan", "asgi": ASGI, "state": {}}
                await self.app(scope, self._app_inbox.receive, self._app_outbox.send)
            except Exception:
                log.debug("the app does not support the ASGI lifespan", exc_info=True)

    async def _reply(self) -> Message:
        try:
            return await self.from_app.receive()
        except trio.EndOfChannel:
            return {"type": "lifespan.unsupported"}

    async def shutdown(self) -> None:
        if self.supported:
            await self.to_app.send({"type": "lifespan.shutdown"})
            reply = await self._reply()
            if reply["type"] == "lifespan.shutdown.failed":
                log.error("the app failed to shut down: %s", reply.get("message", ""))
        self.scope.cancel()


class NativeServer:
    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self.connections: set[Connection] = set()
        self.slots = trio.Semaphore(limits.max_connections)

    async def accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            await self.slots.acquire()  # at max_connections: wait for one to close
            try:
                stream = await listener.accept()
            except OSError as exc:
                self.slots.release()
                if exc.errno not in CAPACITY_ERRNOS:
                    raise
                log.warning("accept failed (%s); pausing", errno.errorcode.get(exc.errno or 0))
                await trio.sleep(CAPACITY_PAUSE_S)
                continue
            except BaseException:
                self.slots.release()
                raise
            nursery.start_soon(self.serve_connection, stream)

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        connection = None
        try:
            connection = Connection(stream, self.app, self.limits)
            self.connections.add(connection)
            await connection.run()
        except OSError:  # the peer was gone before we looked at it
            await stream.aclose()
        except Exception:
            log.exception("a connection failed")
        finally:
            if connection is not None:
                self.connections.discard(connection)
            self.slots.release()

    def drain(self) -> None:
        for connection in list(self.connections):
            connection.drain()


async def serve_native(
    app: ASGIApp,
    limits: Limits,
    listeners: list[trio.SocketListener],
    shutdown: Callable[[], Awaitable[Any]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on `listeners` until `shutdown` returns; report the bound URLs when ready."""
    server = NativeServer(app, limits)
    lifespan = Lifespan(app)
    async with trio.open_nursery() as outer:
        await outer.start(lifespan.run)
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(server.accept, listener, connections)
                task_status.started([bind_url(listener) for listener in listeners])
                await shutdown()
                accepting.cancel_scope.cancel()
            for listener in listeners:
                await listener.aclose()
            server.drain()
            connections.cancel_scope.deadline = trio.current_time() + limits.graceful_timeout_s
        await lifespan.shutdown()
