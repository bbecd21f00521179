"""The baseline: a bare Quart-Trio app with one JSON route, on Hypercorn's trio worker.

`python bench/baseline_app.py --listen 127.0.0.1:PORT` serves it until SIGTERM/SIGINT.
`--raw` serves the same JSON from a plain ASGI callable instead (no framework), to split the
cost of a request between the HTTP server and Quart. `--engine native` serves it on oauthd's
native HTTP/1.1 engine (web/native) instead of Hypercorn, with the limits `oauthd serve` uses
by default. Access logging is off; the `Server` header is off as in oauthd (web/serving.py),
so the comparison isolates what oauthd adds per request.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

from oauthd.settings import settings_for_tests, split_listen
from oauthd.web.native import open_listeners, serve_native
from oauthd.web.serving import native_limits

Message = MutableMapping[str, Any]

app = QuartTrio(__name__)


@app.route("/")
async def index() -> dict[str, str]:
    return {"status": "ok"}


RAW_BODY = b'{"status":"ok"}'
RAW_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"15")]


async def raw_app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """The same response from bare ASGI: what Hypercorn alone costs."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": RAW_HEADERS})
    await send({"type": "http.response.body", "body": RAW_BODY})


async def until_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _signum in signals:
            return


def config_for(listen: str) -> Config:
    config = Config()
    config.bind = [listen]
    config.accesslog = None
    config.include_server_header = False
    return config


async def serve_on_native(asgi: Any, listen: str) -> None:
    host, port = split_listen(listen)
    limits = native_limits(settings_for_tests())
    await serve_native(asgi, limits, await open_listeners(host, port, None), until_signal)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8000")
    parser.add_argument("--raw", action="store_true", help="bare ASGI instead of Quart-Trio")
    parser.add_argument("--engine", choices=("hypercorn", "native"), default="hypercorn")
    args = parser.parse_args()
    asgi: Any = raw_app if args.raw else app
    if args.engine == "native":
        trio.run(serve_on_native, asgi, args.listen)
        return
    trio.run(partial(serve, asgi, config_for(args.listen), shutdown_trigger=until_signal))


if __name__ == "__main__":
    main()
