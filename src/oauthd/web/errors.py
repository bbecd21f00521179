"""The error funnels: every failure leaves through one of them, as through node-oidc-provider's
one error handler.

`public_error` is the one mapping of a failure to what the client is told: an OAuth error as
itself (its private `detail` to the log only), an HTTP routing error as its OAuth equivalent,
anything unexpected as `server_error` with the traceback in the log. The JSON API renders it
with `responses.error_body` (here for Quart's routes, in `fast.FastPath` for the fast ones);
a browser asking for HTML gets the same error as a page.

Browser routes take `shows_error_page`: an OAuth error they raise is shown to the person as
the error page, never redirected (OAuth 2.1 §4.1.2.1). Redirecting an error to a client is
a decision of its own, made where the redirect URI is known (`interaction.redirect_error`)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

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

__all__ = [
    "bad_request_status",
    "install_error_handlers",
    "public_error",
    "shows_error_page",
]

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


def public_error(error: BaseException, method: str, path: str) -> OAuthError:
    """What the client is told of `error`; the log gets what it must not be told."""
    if isinstance(error, OAuthError):
        if error.detail:
            log.info("%s: %s", error.code, error.detail)
        return error
    if isinstance(error, HTTPException):
        return from_http(error)
    log.error("unexpected error on %s %s", method, path, exc_info=error)
    return ServerError("internal error")


def install_error_handlers(app: Quart, api: tuple[str, ...]) -> None:
    @app.errorhandler(Exception)
    async def respond(error: Exception) -> Response:
        shown = public_error(error, request.method, request.path)
        return error_page(shown) if wants_html(api) else error_response(shown)


Page = Callable[[], Awaitable[Response]]


def bad_request_status(error: OAuthError) -> int:
    """The status of an error page about a client's request (/authorize, /callback): what
    the request got wrong is a 400, the server's own trouble keeps its 5xx."""
    return 400 if error.status < 500 else error.status


def shows_error_page(status: Callable[[OAuthError], int] | None = None) -> Callable[[Page], Page]:
    """The funnel of a browser route: an OAuth error it raises becomes the error page, with
    `status(error)` (by default the error's own status)."""

    def decorate(route: Page) -> Page:
        @functools.wraps(route)
        async def shown() -> Response:
            try:
                return await route()
            except OAuthError as exc:
                error = public_error(exc, request.method, request.path)
                return error_page(error, status(error) if status is not None else None)

        return shown

    return decorate
