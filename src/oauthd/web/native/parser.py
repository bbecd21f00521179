"""Reading HTTP/1.1 requests with httptools (llhttp, the parser Node.js uses), strictly.

llhttp is run with none of its leniencies, so the request-smuggling vectors of RFC 9112 are
refused where they are parsed: `Content-Length` with `Transfer-Encoding` (§6.1), two
`Content-Length`s, even equal ones (§6.3: we reject rather than merge), a `Transfer-Encoding`
whose last coding is not `chunked` (§6.3), obs-fold (§5.2), a bare LF (§2.2), NUL and control
characters in a field value (§5.5), and a malformed chunk size (§7.1). What is left to us: the
versions we speak (§2.6), codings other than `chunked` (§6.1, 501), one `Host` (§3.2), and the
size limits.

The parser turns bytes into a queue of events, one message after another: a `Head` when the
headers are complete, `bytes` of body, `END` when the message is complete, a `Refusal` when the
input cannot be a request (then nothing more is parsed). One `feed` may queue several
pipelined messages; the connection takes them in order, reading more only when the queue is
empty, so no more than one read's worth is ever parsed ahead of the request being answered.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

import httptools

__all__ = ["END", "Event", "Head", "Refusal", "RequestParser"]

HEAD_SLACK = 4096  # request-line and header syntax around the counted bytes


@dataclass(frozen=True, slots=True)
class Head:
    """A request's line and headers; header names lower-cased, as ASGI wants them."""

    method: str
    target: bytes
    http_version: str  # "1.0" or "1.1"
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool  # what the request allows (HTTP/1.0: never)
    expect_continue: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """The request cannot be served: answer `status` with `description`, then close."""

    status: int
    description: str


class _End:
    __slots__ = ()


END: Final = _End()
Event = Head | bytes | _End | Refusal


class RequestParser:
    """httptools' callbacks, queueing events for the connection to take one at a time."""

    def __init__(self, max_target: int, max_headers: int) -> None:
        self.max_target = max_target
        self.max_headers = max_headers
        self.events: deque[Event] = deque()
        self.in_head = False  # some of a message's line or headers arrived, not all
        self.in_body = False
        self.upgraded = False  # an Upgrade or CONNECT request: nothing after it is parsed
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._unparsed_head = 0  # bytes fed while a head was incomplete (buffered in llhttp)
        self._queued = 0  # events of the message being parsed, for a refusal to drop
        self._refusal: Refusal | None = None
        self._dead = False

    def feed(self, data: bytes) -> None:
        if self._dead:
            return
        if not self.in_body:
            self._unparsed_head += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.upgraded = True  # the request itself is complete (RFC 9110 §7.8: ignored)
            self._dead = True
        except httptools.HttpParserError:
            self._refuse(self._refusal or Refusal(400, "malformed HTTP request"))
            return
        if self.in_head and self._unparsed_head > self.max_target + self.max_headers + HEAD_SLACK:
            self._refuse(Refusal(431, "the request line and headers are too large"))

    def _refuse(self, refusal: Refusal) -> None:
        """Drop what was queued of the bad message, then the refusal ends the queue."""
        for _ in range(min(self._queued, len(self.events))):
            self.events.pop()
        self.events.append(refusal)
        self._dead = True

    def _emit(self, event: Event) -> None:
        self.events.append(event)
        self._queued += 1

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.in_head = True
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._queued = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.max_target:
            self._refusal = Refusal(414, "the request URI is too long")  # RFC 9112 §3
            raise ValueError(self._refusal.description)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.max_headers:
            self._refusal = Refusal(431, "the request headers are too large")  # RFC 6585 §5
            raise ValueError(self._refusal.description)
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        self._unparsed_head = 0
        version = self._parser.get_http_version()
        if version not in ("1.0", "1.1"):
            self._refusal = Refusal(505, "HTTP version not supported")  # RFC 9112 §2.6
            raise ValueError(self._refusal.description)
        expect_continue = False
        hosts = 0
        for name, value in self._headers:
            if name == b"transfer-encoding" and value.lower() != b"chunked":
                self._refusal = Refusal(501, "only the chunked transfer coding is supported")
                raise ValueError(self._refusal.description)  # RFC 9112 §6.1
            if name == b"expect":
                expect_continue = value.lower() == b"100-continue"
            hosts += name == b"host"
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            self._refusal = Refusal(400, "exactly one Host header is required")  # RFC 9112 §3.2
            raise ValueError(self._refusal.description)
        self.in_body = True
        self._emit(
            Head(
                self._parser.get_method().decode("ascii"),
                self._url,
                version,
                self._headers,
                version == "1.1" and self._parser.should_keep_alive(),
                expect_continue and version == "1.1",
            )
        )

    def on_body(self, body: bytes) -> None:
        self._emit(body)

    def on_message_complete(self) -> None:
        self.in_body = False
        self._emit(END)
        self._queued = 0
