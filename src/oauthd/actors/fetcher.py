"""The Fetcher: one actor per tenant that fetches documents clients publish: a client's
`jwks_uri` (RFC 7591 §2, RFC 7523 §3) and Client ID Metadata Documents (a `client_id` that
is an https URL, draft-ietf-oauth-client-id-metadata-document). It is the only place a client
makes this server send an HTTP request, so the limits live here: https only, no redirects,
a time limit for the whole fetch and a size limit, only public addresses with the connection
pinned to the checked address (`outbound.py`), rate limits, and a small cache so that a busy
client costs one fetch per cache lifetime. Failures are never cached (CIMD-00 §4.4).

Rate limits (CIMD-00 §6.5, RATE-5): per client id (or jwks_uri), in all, and per host. The
per-host budget bounds how many new ids one host can make this server fetch; a refetch of a
client already registered by its document does not spend it, so made-up ids on a host
(each a 404) cannot use up the budget its real clients need to stay fresh.

It runs outside any shard's transaction: routes ask it first, then hand the document to the
client's actor (keys) or register it (metadata documents)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from oauthd.actors.outbound import (
    Bounded,
    ForbiddenAddress,
    OutboundError,
    bounded_request,
    pinned_transport,
)
from oauthd.errors import InvalidClient, TemporarilyUnavailable
from oauthd.oauth.client_id_metadata import cache_lifetime_s, parse_metadata_document
from oauthd.oauth.rfc7591_registration import ClientMetadata
from oauthd.oauth.scopes import known_scopes
from oauthd.runtime import Address, Clock, Limiter, Query
from oauthd.settings import Settings

__all__ = [
    "DocumentUnreachable",
    "FetchClientMetadata",
    "FetchJwks",
    "FetchedDocument",
    "Fetcher",
    "fetcher_address",
]

MAX_JWKS_BYTES = 64_000
JWKS_TTL_S = 300.0  # a client's key set is fetched again after this
MIN_REFETCH_S = 30.0  # a `fresh` request (unknown kid) refetches at most this often
JWKS_CACHE_SIZE = 256
WINDOW_S = 60.0  # the client_metadata.fetches_* limits are per minute


class DocumentUnreachable(InvalidClient):
    """The client's host did not answer (connection, TLS or time-out failure, HTTP 5xx or 429):
    a failure that may pass, unlike a document that is gone or invalid. Only this one (and a
    fetch refused by a budget) lets a registered document client go on from its stored copy."""


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    """A valid document's registration, and until when it is fresh (its cache lifetime)."""

    metadata: ClientMetadata
    fresh_until: int


@dataclass(frozen=True, slots=True)
class FetchJwks(Query[str]):
    """Query: the JWK set document at `uri`, as text. `fresh` asks for a copy newer than the
    cached one (the client may have rotated its keys), within MIN_REFETCH_S."""

    uri: str
    fresh: bool = False


@dataclass(frozen=True, slots=True)
class FetchClientMetadata(Query[FetchedDocument]):
    """Query: the validated registration that the metadata document at `client_id` declares,
    as a FetchedDocument; InvalidClient if it cannot be fetched or is not a valid document for
    that URL. `registered`: the client has a stored registration (a refetch), which does not
    spend its host's budget."""

    client_id: str
    registered: bool = False


def fetcher_address(tenant: str) -> Address:
    return Address(tenant, "fetcher", "documents")


class Fetcher:
    def __init__(self, settings: Settings, clock: Clock, transport: Any = None) -> None:
        self._settings = settings
        self._limits = settings.client_metadata
        self._scopes = known_scopes(settings)
        self._id_token_algorithms = settings.keys.signing_algorithms
        self._clock = clock
        self._transport: httpx.AsyncBaseTransport | None = transport
        self._http: httpx.AsyncClient | None = None
        self._jwks: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._documents: OrderedDict[str, FetchedDocument] = OrderedDict()
        # The same per-process limiter as the front door's [limits] (GCRA, bounded keys).
        max_keys = settings.limits.max_tracked_keys
        self._per_host = Limiter(
            self._limits.fetches_per_host_per_minute, WINDOW_S, clock, max_keys
        )
        self._in_all = Limiter(self._limits.fetches_per_minute, WINDOW_S, clock)
        self._per_client = Limiter(
            self._limits.fetches_per_client_per_minute, WINDOW_S, clock, max_keys
        )

    async def open(self) -> None:
        transport = self._transport or pinned_transport(self._limits.allow_networks)
        self._http = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,  # CIMD-01 §4: redirects are never followed
            trust_env=False,
            timeout=httpx.Timeout(self._limits.timeout_s),
            headers={"Accept": "application/json"},
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def receive(self, message: Any) -> Any:
        if isinstance(message, FetchJwks):
            return await self._fetch_jwks(message)
        if isinstance(message, FetchClientMetadata):
            return await self._fetch_document(message.client_id, message.registered)
        raise TypeError(f"unsupported message {type(message).__name__}")

    async def _fetch_jwks(self, message: FetchJwks) -> str:
        now = self._clock.now()
        cached = self._jwks.get(message.uri)
        if cached is not None:
            age = now - cached[0]
            if age < (MIN_REFETCH_S if message.fresh else JWKS_TTL_S):
                self._jwks.move_to_end(message.uri)
                return cached[1]
        response = await self._get(message.uri, MAX_JWKS_BYTES, "jwks_uri")
        if response.status != 200:
            raise InvalidClient(
                "the client's jwks_uri cannot be fetched",
                detail=f"{message.uri}: HTTP {response.status}",
            )
        try:
            text = response.body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidClient("the client's jwks_uri document is not UTF-8") from None
        _remember(self._jwks, message.uri, (now, text), JWKS_CACHE_SIZE)
        return text

    async def _fetch_document(self, client_id: str, registered: bool) -> FetchedDocument:
        now = self._clock.now()
        cached = self._documents.get(client_id)
        if cached is not None and now < cached.fresh_until:
            self._documents.move_to_end(client_id)
            return cached
        limits = self._limits
        response = await self._get(
            client_id, limits.max_bytes, "metadata document", per_host=not registered
        )
        if response.status >= 500 or response.status == 429:
            raise DocumentUnreachable(
                "the client's metadata document cannot be fetched",
                detail=f"{client_id}: HTTP {response.status}",
            )
        metadata = parse_metadata_document(
            client_id,
            response.status,
            response.content_type,
            response.body,
            lambda scope: all(s in self._scopes for s in scope),
            self._id_token_algorithms,
        )
        lifetime = cache_lifetime_s(
            response.cache_control,
            default_s=limits.cache_default_s,
            min_s=limits.cache_min_s,
            max_s=limits.cache_max_s,
        )
        fetched = FetchedDocument(metadata, int(now + lifetime))
        if lifetime > 0:
            _remember(self._documents, client_id, fetched, limits.cache_entries)
        else:
            self._documents.pop(client_id, None)
        return fetched

    def _admit(self, host: str, key: str, *, per_host: bool) -> None:
        """Rate limits: per `key` (a client id or jwks_uri), in all, and per host unless
        `per_host` is False (a registered client's refetch). 503, not 429: the host or the
        client is over its budget, not necessarily the caller."""
        hosts = (host,) if per_host else ()
        wait = max(
            self._per_client.blocked(key) or 0,
            self._per_host.blocked(*hosts) or 0,
            self._in_all.blocked("all") or 0,
        )
        if wait:
            raise TemporarilyUnavailable(
                "too many requests to this client's host; try again in a minute",
                detail=host,
                retry_after_s=wait,
            )
        self._per_client.record(key)
        self._per_host.record(*hosts)
        self._in_all.record("all")

    async def _get(self, uri: str, max_bytes: int, what: str, *, per_host: bool = True) -> Bounded:
        parts = urlsplit(uri)
        if parts.scheme != "https" or not parts.hostname:
            raise InvalidClient(f"the client's {what} must be an https URL")
        self._admit(parts.hostname, uri, per_host=per_host)
        assert self._http is not None, "fetcher used before open()"
        try:
            return await bounded_request(
                self._http,
                "GET",
                uri,
                max_bytes=max_bytes,
                timeout_s=self._limits.timeout_s,
                body_only_if_ok=True,
            )
        except ForbiddenAddress as exc:
            raise InvalidClient(
                f"the client's {what} must be on a public address", detail=str(exc)
            ) from None
        except OutboundError as exc:
            raise DocumentUnreachable(
                f"the client's {what} cannot be fetched", detail=str(exc)
            ) from None


def _remember(cache: OrderedDict[str, Any], key: str, value: Any, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > max(size, 1):
        cache.popitem(last=False)
