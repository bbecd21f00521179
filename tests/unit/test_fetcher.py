"""The Fetcher's SSRF defences: client-supplied URLs reach public addresses only."""

from __future__ import annotations

import pytest

from oauthd.actors.fetcher import Fetcher, FetchJwks, check_public_host
from oauthd.errors import InvalidClient
from oauthd.runtime import TrioClock


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]"])
async def test_non_public_hosts_are_refused_before_any_connection(host: str) -> None:
    """A jwks_uri naming loopback, private or link-local addresses is invalid_client."""
    with pytest.raises(InvalidClient):
        await check_public_host(host.strip("[]"), 443)


async def test_the_fetcher_refuses_a_loopback_jwks_uri_and_plain_http() -> None:
    """The real-network Fetcher checks the host, and only https is fetched at all."""
    fetcher = Fetcher(TrioClock())
    await fetcher.open()
    try:
        for uri in ("https://127.0.0.1:1/jwks.json", "http://keys.example/jwks.json"):
            with pytest.raises(InvalidClient):
                await fetcher.receive(FetchJwks(uri, fresh=False))
    finally:
        await fetcher.close()
