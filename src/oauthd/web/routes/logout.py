"""Logout at /logout: GET shows a form (a link must not log anyone out), POST with the
session's CSRF token ends the session (HTML-2)."""

from __future__ import annotations

from functools import partial

from quart import Response

from oauthd.actors.people import EndSession, PrepareLogout
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.web.asks import ask_directory
from oauthd.web.browser import Cookies, current_session, form_params
from oauthd.web.errors import shows_error_page
from oauthd.web.pages import page
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = ["register"]

PATH = "/logout"


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    return Contribution()


def views(app: RouteTable, state: AppState) -> None:
    cookies = Cookies.of(state)

    @shows_error_page()
    async def logout_form() -> Response:
        session = await current_session(state, cookies)
        if session is None:
            return page("logout.html", done=True)
        csrf = await ask_directory(state, PrepareLogout(session.session_id))
        return page(
            "logout.html",
            done=False,
            action=state.path(PATH),
            csrf=csrf,
            user_email=session.user.email,
        )

    @shows_error_page()
    async def logout_submit() -> Response:
        form = await form_params()
        session_id = cookies.read("session")
        if session_id is not None:
            await ask_directory(state, EndSession(session_id, form.get("csrf") or ""))
        response = page("logout.html", done=True)
        cookies.clear(response, "session")
        return response

    app.add_url_rule(state.path(PATH), "logout_form", logout_form, methods=["GET"])
    app.add_url_rule(state.path(PATH), "logout_submit", logout_submit, methods=["POST"])
