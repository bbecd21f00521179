"""HTML pages: one autoescaping Jinja2 environment per app (`install_pages`), the branding every
page shows, the headers every page sends (HTML-1, HTML-6, HTML-9), and `page` and `error_page`,
which every browser route renders with.

The stylesheet is rendered once from `web/templates/style.css` with the configured colours and
inlined into each page; the CSP allows exactly that stylesheet by its SHA-256 hash, so no
`'unsafe-inline'` and nothing from another origin. Pages run no script at all.

`form-action` is `'self'`, plus the client's redirect URI on a page whose form can end in a
303 to it (login, consent): Chromium applies form-action to the redirects that follow a form
submission, so without it the browser would refuse to go back to the client.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup
from quart import Quart, Response, current_app

from oauthd.errors import OAuthError
from oauthd.settings import BrandingSettings, contrast_ratio

__all__ = ["Pages", "error_page", "form_action_source", "install_pages", "page"]

BLACK, WHITE = "#000000", "#ffffff"
# What a person is asked to allow, in words; other scopes are shown as they are.
SCOPE_TEXT = {
    "openid": "Know who you are on this server",
    "email": "See your email address",
    "profile": "See your name",
    "offline_access": "Keep access while you are away",
}
SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
HOST = re.compile(r"[a-z0-9.-]+")  # a CSP host-source cannot name an IPv6 literal

TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data: in every install
EXTENSION = "oauthd.pages"


def text_on(color: str) -> str:
    """Black or white, whichever contrasts more with `color` (button labels)."""
    return BLACK if contrast_ratio(color, BLACK) >= contrast_ratio(color, WHITE) else WHITE


def form_action_source(uri: str) -> str | None:
    """The CSP source expression that lets a form's redirect reach `uri` (CSP3 §6.3.1):
    its origin, or only its scheme when the host cannot be written as a host-source
    (private-use schemes, IPv6 loopback). None for what cannot be expressed at all."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not SCHEME.fullmatch(scheme):
        return None
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not HOST.fullmatch(host):
        return f"{scheme}:"
    try:
        port = parts.port
    except ValueError:
        return None
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


class Pages:
    def __init__(self, branding: BrandingSettings, directory: Path = TEMPLATES) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory),
            autoescape=True,  # every page, whatever its file name
            undefined=jinja2.StrictUndefined,
        )
        css = self._env.get_template("style.css").render(
            accent=branding.accent_color,
            accent_fg=text_on(branding.accent_color),
            accent_dark=branding.accent_color_dark,
            accent_dark_fg=text_on(branding.accent_color_dark),
        )
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        self._csp = (
            f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'self' data:; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        )
        self._env.globals.update(
            brand=branding,
            stylesheet=Markup(css),  # noqa: S704 (our own template, rendered from checked colours)
            scope_text=SCOPE_TEXT,
        )

    def headers(self, form_targets: Iterable[str] = ()) -> dict[str, str]:
        sources = {s for s in map(form_action_source, form_targets) if s is not None}
        return {
            "Content-Security-Policy": " ".join([self._csp, *sorted(sources)]),
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }

    def render(
        self, name: str, status: int = 200, form_targets: Iterable[str] = (), **context: Any
    ) -> Response:
        body = self._env.get_template(name).render(**context)
        return Response(
            body,
            status=status,
            headers=self.headers(form_targets),
            content_type="text/html; charset=utf-8",
        )


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
