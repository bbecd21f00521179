"""Hypercorn on trio: bind, serve until the shutdown trigger fires, let in-flight requests end."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from oauthd.settings import Settings, split_listen
from oauthd.web.access_log import ASGIApp

__all__ = ["hypercorn_config", "serve_http"]


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
    config.include_server_header = False
    config.h11_max_incomplete_size = 16 * 1024  # request line + headers (ERR-3)
    return config


async def serve_http(
    app: ASGIApp,
    config: Config,
    shutdown: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve(app, config, shutdown_trigger=shutdown, task_status=task_status)  # type: ignore[arg-type]  # hypercorn's Framework type is narrower than ASGI callables
