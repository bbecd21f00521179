"""The issuer's authorization server metadata (RFC 8414), fetched once and kept."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["FetchFailed", "IssuerMetadata", "get_json"]

AS_WELL_KNOWN = "/.well-known/oauth-authorization-server"


class FetchFailed(Exception):
    """oauthd could not be asked, or answered something unusable; the detail is for the log."""


async def get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        raise FetchFailed(f"GET {url}: {exc!r}") from exc
    if not isinstance(body, dict):
        raise FetchFailed(f"GET {url}: status {response.status_code}, not a JSON object")
    return body


class IssuerMetadata:
    """RFC 8414 §3: the document at the issuer's well-known URL, kept after the first success."""

    __slots__ = ("_document", "_http", "issuer")

    def __init__(self, issuer: str, http: httpx.AsyncClient) -> None:
        self.issuer = issuer
        self._http = http
        self._document: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        """RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path."""
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}{AS_WELL_KNOWN}{parts.path.rstrip('/')}"

    async def endpoint(self, name: str) -> str:
        """An endpoint URL named in the metadata, e.g. `jwks_uri`."""
        if self._document is None:
            document = await get_json(self._http, self.url)
            # RFC 8414 §3.3: the issuer in the document MUST be the one it was fetched for.
            if document.get("issuer") != self.issuer:
                raise FetchFailed(f"metadata at {self.url} names another issuer")
            self._document = document
        value = self._document.get(name)
        if not isinstance(value, str) or not value:
            raise FetchFailed(f"the issuer's metadata has no {name}")
        return value
