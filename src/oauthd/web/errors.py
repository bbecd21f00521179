"""Maps every failure to a response: OAuth errors as themselves, HTTP routing errors to their
OAuth-style JSON equivalent, anything unexpected to `server_error` with the traceback only in
the log. Browsers asking for HTML get the same error as a page."""

from __future__ import annotations

import logging

from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed

from oauthd.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    OAuthError,
    RequestTooLarge,
    ServerError,
)
from oauthd.web.pages import error_page
from oauthd.web.responses import error_response

__all__ = ["install_error_handlers"]

log = logging.getLogger("oauthd.web")


def from_http(exc: HTTPException) -> OAuthError:
    code = exc.code or 500
    if code == 404:
        return NotFound("no such endpoint")
    if isinstance(exc, WerkzeugMethodNotAllowed):
        return MethodNotAllowed(sorted(exc.valid_methods or []))
    if code == 413:
        return RequestTooLarge("request body too large")
    if code < 500:
        return InvalidRequest("malformed request")
    return ServerError("internal error")


def wants_html(api: tuple[str, ...]) -> bool:
    """A browser asking for a page gets the error as a page; the JSON API never does."""
    if request.path.startswith(api):
        return False
    accept = request.accept_mimetypes
    return accept.quality("text/html") > accept.quality("application/json")


def install_error_handlers(app: Quart, api: tuple[str, ...]) -> None:
    def respond(error: OAuthError) -> Response:
        return error_page(error) if wants_html(api) else error_response(error)

    @app.errorhandler(OAuthError)
    async def oauth_error(error: OAuthError) -> Response:
        if error.detail:
            log.info("%s: %s", error.code, error.detail)
        return respond(error)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        return respond(from_http(error))

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.path, exc_info=error)
        return respond(ServerError("internal error"))
