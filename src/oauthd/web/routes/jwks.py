"""GET /.well-known/jwks.json (RFC 7517 §5): the public keys, prepared once per key change."""

from __future__ import annotations

from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.web.fast import ApiRequest, ApiResponse
from oauthd.web.responses import CORS
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = ["register"]

PATH = "/.well-known/jwks.json"
HEADERS = {"Cache-Control": "public, max-age=300"}  # CORS comes with the route


def register(app: RouteTable, state: AppState) -> Contribution:
    holder = state.keyring

    async def jwks(_request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, holder.current.jwks_bytes, HEADERS)

    app.fast.add(state.path(PATH), ("GET",), jwks, CORS)
    return Contribution(members={"jwks_uri": state.url(PATH)})
