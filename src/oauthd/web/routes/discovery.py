"""Metadata documents: RFC 8414 §3 and OpenID Connect Discovery §4, as bytes made once."""

from __future__ import annotations

from collections.abc import Iterable

from quart import Quart, Response

from oauthd.keys import ASSERTION_ALGORITHMS
from oauthd.oauth.rfc8414_metadata import (
    Contribution,
    build_metadata,
    document_paths,
    render_metadata,
)
from oauthd.web.responses import CORS, json_response
from oauthd.web.state import AppState

__all__ = ["register"]

HEADERS = {**CORS, "Cache-Control": "public, max-age=300"}


def register(app: Quart, state: AppState, contributions: Iterable[Contribution]) -> None:
    issuer = state.settings.issuer
    as_doc, oidc_doc = build_metadata(issuer, contributions, ASSERTION_ALGORITHMS)
    as_bytes, oidc_bytes = render_metadata(as_doc), render_metadata(oidc_doc)
    paths = document_paths(issuer)

    async def authorization_server() -> Response:
        return json_response(as_bytes, 200, HEADERS)

    async def openid_configuration() -> Response:
        return json_response(oidc_bytes, 200, HEADERS)

    for i, path in enumerate(paths.authorization_server):
        app.add_url_rule(path, f"as_metadata_{i}", authorization_server, methods=["GET"])
    for i, path in enumerate(paths.openid):
        app.add_url_rule(path, f"oidc_metadata_{i}", openid_configuration, methods=["GET"])
