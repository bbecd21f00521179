"""The browser side: cookies, the current session, forms, and redirects back to clients.

Two cookies, both HttpOnly and SameSite=Lax (Secure with the `__Host-` prefix outside dev
mode, HTML-3): `browser` is a random id that binds pending authorization requests to one
browser; `session` names the logged-in session and is replaced at every login.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from quart import Response, request

from oauthd.actors.people import GetSession, SessionView
from oauthd.errors import InvalidRequest, OAuthError
from oauthd.oauth.params import Params
from oauthd.web.asks import ask_directory
from oauthd.web.forms import parse_form
from oauthd.web.state import AppState

__all__ = [
    "Cookies",
    "client_location",
    "current_session",
    "form_params",
    "query_params",
    "redirect_to_client",
    "see_other",
    "see_other_headers",
]


@dataclass(frozen=True, slots=True)
class Cookies:
    """The browser's cookies, scoped to the issuer: a root issuer's are `__Host-` cookies on
    "/", a path issuer's (a path tenant, /t/<id>) live under its path only, so a browser
    never sends one tenant's cookies to another."""

    secure: bool
    path: str = "/"

    @classmethod
    def of(cls, state: AppState) -> Cookies:
        return cls(secure=not state.settings.dev_mode, path=state.path("/"))

    def name(self, base: str) -> str:
        if not self.secure:
            return f"oauthd-{base}"
        # RFC 6265bis §4.1.3: __Host- needs Path=/; under a path, __Secure- still needs Secure.
        return f"__Host-oauthd-{base}" if self.path == "/" else f"__Secure-oauthd-{base}"

    def set(self, response: Response, base: str, value: str, max_age_s: int) -> None:
        response.set_cookie(
            self.name(base),
            value,
            max_age=max_age_s,
            path=self.path,
            secure=self.secure,
            httponly=True,
            samesite="Lax",
        )

    def clear(self, response: Response, base: str) -> None:
        response.delete_cookie(
            self.name(base), path=self.path, secure=self.secure, httponly=True, samesite="Lax"
        )

    def read(self, base: str, jar: Mapping[str, str] | None = None) -> str | None:
        """The cookie's value in `jar` (by default the Quart request's cookies)."""
        value = (request.cookies if jar is None else jar).get(self.name(base))
        return value if value and len(value) <= 100 else None

    def require_browser(self) -> str:
        """The browser id a pending request is bound to; without it there is nothing to
        continue (cookies off, or a form posted from elsewhere)."""
        browser = self.read("browser")
        if browser is None:
            raise InvalidRequest("cookies are needed to sign in; enable them and start again")
        return browser

    def browser(self) -> tuple[str, bool]:
        """The browser id, and whether it is new (then the response must set it)."""
        existing = self.read("browser")
        return (existing, False) if existing else (secrets.token_urlsafe(32), True)


async def current_session(
    state: AppState, cookies: Cookies, jar: Mapping[str, str] | None = None
) -> SessionView | None:
    """The live session the browser's cookie names (`jar`: its cookies, by default the Quart
    request's), or None."""
    session_id = cookies.read("session", jar)
    if session_id is None:
        return None
    view = await ask_directory(state, GetSession(session_id))
    return view


async def form_params() -> Params:
    """A form body as OAuth reads it (`forms.parse_form`).

    The body is read in full even when it is refused: answering before the client has sent
    it all leaves a keep-alive connection that Hypercorn under Quart-Trio never closes."""
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    return parse_form(request.mimetype, raw)


def query_params() -> Params:
    return Params.of(request.args.items(multi=True))


def see_other(location: str) -> Response:
    """303 after a form POST, never 307/308 (OAuth 2.1 §7.5.3, AUTHZ-11)."""
    return Response("", status=303, headers=see_other_headers(location))


def see_other_headers(location: str) -> dict[str, str]:
    """The headers of a 303 to `location` (`see_other`), for the fast path too."""
    return {"Location": location, "Cache-Control": "no-store"}


def redirect_to_client(
    state: AppState,
    redirect_uri: str,
    params: dict[str, str | None],
    error: OAuthError | None = None,
) -> Response:
    return see_other(client_location(state, redirect_uri, params, error))


def client_location(
    state: AppState,
    redirect_uri: str,
    params: dict[str, str | None],
    error: OAuthError | None = None,
) -> str:
    """Append response parameters to the validated redirect URI, keeping its own query
    (OAuth 2.1 §4.1.2), with `iss` on every response (RFC 9207 §2)."""
    values: dict[str, str] = {}
    if error is not None:
        values["error"] = error.code
        if error.description:
            values["error_description"] = error.description
    values.update({k: v for k, v in params.items() if v is not None})
    values["iss"] = state.settings.issuer
    parts = urlsplit(redirect_uri)
    query = "&".join(q for q in (parts.query, urlencode(values)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
