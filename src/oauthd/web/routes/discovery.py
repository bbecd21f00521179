"""Metadata documents: RFC 8414 §3 and OpenID Connect Discovery §4, as bytes made once (on their
first request), served by the fast path (web/fast.py) like the JWKS."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from oauthd.keys import ASSERTION_ALGORITHMS
from oauthd.oauth.rfc8414_metadata import (
    Contribution,
    build_metadata,
    document_paths,
    render_metadata,
)
from oauthd.web.fast import document_handler
from oauthd.web.responses import CORS
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = ["register"]

HEADERS = {"Cache-Control": "public, max-age=300"}  # CORS comes with the route


def register(app: RouteTable, state: AppState, contributions: Iterable[Contribution]) -> None:
    """The documents are built here, so that endpoints disagreeing on a member fail when the
    routes are made, and rendered on their first request."""
    issuer = state.settings.issuer
    as_doc, oidc_doc = build_metadata(issuer, contributions, ASSERTION_ALGORITHMS)
    authorization_server = document_handler(partial(render_metadata, as_doc), HEADERS)
    openid_configuration = document_handler(partial(render_metadata, oidc_doc), HEADERS)
    paths = document_paths(issuer)
    for path in paths.authorization_server:
        app.fast.add(path, ("GET",), authorization_server, CORS)
    for path in paths.openid:
        app.fast.add(path, ("GET",), openid_configuration, CORS)
