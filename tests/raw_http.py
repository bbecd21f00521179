"""Raw HTTP/1.1 over a trio socket, for tests of the engine itself: bytes exactly as written
(no client library repairs them), responses read one at a time, and whether the server closed."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

READ_S = 10.0  # a guard against a hang in the server, never reached when it behaves


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names; a repeated name keeps its last value
    body: bytes
    raw_head: bytes


class RawClient:
    """One connection: `send` bytes, `response()` reads the next one, `closed()` says whether
    the server closed its end (EOF) with nothing more to read."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.eof = False

    @classmethod
    async def connect(cls, base_url: str) -> RawClient:
        parts = urlsplit(base_url)
        assert parts.hostname is not None
        assert parts.port is not None
        return cls(await trio.open_tcp_stream(parts.hostname, parts.port))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        with trio.fail_after(READ_S):
            data = await self.stream.receive_some(65536)
        if not data:
            self.eof = True
        self.buffer += data
        return bool(data)

    async def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not await self._fill():
                raise EOFError(f"connection closed before {marker!r}; got {self.buffer!r}")
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    async def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not await self._fill():
                raise EOFError(f"connection closed {n - len(self.buffer)} bytes short")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    async def response(self, *, head_request: bool = False) -> Response:
        raw_head = await self._until(b"\r\n\r\n")
        status_line, *lines = raw_head.split(b"\r\n")
        status = int(status_line.split(b" ")[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.decode().lower()] = value.decode().strip()
        if head_request or status < 200 or status in (204, 304):
            body = b""
        elif "content-length" in headers:
            body = await self._exactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = await self._chunked()
        else:
            body = await self.rest()
        return Response(status, headers, body, raw_head)

    async def _chunked(self) -> bytes:
        body = b""
        while True:
            size = int((await self._until(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._until(b"\r\n")
                return body
            body += await self._exactly(size)
            await self._exactly(2)

    async def rest(self) -> bytes:
        while await self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data

    async def closed(self) -> bool:
        """True when the server closed the connection and sent nothing more."""
        return await self.rest() == b""

    async def aclose(self) -> None:
        await self.stream.aclose()


async def one_shot(base_url: str, data: bytes) -> tuple[Response, bool]:
    """Send `data` on a new connection: the first response, and whether the server closed
    the connection after it."""
    client = await RawClient.connect(base_url)
    try:
        await client.send(data)
        response = await client.response()
        return response, await client.closed()
    finally:
        await client.aclose()
