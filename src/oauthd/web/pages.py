"""HTML pages: Jinja2 with autoescaping, and the headers every page sends (HTML-1, HTML-9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from quart import Response

__all__ = ["PAGE_HEADERS", "Pages"]

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


class Pages:
    def __init__(self, directory: Path = TEMPLATES) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory),
            autoescape=True,  # every page, whatever its file name
            undefined=jinja2.StrictUndefined,
        )

    def render(self, name: str, status: int = 200, **context: Any) -> Response:
        body = self._env.get_template(name).render(**context)
        return Response(
            body, status=status, headers=PAGE_HEADERS, content_type="text/html; charset=utf-8"
        )
