"""Validation by asking oauthd (RFC 7662): POST the token to its introspection endpoint with
this resource server's own client credentials and trust `active`.

Nothing is cached unless `introspection_cache_s` is set: then an active answer is reused for at
most that long (and never past the token's `exp`), so a revocation is seen within that time."""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import quote_plus

import httpx

from oauthd.errors import TemporarilyUnavailable
from oauthd.oauth.rfc6750_bearer import InvalidToken
from oauthd.oauth.rfc9068_access_token import AccessTokenClaims
from oauthd.oauth.token_liveness import has_expired
from oauthd.resource._config import ResourceConfig
from oauthd.resource._metadata import FetchFailed, IssuerMetadata

__all__ = ["Introspector"]

log = logging.getLogger("oauthd.resource")
CACHE_ENTRIES = 1024
ACCESS_TOKEN_TYPES = ("bearer", "access_token")  # never a refresh token (RFC 7662 §2.2)


class Introspector:
    __slots__ = ("_auth", "_cache", "_config", "_http", "_meta")

    def __init__(self, config: ResourceConfig, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http
        self._meta = IssuerMetadata(config.issuer, http)
        # RFC 6749 §2.3.1: both parts are form-encoded before they go into Basic.
        self._auth = httpx.BasicAuth(quote_plus(config.client_id), quote_plus(config.client_secret))
        self._cache: dict[bytes, tuple[AccessTokenClaims, float]] = {}

    async def verify(self, token: str) -> AccessTokenClaims:
        now = self._config.now()
        key = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(key)
        if cached is not None and now < cached[1]:
            return cached[0]
        at = self._check(await self._introspect(token), now)
        if self._config.introspection_cache_s > 0:
            self._remember(key, at, min(now + self._config.introspection_cache_s, at.exp), now)
        return at

    async def _introspect(self, token: str) -> dict[str, Any]:
        try:
            endpoint = self._config.introspection_endpoint or await self._meta.endpoint(
                "introspection_endpoint"
            )
            response = await self._http.post(
                endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
                headers={"Accept": "application/json"},
            )
            body = response.json() if response.status_code == 200 else None
        except (FetchFailed, httpx.HTTPError, ValueError) as exc:
            log.warning("introspection failed: %r", exc)
            raise TemporarilyUnavailable("the authorization server cannot be asked") from None
        if not isinstance(body, dict):
            log.warning("introspection answered %s", response.status_code)
            raise TemporarilyUnavailable("the authorization server cannot be asked")
        return body

    def _check(self, answer: dict[str, Any], now: float) -> AccessTokenClaims:
        """RFC 7662 §2.2: `active` decides; the rest must still be ours and current."""
        c = self._config
        if answer.get("active") is not True:
            raise InvalidToken("the access token is not active")
        if str(answer.get("token_type", "bearer")).lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("not an access token")
        if answer.get("iss", c.issuer) != c.issuer:
            raise InvalidToken("access token from another issuer")
        aud = answer.get("aud")
        audiences = tuple(aud) if isinstance(aud, list) else (aud,)
        if c.resource not in audiences:  # RFC 9700 §2.3: only tokens meant for this resource
            raise InvalidToken("access token is for another audience")
        exp, iat = answer.get("exp"), answer.get("iat", 0)
        if not isinstance(exp, int) or not isinstance(iat, int) or has_expired(exp, now):
            raise InvalidToken("access token expired")
        scope = answer.get("scope", "")
        return AccessTokenClaims(
            sub=str(answer.get("sub", "")),
            client_id=str(answer.get("client_id", "")),
            scope=tuple(scope.split()) if isinstance(scope, str) else (),
            aud=tuple(str(a) for a in audiences),
            jti=str(answer.get("jti", "")),
            iat=iat,
            exp=exp,
        )

    def _remember(self, key: bytes, at: AccessTokenClaims, until: float, now: float) -> None:
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            while len(self._cache) >= CACHE_ENTRIES:
                del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[key] = (at, until)
