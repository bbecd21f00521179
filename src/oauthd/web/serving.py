"""The HTTP front, by `[server] engine`: the native HTTP/1.1 server (web/native, the default)
or Hypercorn's trio worker. Either binds `listen` (or serves the socket inherited from the
`--workers` supervisor), serves until the shutdown trigger fires, and lets in-flight requests
end within `graceful_timeout_s`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from oauthd.settings import Settings, split_listen
from oauthd.web.access_log import ASGIApp
from oauthd.web.native import Limits, open_listeners, serve_native
from oauthd.web.request_size import MAX_HEADERS, MAX_URL

__all__ = ["hypercorn_config", "native_limits", "serve_http"]


def hypercorn_config(
    settings: Settings, listen: str | None = None, *, listen_fd: int | None = None
) -> Config:
    """`listen_fd`: serve a listening socket inherited from the `--workers` supervisor."""
    config = Config()
    if listen_fd is not None:
        config.bind = [f"fd://{listen_fd}"]
    else:
        host, port = split_listen(settings.listen if listen is None else listen)
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None  # oauthd writes its own access log, without query strings
    config.errorlog = logging.getLogger("hypercorn.error")  # through oauthd's handlers
    config.graceful_timeout = settings.graceful_timeout_s
    config.keep_alive_timeout = settings.server.keep_alive_s
    config.include_server_header = False
    config.h11_max_incomplete_size = 16 * 1024  # request line + headers (ERR-3)
    return config


def native_limits(settings: Settings) -> Limits:
    """The native engine's limits: `[server]`, and the app's own request limits (ERR-3), so
    that engine and app refuse the same requests with the same status."""
    s = settings.server
    return Limits(
        keep_alive_s=s.keep_alive_s,
        header_timeout_s=s.header_timeout_s,
        body_timeout_s=s.body_timeout_s,
        max_connections=s.max_connections,
        max_body_bytes=settings.limits.max_body_bytes,
        max_target=MAX_URL,
        max_headers=MAX_HEADERS,
        graceful_timeout_s=settings.graceful_timeout_s,
    )


async def serve_http(
    app: ASGIApp,
    settings: Settings,
    shutdown: Callable[[], Awaitable[None]],
    *,
    listen: str | None = None,
    listen_fd: int | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on `listen` (default: the settings'), or on the inherited `listen_fd`,
    until `shutdown` returns; report the bound URLs through `task_status`."""
    if settings.server.engine == "hypercorn":
        config = hypercorn_config(settings, listen, listen_fd=listen_fd)
        await serve(app, config, shutdown_trigger=shutdown, task_status=task_status)  # type: ignore[arg-type]  # hypercorn's Framework type is narrower than ASGI callables
        return
    host, port = split_listen(settings.listen if listen is None else listen)
    listeners = await open_listeners(host, port, listen_fd)
    limits = native_limits(settings)
    await serve_native(app, limits, listeners, shutdown, task_status=task_status)
