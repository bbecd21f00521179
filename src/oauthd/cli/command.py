"""What every `oauthd` subcommand shares: the `--config` option, given once as the parent
parser of each subcommand, and the shape of a command. A subcommand's parser names its
command with `set_defaults(run=...)`; `main` loads the settings and calls it."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from oauthd.actors import DEFAULT_TENANT
from oauthd.logs import setup_logging
from oauthd.server import Runtime, open_runtime
from oauthd.settings import Settings

__all__ = ["Command", "RuntimeCommand", "config_option", "on_runtime", "tenant_option"]

Command = Callable[[Settings, argparse.Namespace], int]
"""A subcommand: the loaded settings and the parsed arguments in, an exit code out."""

RuntimeCommand = Callable[[Runtime, argparse.Namespace], Awaitable[int]]
"""A subcommand that works through the actors: see `on_runtime`."""


def config_option() -> argparse.ArgumentParser:
    """The parent parser of every subcommand: each one reads the same TOML file."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--config", required=True, help="TOML configuration file")
    return options


def tenant_option() -> argparse.ArgumentParser:
    """The parent parser of the subcommands that work on one tenant's data: `--tenant`."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--tenant", default=DEFAULT_TENANT, help="whose (default: the file's)")
    return options


def on_runtime(command: RuntimeCommand) -> Command:
    """`command`, run on the actor runtime of the data dir, beside a running server or without
    one: the same actors, transactions and SQLite write locks order it with live requests. No
    janitor runs; `oauthd gc` makes its one pass itself."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        setup_logging(settings.log)
        return trio.run(_on_runtime, command, settings, args)

    return run


async def _on_runtime(command: RuntimeCommand, settings: Settings, args: argparse.Namespace) -> int:
    async with trio.open_nursery() as nursery:
        runtime: Runtime = await nursery.start(partial(open_runtime, settings, janitor=False))
        code = await command(runtime, args)
        nursery.cancel_scope.cancel()
    return code
