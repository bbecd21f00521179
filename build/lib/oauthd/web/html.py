"""Rendering the HTML pages: one autoescaping Jinja2 environment per app, with its branding."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from quart import Quart, Response, current_app

from oauthd.errors import OAuthError
from oauthd.settings import BrandingSettings
from oauthd.web.pages import Pages

__all__ = ["error_page", "install_pages", "page"]

EXTENSION = "oauthd.pages"


def install_pages(app: Quart, branding: BrandingSettings) -> None:
    app.extensions[EXTENSION] = Pages(branding)


def page(
    name: str, status: int = 200, form_targets: Iterable[str] = (), **context: Any
) -> Response:
    """Render a page of the current app. `form_targets`: URIs its form may end up redirecting
    to (a client's redirect URI after login or consent), for the CSP's form-action."""
    pages: Pages = current_app.extensions[EXTENSION]
    return pages.render(name, status, form_targets, **context)


def error_page(error: OAuthError, status: int | None = None) -> Response:
    """An error shown to the person, never a redirect (OAuth 2.1 §4.1.2.1)."""
    response = page(
        "error.html", status or error.status, code=error.code, description=error.description
    )
    response.headers.update(error.headers())
    return response
