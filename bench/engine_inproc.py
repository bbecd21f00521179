"""The native engine's own cost per request, in one process, away from the machine's noise:
`python bench/engine_inproc.py [REQUESTS]` serves a prepared 220-byte JSON body from a
minimal ASGI app through `web/native`'s `Connection` over a socketpair, to a client task in
the same trio loop, one keep-alive request at a time. Prints the CPU time per request (server
and client together: compare runs of this script, not with wrk's rows) of five rounds and
their minimum. Run it pinned (`taskset -c 0`); the minimum is the steadiest figure on a shared
machine."""

from __future__ import annotations

import sys
import time
from typing import Any

import trio

from oauthd.settings import settings_for_tests
from oauthd.web.native.connection import Connection
from oauthd.web.serving import native_limits

BODY = b'{"keys":[]}' * 20
REQUEST = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: wrk\r\n\r\n"
LIMITS = native_limits(settings_for_tests())  # the defaults of `oauthd serve`
ROUNDS = 5
WARM_UP = 2_000


async def app(_scope: dict[str, Any], _receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


async def measure(requests: int) -> list[float]:
    server_end, client_end = trio.socket.socketpair()
    connection = Connection(trio.SocketStream(server_end), app, LIMITS)
    client = trio.SocketStream(client_end)

    async def one() -> None:
        await client.send_all(REQUEST)
        received = b""
        while not received.endswith(BODY):
            received += await client.receive_some(65_536)

    rounds = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        for _ in range(WARM_UP):
            await one()
        for _ in range(ROUNDS):
            started = time.process_time()
            for _ in range(requests):
                await one()
            rounds.append((time.process_time() - started) * 1e6 / requests)
        nursery.cancel_scope.cancel()
    return rounds


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    rounds = trio.run(measure, requests)
    shown = " ".join(f"{r:.1f}" for r in rounds)
    print(f"us of CPU per request (server + client): {shown}; min {min(rounds):.1f}")


if __name__ == "__main__":
    main()
