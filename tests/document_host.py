"""Test hosts for client-supplied URLs: an https server (a trustme CA that the test trusts)
serving client metadata documents, and a plain listener that only records connections, so
a test can prove that a forbidden address was never connected to."""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
import trustme

from oauthd.actors.outbound import resolve

HOST = "cimd.test"  # the name documents are served under; the tests' resolver maps it


@dataclass
class Served:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    stall: bool = False  # send the headers, then nothing


@dataclass
class DocumentHost:
    """https://cimd.test:<port>/<path> for each path in `routes`; `requests` lists the paths
    asked for, in order."""

    ca: trustme.CA
    port: int = 0
    routes: dict[str, Served] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"https://{HOST}:{self.port}{path}"

    def serve_json(self, path: str, document: Any, **headers: str) -> None:
        self.routes[path] = Served(
            body=json.dumps(document).encode(),
            headers={"content-type": "application/json", **headers},
        )

    async def handle(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16_384:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                head += chunk
            path = head.split(b" ", 2)[1].decode()
            self.requests.append(path)
            served = self.routes.get(path, Served(404, b"{}"))
            lines = [f"HTTP/1.1 {served.status} X"]
            lines += [f"{k}: {v}" for k, v in served.headers.items()]
            if served.stall:
                await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
                await trio.sleep_forever()
            lines += [f"content-length: {len(served.body)}", "connection: close"]
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode() + served.body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)


async def start_document_host(nursery: trio.Nursery, ca: trustme.CA) -> DocumentHost:
    host = DocumentHost(ca)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server_context)
    serve = partial(trio.serve_ssl_over_tcp, host="127.0.0.1")
    listeners = await nursery.start(serve, host.handle, 0, server_context)
    host.port = listeners[0].transport_listener.socket.getsockname()[1]
    return host


@dataclass
class Recorder:
    """A listener on a forbidden loopback address that counts the connections it receives."""

    address: str
    port: int = 0
    connections: int = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        await stream.aclose()


async def start_recorder(nursery: trio.Nursery, address: str, port: int = 0) -> Recorder:
    recorder = Recorder(address)
    listeners = await nursery.start(partial(trio.serve_tcp, host=address), recorder.handle, port)
    recorder.port = listeners[0].socket.getsockname()[1]
    return recorder


def resolver_for(names: dict[str, list[str]]) -> Callable[[str, int], Awaitable[list[str]]]:
    """DNS for the tests: the names given, and the system's answer for everything else."""

    async def lookup(host: str, port: int) -> list[str]:
        if host in names:
            return list(names[host])
        return await resolve(host, port)

    return lookup
