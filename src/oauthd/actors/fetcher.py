"""The Fetcher: one actor per tenant that fetches documents clients publish, today a client's
`jwks_uri` (RFC 7591 §2, RFC 7523 §3). It is the only place a client makes this server send
an HTTP request, so the limits live here: https only, no redirects, a time limit and a size
limit, and a small cache so that a busy client costs one fetch per CACHE_TTL_S.

It runs outside any shard's transaction: the token route asks it first, then hands the
document to the client's actor with the credentials."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

from oauthd.errors import InvalidClient
from oauthd.runtime import Address, Clock

__all__ = ["FetchJwks", "Fetcher", "fetcher_address"]

TIMEOUT_S = 5.0
MAX_BYTES = 64_000
CACHE_TTL_S = 300.0  # a client's key set is fetched again after this
MIN_REFETCH_S = 30.0  # a `fresh` request (unknown kid) refetches at most this often
CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class FetchJwks:
    """Query: the JWK set document at `uri`, as text. `fresh` asks for a copy newer than the
    cached one (the client may have rotated its keys), within MIN_REFETCH_S."""

    uri: str
    fresh: bool = False


def fetcher_address(tenant: str) -> Address:
    return Address(tenant, "fetcher", "documents")


async def check_public_host(host: str, port: int) -> None:
    """SSRF defence: a client-supplied URL may only reach public addresses, never loopback,
    private, link-local or reserved ones (the metadata service of a cloud host, say). The
    name is resolved here and every address it resolves to must be global. (A name that
    re-resolves differently between this check and the connection is not caught.)"""
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    except OSError:
        raise InvalidClient("the client's jwks_uri host does not resolve") from None
    for *_, sockaddr in infos:
        if not ipaddress.ip_address(sockaddr[0]).is_global:
            raise InvalidClient(
                "the client's jwks_uri must be on a public address", detail=f"{host}: {sockaddr[0]}"
            )


class Fetcher:
    def __init__(self, clock: Clock, transport: Any = None) -> None:
        self._clock = clock
        self._transport: httpx.AsyncBaseTransport | None = transport
        self._http: httpx.AsyncClient | None = None
        self._cache: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def open(self) -> None:
        self._http = httpx.AsyncClient(
            transport=self._transport,
            follow_redirects=False,
            timeout=httpx.Timeout(TIMEOUT_S),
            headers={"Accept": "application/json"},
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def receive(self, message: Any) -> Any:
        if not isinstance(message, FetchJwks):
            raise TypeError(f"unsupported message {type(message).__name__}")
        now = self._clock.now()
        cached = self._cache.get(message.uri)
        if cached is not None:
            age = now - cached[0]
            if age < (MIN_REFETCH_S if message.fresh else CACHE_TTL_S):
                self._cache.move_to_end(message.uri)
                return cached[1]
        text = await self._fetch(message.uri)
        self._cache[message.uri] = (now, text)
        self._cache.move_to_end(message.uri)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return text

    async def _fetch(self, uri: str) -> str:
        parts = urlsplit(uri)
        if parts.scheme != "https" or not parts.hostname:
            raise InvalidClient("the client's jwks_uri must be https")
        if self._transport is None:  # the real network (tests bring their own transport)
            await check_public_host(parts.hostname, parts.port or 443)
        assert self._http is not None, "fetcher used before open()"
        try:
            async with self._http.stream("GET", uri) as response:
                if response.status_code != 200:
                    raise InvalidClient(
                        "the client's jwks_uri cannot be fetched",
                        detail=f"{uri}: HTTP {response.status_code}",
                    )
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise InvalidClient("the client's jwks_uri document is too large")
        except httpx.HTTPError as exc:
            raise InvalidClient(
                "the client's jwks_uri cannot be fetched", detail=f"{uri}: {exc!r}"
            ) from None
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidClient("the client's jwks_uri document is not UTF-8") from None
