"""Outbound HTTPS to URLs that clients choose (metadata documents, jwks_uri), pinned to the
addresses that were checked (SSRF defence, CIMD-00 §6.5, RFC 9700 §4.15).

The host name is resolved once, here; every address it resolves to must be public (or in
the configured allow-list), and the TCP connection is made to one of those same addresses.
TLS still verifies the certificate for the name and sends it as SNI, and the Host header is
the name, so nothing changes for the server; but a name that resolves to a public address
for the check and to 127.0.0.1 for the connection (DNS rebinding) has no second resolution
to exploit. Proxies from the environment are ignored: a proxy would resolve the name itself.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
import trio

__all__ = [
    "Bounded",
    "ForbiddenAddress",
    "OutboundError",
    "PinnedBackend",
    "Resolver",
    "bounded_request",
    "is_public_address",
    "pinned_transport",
    "resolve",
]

Resolver = Callable[[str, int], Awaitable[list[str]]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# RFC 6052 well-known NAT64 prefix and RFC 8215 local-use block: an IPv4 address in disguise.
# A local-use deployment picks its own prefix inside the /48; the address is judged by its
# last 32 bits as for the /96 prefix (the layout every NAT64 deployment seen uses).
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class ForbiddenAddress(Exception):
    """The name resolves to an address this server does not fetch from."""

    def __init__(self, host: str, addresses: Iterable[str]) -> None:
        super().__init__(f"{host} resolves to {', '.join(addresses)}")
        self.host = host


async def resolve(host: str, port: int) -> list[str]:
    """Every address of `host`, in the resolver's order, without duplicates."""
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))


def is_public_address(address: str, allowed: Iterable[Network] = ()) -> bool:
    """Globally routable unicast, or inside an allowed network. An IPv6 address that carries
    an IPv4 one (mapped `::ffff:127.0.0.1`, 6to4, NAT64) is judged by the IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if any(ip in network for network in allowed):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and any(ip in prefix for prefix in NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(str(embedded), allowed)
    return ip.is_global and not ip.is_multicast


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to checked addresses of a name."""

    def __init__(
        self,
        allowed: Iterable[Network] = (),
        resolver: Resolver = resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allowed = tuple(allowed)
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolver(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from None
        # Every address must pass: a name that also points inside the network is not fetched.
        refused = [a for a in addresses if not is_public_address(a, self._allowed)]
        if refused or not addresses:
            raise ForbiddenAddress(host, refused)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class OutboundError(Exception):
    """An outbound request that gave no usable answer: no answer in time, a body over the
    limit, or a transport failure. The message is for the log only."""


@dataclass(frozen=True, slots=True)
class Bounded:
    status: int
    content_type: str | None
    cache_control: str | None
    body: bytes


async def bounded_request(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    body_only_if_ok: bool = False,
    **kwargs: Any,
) -> Bounded:
    """One request whose whole exchange takes at most `timeout_s` (a server that drips bytes
    cannot hold it open) and whose body may not pass `max_bytes`; the one way the outbound
    actors read an answer. `body_only_if_ok`: a non-200 body is not read at all.
    ForbiddenAddress (from a pinned transport) passes through; anything else is
    OutboundError."""
    try:
        with trio.fail_after(timeout_s):
            async with http.stream(method, url, **kwargs) as response:
                body = bytearray()
                if response.status_code == 200 or not body_only_if_ok:
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise OutboundError(f"{url}: response over {max_bytes} bytes")
                return Bounded(
                    response.status_code,
                    response.headers.get("content-type"),
                    response.headers.get("cache-control"),
                    bytes(body),
                )
    except trio.TooSlowError:
        raise OutboundError(f"{url}: no answer within {timeout_s} s") from None
    except httpx.HTTPError as exc:
        raise OutboundError(f"{url}: {type(exc).__name__}") from None


def pinned_transport(
    allow_networks: Iterable[str] = (),
    *,
    ssl_context: ssl.SSLContext | None = None,
    resolver: Resolver = resolve,
) -> httpx.AsyncBaseTransport:
    """An httpx transport whose connections go through PinnedBackend. `ssl_context` replaces
    the system's trust store (tests trust their own CA); `resolver` replaces DNS (tests)."""
    context = ssl_context or httpx.create_ssl_context()
    allowed = [ipaddress.ip_network(n) for n in allow_networks]
    transport = httpx.AsyncHTTPTransport(verify=context, trust_env=False)
    # httpx does not take a network backend; its pool is swapped for one that uses ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context,
        max_connections=32,
        max_keepalive_connections=8,
        keepalive_expiry=30.0,
        http1=True,
        http2=False,
        network_backend=PinnedBackend(allowed, resolver),
    )
    return transport
