"""Metadata documents: RFC 8414 §3 and OpenID Connect Discovery §4, as bytes made once, served
by the fast path (web/fast.py) like the JWKS."""

from __future__ import annotations

from collections.abc import Iterable

from oauthd.keys import ASSERTION_ALGORITHMS
from oauthd.oauth.rfc8414_metadata import (
    Contribution,
    build_metadata,
    document_paths,
    render_metadata,
)
from oauthd.web.fast import ApiRequest, ApiResponse
from oauthd.web.responses import CORS
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = ["register"]

HEADERS = {"Cache-Control": "public, max-age=300"}  # CORS comes with the route


def register(app: RouteTable, state: AppState, contributions: Iterable[Contribution]) -> None:
    issuer = state.settings.issuer
    as_doc, oidc_doc = build_metadata(issuer, contributions, ASSERTION_ALGORITHMS)
    as_bytes, oidc_bytes = render_metadata(as_doc), render_metadata(oidc_doc)
    paths = document_paths(issuer)

    async def authorization_server(_request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, as_bytes, HEADERS)

    async def openid_configuration(_request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, oidc_bytes, HEADERS)

    for path in paths.authorization_server:
        app.fast.add(path, ("GET",), authorization_server, CORS)
    for path in paths.openid:
        app.fast.add(path, ("GET",), openid_configuration, CORS)
