"""`oauthd.asgi:app`: oauthd as an ASGI application, for an ASGI server the operator runs and
configures (HTTP/2, TLS, their own binds and worker settings):

    OAUTHD_CONFIG=/etc/oauthd/oauthd.toml hypercorn -k trio 'oauthd.asgi:app'

The config file is named by `OAUTHD_CONFIG` (the only `OAUTHD_` variable that is not a key
override). The ASGI lifespan starts the actor runtime (keys, configured clients, janitor) and
stops it, so the server must run the lifespan protocol, on Trio: Hypercorn's trio worker does.
A request before startup completed (or to a server without lifespan) gets a 503. What
`oauthd serve` adds around the same app is not here: `listen`, `[server]`, `--workers` and the
signals are the ASGI server's business.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import trio

from oauthd.errors import ConfigError
from oauthd.logs import flush_logs, flush_logs_every, setup_logging
from oauthd.server import Runtime, front_door, open_runtime
from oauthd.settings import Settings, load_settings
from oauthd.web.access_log import ASGIApp, Receive, Scope, Send

__all__ = ["CONFIG_VARIABLE", "OAuthdASGI", "app"]

CONFIG_VARIABLE = "OAUTHD_CONFIG"
NOT_STARTED = (
    b'{"error":"temporarily_unavailable","error_description":'
    b'"oauthd has not started: run it under an ASGI server with lifespan support"}'
)


def settings_from_environment(environ: Mapping[str, str]) -> Settings:
    """The settings of the file `OAUTHD_CONFIG` names, with the usual `OAUTHD_*` overrides."""
    path = environ.get(CONFIG_VARIABLE, "")
    if not path:
        raise ConfigError("environment", CONFIG_VARIABLE, "is not set: name oauthd's config file")
    overrides = {k: v for k, v in environ.items() if k != CONFIG_VARIABLE}
    return load_settings(path, overrides)


class OAuthdASGI:
    """The ASGI app: lifespan runs the runtime; HTTP goes to its front door once it runs."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif self.front is not None:
            await self.front(scope, receive, send)
        elif scope["type"] == "http":
            headers = [(b"content-type", b"application/json"), (b"retry-after", b"1")]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": NOT_STARTED})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            settings = settings_from_environment(self.environ)
        except ConfigError as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        setup_logging(settings.log, own_process=False)
        try:
            async with trio.open_nursery() as nursery:
                try:
                    runtime: Runtime = await nursery.start(
                        partial(open_runtime, settings, environ=self.environ)
                    )
                except ConfigError as exc:  # e.g. a secret's variable unset
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                nursery.start_soon(flush_logs_every)
                self.front = front_door(runtime)
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
                self.front = None
                nursery.cancel_scope.cancel()
        finally:
            flush_logs()
        await send({"type": "lifespan.shutdown.complete"})


app: Any = OAuthdASGI()
