"""Rate limits at the front door: who is asking (the client IP), and one way to refuse.

Every limit is a `runtime.Limiter` configured in `[limits]`, made when its route is registered,
so it lives in this process only (N workers admit N times the rate). Keys are prefixed strings
(`ip:…`, `client:…`, `account:…`, `browser:…`); each limiter forgets its least recently seen
key past `limits.max_tracked_keys`, so an attacker rotating addresses or client ids costs a
bounded amount of memory.

The client IP is the TCP peer's address. Only when the peer is one of `limits.trusted_proxies`
is X-Forwarded-For read, from the right: each trusted proxy appended the address it saw, so
the rightmost address that is not a trusted proxy is the client; whatever lies left of it was
written by the client and is never believed. IPv6 clients are keyed by their /64, the block
one subscriber gets, so rotating addresses inside it does not buy a fresh budget.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import TypeVar

from quart import request

from oauthd.audit import audit
from oauthd.errors import OAuthError, TooManyRequests
from oauthd.runtime import Limiter
from oauthd.settings import Rate
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = [
    "ClientAuthFailures",
    "client_ip",
    "ip_key",
    "ip_key_of",
    "limiter",
    "request_ip",
    "throttle",
    "trusted_peer",
]

T = TypeVar("T")

KEYS_CACHED = 4096  # client IP keys remembered (web/throttle.py: _client_key)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def limiter(state: AppState, rate: Rate) -> Limiter:
    return Limiter(
        rate.requests, rate.window_s, state.clock, max_keys=state.settings.limits.max_tracked_keys
    )


def throttle(limit: Limiter, *keys: str, what: str = "too many requests") -> None:
    """Count one request for each key, or refuse with 429 and Retry-After (RFC 6585 §4)."""
    wait = limit.hit(*keys)
    if wait is not None:
        raise TooManyRequests(f"{what}; try again later", retry_after_s=wait)


class ClientAuthFailures:
    """Failed client authentication (OAuth 2.1 §2.4.1, RATE-3), counted per source IP and
    client_id: past the limit, that source is refused for that client before the client's
    actor is asked, so a throttled request never spends a code or a device code.

    Anyone can name a client, and a public one fails for any client_secret sent, so a source
    is refused only for its own failures: another address failing, however often, never
    refuses the holder of valid credentials. Each authentication counts as a failure while it
    is in flight, so guesses sent together cannot all slip in under the limit. Failures from
    all sources together are a signal only: an audit event when a client passes the limit."""

    def __init__(self, state: AppState) -> None:
        self._per_source = limiter(state, state.settings.limits.client_auth_failures)
        self._per_client = limiter(state, state.settings.limits.client_auth_failures)

    @classmethod
    def shared(cls, app: RouteTable, state: AppState) -> ClientAuthFailures:
        """The app's one count: /token, /introspect, /revoke and /device_authorization
        authenticate clients alike, so their failures add up."""
        failures: ClientAuthFailures = app.extensions.setdefault(
            "oauthd.client_auth_failures", cls(state)
        )
        return failures

    async def attempt(self, source: str, client_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call` (which authenticates `client_id`) unless `source`, the rate-limit key
        of the request's IP, is throttled for this client; an invalid_client answer counts as
        a failure, any other answer gives the attempt back."""
        attempt = await self._per_source.reserve(f"{source} client:{client_id}")
        if isinstance(attempt, int):
            raise TooManyRequests(
                "too many failed authentications for this client; try again later",
                retry_after_s=attempt,
            )
        with attempt:
            try:
                result = await call()
            except OAuthError as exc:
                if exc.code == "invalid_client":
                    self._signal(client_id)
                else:
                    attempt.succeeded()  # authenticated, or never judged (a full mailbox)
                raise
            attempt.succeeded()
        return result

    def _signal(self, client_id: str) -> None:
        """Audit the moment failures from all sources together pass the limit for a client."""
        key = f"client:{client_id}"
        was_under = self._per_client.blocked(key) is None
        self._per_client.record(key)
        if was_under and self._per_client.blocked(key) is not None:
            audit("client_auth_failures_exceeded", client_id=client_id)


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: Address, trusted: tuple[str, ...]) -> bool:
    return any(address in n for n in _networks(trusted))


def trusted_peer(peer: str | None, trusted: tuple[str, ...]) -> bool:
    """Whether the TCP peer is one of `limits.trusted_proxies`, whose forwarding headers
    (X-Forwarded-For here, X-Forwarded-Host at the tenant router) are believed."""
    address = _address(peer or "")
    return address is not None and _within(address, trusted)


def client_ip(peer: str | None, forwarded_for: str, trusted: tuple[str, ...]) -> str:
    """The client's IP: the peer, or behind trusted proxies the rightmost untrusted hop of
    X-Forwarded-For (RFC 7239 §5.2 describes the same walk for `Forwarded`)."""
    current = _address(peer or "")
    if current is None:
        return peer or "unknown"
    for hop in reversed(forwarded_for.split(",") if forwarded_for else []):
        if not _within(current, trusted):
            break  # `current` was not written by a proxy we trust: it is the client
        previous = _address(hop)
        if previous is None:
            break  # a malformed hop: stop at the last address a trusted proxy vouched for
        current = previous
    return str(current)


def ip_key(ip: str) -> str:
    """The rate-limit key of an IP: IPv4 as it is, IPv6 by its /64."""
    address = _address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        return f"ip:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"ip:{address or ip}"


def ip_key_of(state: AppState, peer: str | None, forwarded_for: str) -> str:
    """The rate-limit key of a request's client IP, from its peer address and its
    X-Forwarded-For values (read only when the peer is a trusted proxy)."""
    trusted = state.settings.limits.trusted_proxies
    return _client_key(peer, forwarded_for if trusted else "", trusted)


@lru_cache(maxsize=KEYS_CACHED)
def _client_key(peer: str | None, forwarded_for: str, trusted: tuple[str, ...]) -> str:
    """`ip_key(client_ip(...))`, a pure function of its arguments, remembered: parsing the
    addresses was ~10% of a token request's CPU, for the same few peers over and over. A
    bounded LRU, so addresses that rotate only cost evictions."""
    return ip_key(client_ip(peer, forwarded_for, trusted))


def request_ip(state: AppState) -> str:
    """The rate-limit key of the current (Quart) request's client IP."""
    forwarded = ",".join(request.headers.getlist("X-Forwarded-For"))
    return ip_key_of(state, request.remote_addr, forwarded)
