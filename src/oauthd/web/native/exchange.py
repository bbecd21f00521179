"""One request and its response on a connection (connection.py): the ASGI scope, the app's
`receive` and `send`, and the framing of what it sends (RFC 9112 §6).

- Bodies (§6): httptools decodes `Content-Length` and chunked bodies; the app is handed each
  piece as it asks for it (flow control: nothing is read ahead for an app that does not ask).
  `Expect: 100-continue` (RFC 9110 §10.1.1) is answered when the app first asks for the body.
  A body that does not arrive within `body_timeout_s` of the head ends the request: the app's
  next `receive` is `http.disconnect`, and the client gets a 408 if the app sent nothing. Past
  `max_body_bytes` (the app's own limit) the app is given no more body: its own limit answers
  413 (a declared `Content-Length` over it unread, as on any engine); an app that asks on
  anyway waits for its answer, then gets `http.disconnect`, and the client a 413.
- Completion: a response with `Content-Length` is complete with its last byte (§6.3), even if
  the app stops before its closing empty `more_body=False` piece (Quart's can be cancelled).
- Responses (§6.1, §6.3): the app's `Content-Length` frames the body; without one, a body sent
  in one piece gets one, a streamed one (`more_body`) is chunked (HTTP/1.0: ends with the
  connection). HEAD and 1xx/204/304 responses carry no body. A `Date` header is added (RFC
  9110 §6.6.1), no `Server` header.
- Failures: an app that raises before its response starts gets the client a 500; after, the
  connection is closed (the client sees an incomplete response, never a traceback). The
  traceback goes to the `oauthd.http` log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import trio

from oauthd.web.access_log import Message
from oauthd.web.native.parser import END, Head, Refusal
from oauthd.web.security_headers import EVERY_RESPONSE

if TYPE_CHECKING:
    from oauthd.web.native.connection import Connection

__all__ = ["ASGI", "Closing", "Exchange", "refusal_response"]

log = logging.getLogger("oauthd.http")

NO_BODY_STATUS = frozenset({204, 304})
# Response headers the engine writes itself, whatever the app sent (framing, persistence).
_FRAMING = frozenset({b"content-length", b"connection", b"transfer-encoding", b"date", b"server"})
ASGI = {"version": "3.0", "spec_version": "2.3"}
# Rendered header blocks remembered by the headers they came from (`_rendered`): the API's and
# the documents' responses repeat a few sets. Past the bound the memory starts over; headers
# that carry secrets (a session cookie, a redirect with a code) are never remembered.
HEADS_REMEMBERED = 256
_NOT_REMEMBERED = frozenset({b"set-cookie", b"location"})
_heads: dict[tuple[tuple[bytes, bytes], ...], tuple[bytes, int, bool]] = {}


class _DateHeader:
    """`Date` (RFC 9110 §6.6.1), formatted once a second."""

    def __init__(self) -> None:
        self.second = 0
        self.value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = formatdate(now, usegmt=True).encode("ascii")
        return self.value


date_header = _DateHeader()
_REASONS = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


def status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))


def refusal_response(status: int, description: str) -> bytes:
    """The engine's own answer (a malformed or refused request, an app that failed): a JSON
    OAuth error (ERR-1), and the connection closes."""
    error = "server_error" if status == 500 else "invalid_request"
    body = json.dumps({"error": error, "error_description": description}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"cache-control", b"no-store"),
        *EVERY_RESPONSE,
        (b"connection", b"close"),
        (b"date", date_header()),
    ]
    return status_line(status) + b"".join(b"%s: %s\r\n" % h for h in headers) + b"\r\n" + body


class Closing(Exception):
    """The connection ends now (the peer went away, or a response could not be completed)."""


class Exchange:
    """One request and its response: the ASGI scope, `receive` and `send`."""

    def __init__(self, connection: Connection, head: Head) -> None:
        self.connection = connection
        self.head = head
        self.keep_alive = head.keep_alive and not connection.draining
        self.request_done = False
        self.body_received = 0
        self.body_deadline = trio.current_time() + connection.limits.body_timeout_s
        self.expect_continue = head.expect_continue
        self.failure: Refusal | None = None  # the request ended badly: what to answer
        self.response_started = False
        self.response_done = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_pending = False  # the response head, held to be written with its first body
        self.length_left = -1  # bytes of a declared Content-Length still to send; -1: none
        self.chunked = False
        self.listening: trio.CancelScope | None = None  # an app task waiting for disconnect

    def scope(self) -> dict[str, Any]:
        target = self.head.target
        if not target.startswith(b"/"):
            target = _origin_form(target)
        raw_path, _, query = target.partition(b"?")
        return {
            "type": "http",
            "asgi": ASGI,
            "http_version": self.head.http_version,
            "method": self.head.method,
            "scheme": "http",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": self.head.headers,
            "client": self.connection.client,
            "server": self.connection.server,
        }

    async def run(self) -> None:
        connection = self.connection
        try:
            scope = self.scope()
        except ValueError:
            self.keep_alive = False
            await connection.write(refusal_response(400, "malformed request target"))
            self.response_done = True
            return
        try:
            await connection.app(scope, self.receive, self.send)
        except Exception as exc:
            if _peer_gone(exc):
                raise Closing from None
            log.exception("the app failed on %s %s", self.head.method, scope["path"])
            await self.fail(500, "internal error")
            return
        if not self.response_done:
            failure = self.failure
            if failure is None:
                log.error(
                    "the app sent no complete response to %s %s", self.head.method, scope["path"]
                )
                failure = Refusal(500, "internal error")
            await self.fail(failure.status, failure.description)

    async def fail(self, status: int, description: str) -> None:
        """Answer the engine's own error if nothing was sent; else cut the response off."""
        self.keep_alive = False
        if self.response_started and not self.head_pending:
            raise Closing
        self.response_started = self.response_done = True
        await self.connection.write(refusal_response(status, description))

    def reusable(self) -> bool:
        """May the connection serve another request? Only if both sides allow it and the
        request was read to its end (a body already buffered is skipped here)."""
        if self.keep_alive and not self.request_done and self.body_buffered():
            events = self.connection.parser.events
            while events.popleft() is not END:
                pass
            self.request_done = True
        return self.keep_alive and self.request_done and not self.connection.draining

    def body_buffered(self) -> bool:
        """Is the rest of the request body already read (an app that did not ask for it)?"""
        for event in self.connection.parser.events:
            if event is END:
                return True
            if not isinstance(event, bytes):
                return False
        return False

    async def receive(self) -> Message:
        connection = self.connection
        if self.request_done or self.failure is not None:
            await connection.wait_for_disconnect(self)
            return {"type": "http.disconnect"}
        if self.expect_continue:
            self.expect_continue = False
            if not self.response_started:  # RFC 9110 §10.1.1
                await connection.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        event = await connection.read_event(self.body_deadline)
        if event is END:
            self.request_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if isinstance(event, bytes):
            if self.body_received > connection.limits.max_body_bytes:
                return await self._over_limit()
            return self._body(event)
        if isinstance(event, Refusal):
            self.failure = event
        elif event is None and not connection.eof:
            self.failure = Refusal(408, "the request body took too long")
        else:
            self.failure = Refusal(400, "the request ended early")
        self.keep_alive = False
        return {"type": "http.disconnect"}

    async def _over_limit(self) -> Message:
        """The body passed `max_body_bytes` and the app asks for more: it gets none. It has
        until the body deadline to answer (its own limit does: Quart's, the fast path's), then
        `http.disconnect`, and the client a 413 if it sent nothing."""
        self.failure = Refusal(413, "request body too large")
        self.keep_alive = False
        with trio.move_on_at(self.body_deadline):
            await self.connection.wait_for_disconnect(self)
        return {"type": "http.disconnect"}

    def _body(self, chunk: bytes) -> Message:
        # The piece that passes the limit is handed over: the app's own limit answers it.
        self.body_received += len(chunk)
        events = self.connection.parser.events
        if events and events[0] is END:  # the whole body is here: one message
            events.popleft()
            self.request_done = True
            return {"type": "http.request", "body": chunk, "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("http.response.start sent twice")
            self.response_started = True
            self.status = int(message["status"])
            self.headers = message.get("headers") or []
            self.head_pending = True
        elif kind == "http.response.body":
            if not self.response_started:
                raise RuntimeError("http.response.body before http.response.start")
            if self.response_done:  # e.g. Quart's closing empty piece after a whole length
                if message.get("body"):
                    raise RuntimeError("http.response.body after the response ended")
                return
            await self._write_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _write_body(self, body: bytes, more: bool) -> None:
        out = b""
        if self.head_pending:
            out = self._render_head(len(body) if not more else -1)
            self.head_pending = False
        if self.head.method == "HEAD" or self.status in NO_BODY_STATUS or self.status < 200:
            body = b""
        elif self.length_left >= 0:
            if len(body) > self.length_left:
                log.error("the app sent more than its Content-Length")
                body = body[: self.length_left]
                more = False
                self.keep_alive = False
            self.length_left -= len(body)
        elif self.chunked and body:
            body = b"%x\r\n%s\r\n" % (len(body), body)
        if self.length_left == 0:
            more = False  # the declared length is sent: the response is complete (§6.3)
        if not more:
            if self.chunked:
                body += b"0\r\n\r\n"
            elif self.length_left > 0:  # the app declared more than it sent
                log.error("the app sent less than its Content-Length")
                await self.connection.write(out + body)
                raise Closing
        if out or body:
            await self.connection.write(out + body if out else body)
        if not more:
            # Done only once written: an app's receiver told of it (http.disconnect) may cancel
            # the app, and with it a write still in progress (Quart's does).
            self.response_done = True
            if self.listening is not None:
                self.listening.cancel()

    def _render_head(self, whole_length: int) -> bytes:
        """The status line and headers; `whole_length`: the body's length when it is sent in
        one piece (-1: streamed)."""
        fields, length, close = _rendered(self.headers)
        if close:
            self.keep_alive = False
        lines = [status_line(self.status), fields]
        bodiless = self.status in NO_BODY_STATUS or self.status < 200
        if length >= 0:
            self.length_left = 0 if self.head.method == "HEAD" or bodiless else length
            lines.append(b"content-length: %d\r\n" % length)
        elif bodiless:
            pass
        elif whole_length >= 0:
            if self.head.method != "HEAD":
                self.length_left = whole_length
                lines.append(b"content-length: %d\r\n" % whole_length)
        elif self.head.http_version == "1.1":
            self.chunked = self.head.method != "HEAD"
            lines.append(b"transfer-encoding: chunked\r\n")
        else:
            self.keep_alive = False  # HTTP/1.0: the body ends with the connection
        connection = self.connection
        ending = connection.draining or connection.parser.upgraded  # (Upgrade is not followed)
        if ending or not (self.request_done or self.body_buffered()):
            self.keep_alive = False
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"date: %s\r\n\r\n" % date_header())
        return b"".join(lines)


def _origin_form(target: bytes) -> bytes:
    """The path and query of an absolute-form target (RFC 9112 §3.2.2); anything else (the
    asterisk or authority forms) is not a request for a resource here."""
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        raise ValueError("not an origin or absolute form")
    slash = rest.find(b"/")
    question = rest.find(b"?")
    if slash < 0 or (0 <= question < slash):
        return b"/" + (rest[question:] if question >= 0 else b"")
    return rest[slash:]


def _peer_gone(exc: BaseException) -> bool:
    """The app failed only because the connection ended under it (perhaps in a group)."""
    gone = (Closing, trio.BrokenResourceError, trio.ClosedResourceError)
    if isinstance(exc, BaseExceptionGroup):
        return all(_peer_gone(e) for e in exc.exceptions)
    return isinstance(exc, gone)


def _rendered(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, int, bool]:
    """`_render_fields(headers)`, remembered (`HEADS_REMEMBERED`) unless they carry secrets:
    a pure function of the headers, so a remembered block is the one it would render."""
    key = tuple(headers)
    try:
        found = _heads.get(key)
    except TypeError:  # [name, value] lists: rendered each time
        return _render_fields(key)[0]
    if found is None:
        found, secret = _render_fields(key)
        if not secret:
            if len(_heads) >= HEADS_REMEMBERED:
                _heads.clear()
            _heads[key] = found
    return found


def _render_fields(
    headers: tuple[tuple[bytes, bytes], ...],
) -> tuple[tuple[bytes, int, bool], bool]:
    """((the header lines but the framing ones, which the engine writes itself, the app's
    Content-Length or -1, whether it asked for `Connection: close`), whether they carry a
    secret)."""
    length = -1
    close = secret = False
    kept = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _FRAMING:
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.lower() == b"close":
                close = True
            continue
        secret = secret or lowered in _NOT_REMEMBERED
        kept.append(b"%s: %s\r\n" % (lowered, value))
    fields = b"".join(kept)
    if fields.count(b"\n") != len(kept) or fields.count(b"\r") != len(kept):
        raise ValueError("a response header holds CR or LF")  # RFC 9110 §5.5
    return (fields, length, close), secret
