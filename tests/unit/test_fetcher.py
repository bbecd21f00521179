"""The Fetcher's SSRF defences and limits: client-supplied URLs reach public addresses only,
over a connection pinned to the address that was checked, within a time limit."""

from __future__ import annotations

import ssl
from typing import Any

import httpcore
import pytest
import trio
import trustme

from oauthd.actors.fetcher import FetchClientMetadata, Fetcher, FetchJwks
from oauthd.actors.outbound import (
    ForbiddenAddress,
    PinnedBackend,
    is_public_address,
    pinned_transport,
)
from oauthd.errors import InvalidClient
from oauthd.runtime import TrioClock
from oauthd.settings import ClientMetadataSettings, settings_for_tests
from tests.document_host import Served, resolver_for, start_document_host

FORBIDDEN = [
    "127.0.0.1",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104 (an address under test, not a bind)
    "fc00::1",
    "fe80::1",
    "224.0.0.1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "2002:7f00:1::",  # 6to4 around 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
    "64:ff9b:1::7f00:1",  # RFC 8215 local-use NAT64 around 127.0.0.1
    "64:ff9b:1:ab:cd::a9fe:a9fe",  # local-use NAT64 (a /96 inside the /48) around 169.254.169.254
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_special_use_addresses_are_not_public(address: str) -> None:
    """CIMD-8: loopback, private, shared, link-local, multicast and wrapped forms are refused."""
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "2606:4700::6810:84e5", "::ffff:8.8.8.8", "64:ff9b:1::808:808"]
)
def test_global_addresses_are_public(address: str) -> None:
    """CIMD-8: a globally routable address may be fetched."""
    assert is_public_address(address)


def test_allowed_networks_are_exempt() -> None:
    """The allow-list (client_metadata.allow_networks) admits a listed network only."""
    import ipaddress

    allowed = [ipaddress.ip_network("127.0.0.0/30")]
    assert is_public_address("127.0.0.2", allowed)
    assert not is_public_address("127.0.0.9", allowed)


class SpyBackend(httpcore.AsyncNetworkBackend):
    """Records where connections go; never touches the network."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connected.append(host)
        raise httpcore.ConnectError("spy")


async def test_the_connection_goes_to_the_checked_address_not_a_second_lookup() -> None:
    """CIMD-8 DNS rebinding: the name is resolved once; the connection is to that address,
    even when a later lookup would answer a forbidden one."""
    answers = [["93.184.215.14"], ["127.0.0.1"]]
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return answers[min(len(lookups), 2) - 1]

    spy = SpyBackend()
    backend = PinnedBackend([], rebinding, inner=spy)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebind.test", 443)
    assert spy.connected == ["93.184.215.14"]
    assert lookups == ["rebind.test"]
    with pytest.raises(ForbiddenAddress):
        await backend.connect_tcp("rebind.test", 443)  # the second answer is checked too
    assert spy.connected == ["93.184.215.14"]


async def test_a_forbidden_answer_never_reaches_connect() -> None:
    """CIMD-8: every resolved address must be public; none is connected to otherwise."""
    spy = SpyBackend()
    backend = PinnedBackend([], resolver_for({"x.test": ["93.184.215.14", "10.0.0.1"]}), inner=spy)
    with pytest.raises(ForbiddenAddress):
        await backend.connect_tcp("x.test", 443)
    assert spy.connected == []


async def test_the_fetcher_refuses_a_loopback_jwks_uri_and_plain_http() -> None:
    """The real-network Fetcher checks the host, and only https is fetched at all."""
    fetcher = Fetcher(settings_for_tests(), TrioClock())
    await fetcher.open()
    try:
        for uri in ("https://127.0.0.1:1/jwks.json", "http://keys.example/jwks.json"):
            with pytest.raises(InvalidClient):
                await fetcher.receive(FetchJwks(uri, fresh=False))
    finally:
        await fetcher.close()


async def test_a_stalled_document_times_out(autojump_clock: trio.testing.MockClock) -> None:
    """CIMD-9: a host that sends headers and then nothing is given up after timeout_s, the
    whole fetch counted (a trickle of bytes cannot extend it)."""
    ca = trustme.CA()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    limits = ClientMetadataSettings(timeout_s=3.0, allow_networks=("127.0.0.1/32",))
    async with trio.open_nursery() as nursery:
        host = await start_document_host(nursery, ca)
        host.routes["/slow.json"] = Served(stall=True)
        resolver = resolver_for({"cimd.test": ["127.0.0.1"]})
        transport = pinned_transport(limits.allow_networks, ssl_context=context, resolver=resolver)
        fetcher = Fetcher(settings_for_tests(client_metadata=limits), TrioClock(), transport)
        await fetcher.open()
        started = trio.current_time()
        with pytest.raises(InvalidClient, match="cannot be fetched"):
            await fetcher.receive(FetchClientMetadata(host.url("/slow.json")))
        assert 3.0 <= trio.current_time() - started < 3.5
        await fetcher.close()
        nursery.cancel_scope.cancel()
