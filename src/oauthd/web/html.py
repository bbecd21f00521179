"""Rendering the HTML pages: one autoescaping Jinja2 environment for the whole app."""

from __future__ import annotations

from typing import Any

from quart import Response

from oauthd.errors import OAuthError
from oauthd.web.pages import Pages

__all__ = ["PAGES", "error_page", "page"]

PAGES = Pages()


def page(name: str, status: int = 200, **context: Any) -> Response:
    return PAGES.render(name, status, **context)


def error_page(error: OAuthError, status: int | None = None) -> Response:
    """An error shown to the person, never a redirect (OAuth 2.1 §4.1.2.1)."""
    response = page(
        "error.html", status or error.status, code=error.code, description=error.description
    )
    response.headers.update(error.headers())
    return response
