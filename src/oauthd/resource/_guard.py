"""The guard: from a request's Authorization header to validated claims, or to the RFC 6750
challenge that answers it; and the RFC 9728 metadata document the challenge points to."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

import httpx

from oauthd.errors import OAuthError
from oauthd.oauth.rfc6750_bearer import (
    InsufficientScope,
    InvalidToken,
    bearer_challenge,
    read_bearer,
)
from oauthd.oauth.rfc9068_access_token import AccessTokenClaims
from oauthd.resource._config import ResourceConfig
from oauthd.resource._introspection import Introspector
from oauthd.resource._local import LocalVerifier

__all__ = ["JSON", "NOSNIFF", "SCOPE_KEY", "Reply", "ResourceGuard"]

SCOPE_KEY = "oauthd.token"  # where the middleware puts the claims in the ASGI scope
log = logging.getLogger("oauthd.resource")
JSON = ("content-type", "application/json")
NOSNIFF = ("x-content-type-options", "nosniff")  # on every reply, as oauthd's own
# Browser-based MCP clients read the challenge and the metadata across origins.
EXPOSE = ("access-control-expose-headers", "WWW-Authenticate")


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer the guard gives instead of the protected app."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class ResourceGuard:
    """Validates oauthd access tokens for one resource (see `ResourceConfig`).

    Use it as an async context manager, or call `aclose()`, to close the HTTP client it made;
    an `http` client passed in is left to its owner."""

    def __init__(self, config: ResourceConfig, *, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=config.http_timeout_s)
        self._verifier = (
            LocalVerifier(config, self._http)
            if config.mode == "local"
            else Introspector(config, self._http)
        )
        self._metadata = json.dumps(config.metadata(), separators=(",", ":")).encode()

    async def __aenter__(self) -> ResourceGuard:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def check(
        self,
        authorization: str | None,
        query_token: str | None,
        path: str,
        scopes: Iterable[str] = (),
    ) -> AccessTokenClaims | Reply:
        """The claims of a valid token with every scope that `path` (and `scopes`) need, or
        the reply to send. The token comes from the header only (RFC 6750 §2.1, OAuth 2.1 §5.1)."""
        try:
            token = read_bearer(authorization, None, query_token)
            if token is None:
                return self.challenge(None)
            claims = await self._verifier.verify(token)
            if self.config.require_user and claims.is_client_only:
                raise InvalidToken("this resource needs a token issued for a person")
        except OAuthError as exc:
            return self.challenge(exc)
        return self.require(claims, path, scopes)

    def require(
        self, claims: AccessTokenClaims, path: str, scopes: Iterable[str] = ()
    ) -> AccessTokenClaims | Reply:
        """RFC 6750 §3.1 insufficient_scope, naming every scope the request needs."""
        needed = tuple(dict.fromkeys((*self.config.required_scopes(path), *scopes)))
        if any(s not in claims.scope for s in needed):
            return self.challenge(InsufficientScope(" ".join(needed)))
        return claims

    def challenge(self, error: OAuthError | None) -> Reply:
        """RFC 6750 §3 with `resource_metadata` (RFC 9728 §5.1); no error attribute when no
        token was sent (OAuth 2.1 §5.3.2). An unreachable oauthd is a 503, not a bad token."""
        if error is not None and error.detail:
            log.info("refused a request: %s", error)
        status = error.status if error is not None else 401
        body = {"error": error.code, "error_description": error.description} if error else {}
        headers = [JSON, NOSNIFF, ("cache-control", "no-store"), EXPOSE]
        if error is not None:
            headers += [(k.lower(), v) for k, v in error.headers().items()]
        if status < 500:
            value = bearer_challenge(self.config.resource, self.config.metadata_url, error)
            headers.append(("www-authenticate", value))
        return Reply(status, tuple(headers), json.dumps(body).encode())

    def metadata(self) -> Reply:
        """RFC 9728 §3.2: the protected resource metadata document."""
        headers = (
            JSON,
            NOSNIFF,
            ("cache-control", "public, max-age=300"),
            ("access-control-allow-origin", "*"),
        )
        return Reply(200, headers, self._metadata)
