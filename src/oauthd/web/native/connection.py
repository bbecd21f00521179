"""One HTTP/1.1 connection on one trio task: read a request, call the ASGI app inline with the
`receive` and `send` of an `Exchange` (exchange.py), write its response, and go round again
while the connection may be kept alive. No task or channel per request.

How each rule of RFC 9112 is kept here:
- Persistence (§9.3): HTTP/1.1 keeps the connection unless either side says `Connection:
  close`; HTTP/1.0 always closes after the response. A connection idle for `keep_alive_s`
  between requests is closed silently; one that does not finish its request line and headers
  within `header_timeout_s` (the first request: from accept) gets a 408 (slowloris).
- Pipelining (§9.3.2): requests are read and answered strictly in order, one at a time.
- A connection whose request body was not read to its end is closed after the response: what
  is left of it must never be read as the next request (§9.3, request smuggling).

The socket is read and written with the fewest passes through trio's scheduler (`receive`,
`write`): trio's `receive_some` takes two when it has to wait (the wait, then a checkpoint
after the read) and its `send_all` one more, plus one for the write lock, so a request with
its response cost four; here it costs one. A read still passes through the scheduler once,
waiting or not (so a connection whose client always has the next request ready cannot keep
the others waiting), and cannot lose what it read to a cancellation; a write that the socket
takes whole at once returns without a pass (the next read makes it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import trio

from oauthd.web.access_log import ASGIApp
from oauthd.web.native.exchange import Closing, Exchange, refusal_response
from oauthd.web.native.parser import Event, Head, Refusal, RequestParser

__all__ = ["Connection", "Limits"]

RECEIVE_SIZE = 65_536
LINGER_S = 2.0  # after a response to a request whose body was left unread, before closing
LINGER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The engine's limits and timeouts (settings `[server]`, `limits.max_body_bytes`, the
    app's own head limits, `graceful_timeout_s`: web/serving.py `native_limits`)."""

    keep_alive_s: float
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    max_body_bytes: int
    max_target: int
    max_headers: int
    graceful_timeout_s: float


class Connection:
    def __init__(self, stream: trio.SocketStream, app: ASGIApp, limits: Limits) -> None:
        self.stream = stream
        self.app = app
        self.limits = limits
        self.parser = RequestParser(limits.max_target, limits.max_headers)
        self.draining = False
        self.idle_scope: trio.CancelScope | None = None  # set while waiting between requests
        self.eof = False
        self.send_lock = trio.StrictFIFOLock()
        self.client = _address(stream.socket.getpeername())
        self.server = _address(stream.socket.getsockname())

    def drain(self) -> None:
        """Graceful shutdown: close now if idle, else after the response in progress."""
        self.draining = True
        if self.idle_scope is not None:
            self.idle_scope.cancel()

    async def run(self) -> None:
        linger = False
        try:
            first = True
            while not self.draining:
                event = await self.next_head(first)
                first = False
                if event is None:
                    return
                if isinstance(event, Refusal):
                    linger = True
                    await self.write(refusal_response(event.status, event.description))
                    return
                exchange = Exchange(self, event)
                await exchange.run()
                if not exchange.reusable():
                    linger = not exchange.request_done
                    return
        except (Closing, trio.BrokenResourceError, trio.ClosedResourceError):
            linger = False
        finally:
            await self.close(linger)

    async def next_head(self, first: bool) -> Head | Refusal | None:
        """The next request's head, a refusal, or None: the peer closed, or stayed idle."""
        header_clock = first  # the first request's head is timed from accept
        idle_s = self.limits.header_timeout_s if first else self.limits.keep_alive_s
        deadline = trio.current_time() + idle_s
        while True:
            event = self.parser.events.popleft() if self.parser.events else None
            if isinstance(event, Head | Refusal):
                return event
            if event is not None:  # body left over from a request the app did not read
                raise Closing
            if self.eof or self.parser.upgraded:
                return None
            if self.parser.in_head and not header_clock:
                deadline = trio.current_time() + self.limits.header_timeout_s
                header_clock = True
            data = None if self.parser.in_head else await self.arrived()
            if data is None:
                with trio.CancelScope(deadline=deadline) as scope:
                    if not self.parser.in_head:
                        self.idle_scope = scope
                        if self.draining:
                            scope.cancel()
                    data = await self.receive()
                self.idle_scope = None
                if scope.cancelled_caught:
                    if self.parser.in_head:
                        return Refusal(408, "the request headers took too long")
                    return None
            if not data:
                self.eof = True
                return None
            self.parser.feed(data)

    async def read_event(self, deadline: float) -> Event | None:
        """The next body event of the request being served; None on EOF or past `deadline`."""
        while not self.parser.events:
            if self.eof or self.parser.upgraded:
                return None
            with trio.move_on_at(deadline):
                data = await self.receive()
                if not data:
                    self.eof = True
                    return None
                self.parser.feed(data)
                continue
            return None
        return self.parser.events.popleft()

    async def wait_for_disconnect(self, exchange: Exchange) -> None:
        """The request is read; its app asks to hear when the client goes away (Quart does).
        Read on while nothing is queued (pipelined requests queue up), so a closed peer is
        seen; with a request queued, wait instead. Either way until the response ends."""
        with trio.CancelScope() as scope:
            exchange.listening = scope
            if exchange.response_done:
                scope.cancel()
            while not self.eof:
                if self.parser.events or self.parser.upgraded:
                    await trio.sleep_forever()
                data = await self.receive()
                if not data:
                    self.eof = True
                    break
                self.parser.feed(data)
        exchange.listening = None

    async def arrived(self) -> bytes | None:
        """Between requests: let the other connections' tasks run first, then read what has
        arrived meanwhile; None if nothing has (or the server is draining). On a busy server
        the client's next request is usually there by then, and is read without a deadline
        scope, registering the socket with epoll and waiting for it."""
        await trio.lowlevel.checkpoint()  # nothing read yet: a cancellation loses nothing
        if self.draining:
            return None
        try:
            return os.read(self.stream.socket.fileno(), RECEIVE_SIZE)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    async def receive(self) -> bytes:
        """Up to RECEIVE_SIZE bytes; b"" at EOF. One pass through the scheduler: the wait for
        the socket, or, with bytes already there, a checkpoint that no cancellation can
        interrupt once they are read (trio's own rule for its sockets)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                data = os.read(self.stream.socket.fileno(), RECEIVE_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.stream.socket)
                waited = True
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    async def write(self, data: bytes) -> None:
        """Send all of `data`, in order with any other write: at once when no other write is
        waiting and the socket takes it all, else the rest after the writes before it."""
        if not self.send_lock.locked():
            try:
                sent = os.write(self.stream.socket.fileno(), data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            if sent == len(data):
                return
            data = data[sent:]
        async with self.send_lock:
            await self.stream.send_all(data)

    async def close(self, linger: bool) -> None:
        """Close; after a response to an unread request, linger: half-close and discard what
        the client still sends for a moment, so the kernel does not reset the connection (and
        the response with it) over unread bytes."""
        try:
            if linger and not self.eof:
                await self.stream.send_eof()
                with trio.move_on_after(LINGER_S):
                    discarded = 0
                    while discarded < LINGER_BYTES:
                        data = await self.stream.receive_some(RECEIVE_SIZE)
                        if not data:
                            break
                        discarded += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await self.stream.aclose()


def _address(address: Any) -> tuple[str, int] | None:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None
