"""Local validation of JWT access tokens (RFC 9068 §4) with the issuer's JWKS, cached for a
bounded time and fetched again on an unknown kid at most once per interval."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import anyio
import httpx

from oauthd.decoding import parse_json_segment
from oauthd.errors import TemporarilyUnavailable
from oauthd.keys import ALGORITHMS, Keyring, TokenInvalid, build_keyring
from oauthd.oauth.rfc6750_bearer import InvalidToken
from oauthd.oauth.rfc9068_access_token import AccessTokenClaims, check_access_token
from oauthd.resource._config import ResourceConfig
from oauthd.resource._metadata import FetchFailed, IssuerMetadata, get_json

__all__ = ["LocalVerifier"]

log = logging.getLogger("oauthd.resource")
KEY_TYPES = ("EC", "RSA", "OKP")  # asymmetric only: a JWKS never carries a shared secret


class LocalVerifier:
    """Checks signature, typ, iss, aud and exp itself; asks oauthd only for its keys."""

    __slots__ = ("_attempted_at", "_config", "_fetched_at", "_http", "_keyring", "_lock", "_meta")

    def __init__(self, config: ResourceConfig, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http
        self._meta = IssuerMetadata(config.issuer, http)
        self._keyring: Keyring | None = None
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._lock = anyio.Lock()

    async def verify(self, token: str) -> AccessTokenClaims:
        keyring = await self._keyring_for(_kid(token))
        try:
            header, claims = keyring.verify(token)
        except TokenInvalid:
            raise InvalidToken("the access token is invalid") from None
        c = self._config
        return check_access_token(header, claims, issuer=c.issuer, audience=c.resource, now=c.now())

    def _fresh(self, now: float) -> bool:
        return self._keyring is not None and now - self._fetched_at < self._config.jwks_max_age_s

    async def _keyring_for(self, kid: str) -> Keyring:
        keyring = self._keyring
        if keyring is not None and kid in keyring.kids and self._fresh(self._config.now()):
            return keyring
        async with self._lock:  # one fetch at a time; waiters see its result
            now = self._config.now()
            known = self._keyring is not None and kid in self._keyring.kids
            due = now - self._attempted_at >= self._config.jwks_refetch_interval_s
            if not (known and self._fresh(now)) and due:
                self._attempted_at = now
                try:
                    self._keyring = await self._fetch()
                    self._fetched_at = now
                except FetchFailed as exc:
                    log.warning("cannot fetch the issuer's JWKS: %s", exc)
            if self._keyring is None or not self._fresh(now):
                raise TemporarilyUnavailable("the authorization server's keys are unavailable")
            return self._keyring

    async def _fetch(self) -> Keyring:
        jwks = await get_json(self._http, await self._meta.endpoint("jwks_uri"))
        keys = jwks.get("keys")
        if not isinstance(keys, list):
            raise FetchFailed("the JWKS has no keys array")
        rows = [row for row in map(_row, keys) if row is not None and _importable(row)]
        return build_keyring(rows, None, None)


def _row(jwk: Any) -> tuple[str, str, str, str] | None:
    """(kid, alg, public JWK, no private part) for a public signing key, else None."""
    if not isinstance(jwk, dict) or jwk.get("kty") not in KEY_TYPES or "d" in jwk:
        return None
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or alg not in ALGORITHMS or jwk.get("use", "sig") != "sig":
        return None
    return kid, str(alg), json.dumps(jwk), ""


def _importable(row: tuple[str, str, str, str]) -> bool:
    try:
        build_keyring([row], None, None)
    except Exception:  # joserfc's errors are named only inside oauthd.keys
        log.warning("skipping JWK %s: it cannot be imported", row[0])
        return False
    return True


def _kid(token: str) -> str:
    """The kid of a compact JWS header, so the cache can tell a new key from a known one."""
    try:
        kid = parse_json_segment(token.split(".", 1)[0]).get("kid")
    except ValueError:
        raise InvalidToken("the access token is invalid") from None
    if not isinstance(kid, str):
        raise InvalidToken("the access token is invalid")
    return kid
