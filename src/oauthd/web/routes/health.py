"""GET /healthz: ready when the data dir is writable and a signing key is active."""

from __future__ import annotations

import os

from quart import Quart, Response

from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.web.responses import NO_STORE, json_bytes, json_response
from oauthd.web.state import AppState

__all__ = ["register"]


def register(app: Quart, state: AppState) -> Contribution:
    data_dir = state.settings.data_dir

    async def healthz() -> Response:
        problems = []
        if not os.access(data_dir, os.W_OK):
            problems.append("data_dir is not writable")
        if state.keyring.current.signer_kid is None:
            problems.append("no active signing key")
        stats = state.system.stats()
        body = {
            "status": "unavailable" if problems else "ok",
            "problems": problems,
            "live_actors": stats.live,
            "mailbox_depth": stats.mailbox_depth,
        }
        return json_response(json_bytes(body), 503 if problems else 200, NO_STORE)

    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    return Contribution()
