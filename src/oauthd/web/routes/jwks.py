"""GET /.well-known/jwks.json (RFC 7517 §5): the public keys, prepared once per key change."""

from __future__ import annotations

from quart import Quart, Response

from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.web.responses import CORS, json_response
from oauthd.web.state import AppState

__all__ = ["register"]

PATH = "/.well-known/jwks.json"
HEADERS = {**CORS, "Cache-Control": "public, max-age=300"}
JWKS = "application/jwk-set+json"


def register(app: Quart, state: AppState) -> Contribution:
    holder = state.keyring

    async def jwks() -> Response:
        return json_response(holder.current.jwks_bytes, 200, HEADERS)

    app.add_url_rule(state.path(PATH), "jwks", jwks, methods=["GET"])
    return Contribution(members={"jwks_uri": state.url(PATH)})
