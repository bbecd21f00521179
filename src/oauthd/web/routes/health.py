"""GET /healthz: readiness. Ready (200) when the data dir is writable, a signing key is
active, and the Directory and the KeyManager each answer a message within `ROUND_TRIP_S`
(a round trip through their mailboxes and shards, so a wedged actor or a locked or vanished
shard shows); else 503 with the problems named. Load balancers poll it, so it answers from
loopback and elsewhere alike and reveals no more than the live actor count."""

from __future__ import annotations

import os
from functools import partial

import trio
from quart import Response

from oauthd.actors import CountClients, ListKeys, directory_address, keys_address
from oauthd.errors import OAuthError
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.runtime import Address, Message
from oauthd.web.responses import NO_STORE, json_bytes, json_response
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = ["PATH", "ROUND_TRIP_S", "register"]

PATH = "/healthz"

ROUND_TRIP_S = 2.0  # an actor slower than this to answer is not ready


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    return Contribution()


def views(app: RouteTable, state: AppState) -> None:
    data_dir = state.settings.data_dir
    actors = {
        "directory": (directory_address(state.tenant), CountClients()),
        "keys": (keys_address(state.tenant), ListKeys()),
    }

    async def answers(address: Address, message: Message[object]) -> str | None:
        """None if the actor answered in time, else what went wrong."""
        with trio.move_on_after(ROUND_TRIP_S):
            try:
                await state.system.ask(address, message)
            except OAuthError as exc:
                return exc.code
            return None
        return "no answer"

    async def healthz() -> Response:
        problems = []
        if not os.access(data_dir, os.W_OK):
            problems.append("data_dir is not writable")
        if state.keyring.current.signer_kid is None:
            problems.append("no active signing key")
        for name, (address, message) in actors.items():
            problem = await answers(address, message)
            if problem is not None:
                problems.append(f"{name} actor: {problem}")
        stats = state.system.stats()
        body = {
            "status": "unavailable" if problems else "ok",
            "problems": problems,
            "live_actors": stats.live,
            "mailbox_depth": stats.mailbox_depth,
        }
        return json_response(json_bytes(body), 503 if problems else 200, NO_STORE)

    app.add_url_rule(PATH, "healthz", healthz, methods=["GET"])
