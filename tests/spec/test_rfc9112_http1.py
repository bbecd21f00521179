"""RFC 9112 (HTTP/1.1 message syntax and connections) at oauthd's native engine, in raw bytes
over a socket to a real `oauthd serve`: persistence, pipelining, framing, limits (ERR-3),
timeouts, and every request-smuggling vector refused with a 400 and the connection closed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import trio

from oauthd.settings import ServerSettings, Settings
from tests.conftest import Server, running_server
from tests.raw_http import RawClient, one_shot

GET = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: a\r\n\r\n"
# The keep-alive timeout is far above the read guard of tests/raw_http.py, so a connection
# the server should have closed is never mistaken for one it dropped for idleness.
KEEP_OPEN = ServerSettings(keep_alive_s=60.0)


@pytest.fixture
async def native(make_settings: Callable[..., Settings]) -> AsyncIterator[Server]:
    async with running_server(make_settings(server=KEEP_OPEN)) as s:
        yield s


@asynccontextmanager
async def connected(
    make_settings: Callable[..., Settings], **server: Any
) -> AsyncIterator[RawClient]:
    """A connection to a server whose `[server]` table is `server` (timeout tests)."""
    async with running_server(make_settings(server=ServerSettings(**server))) as running:
        client = await RawClient.connect(running.base_url)
        try:
            yield client
        finally:
            await client.aclose()


def token_request(body: bytes, *headers: bytes) -> bytes:
    lines = [b"POST /token HTTP/1.1", b"Host: a", *headers]
    lines.append(b"Content-Type: application/x-www-form-urlencoded")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


# §9.3 persistence


async def test_s9_3_keep_alive_serves_requests_on_one_connection(native: Server) -> None:
    """§9.3: an HTTP/1.1 connection persists: three requests, one after another, one socket."""
    client = await RawClient.connect(native.base_url)
    for _ in range(3):
        await client.send(GET)
        response = await client.response()
        assert response.status == 200
        assert "connection" not in response.headers
    await client.aclose()


async def test_s9_6_connection_close_closes_after_the_response(native: Server) -> None:
    """§9.6: after a request with `Connection: close` the server closes the connection."""
    request = b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    response, closed = await one_shot(native.base_url, request)
    assert response.status == 200
    assert response.headers["connection"] == "close"
    assert closed


async def test_s9_3_http_1_0_closes_after_the_response(native: Server) -> None:
    """§9.3: an HTTP/1.0 request (no keep-alive) is answered, then the connection closed."""
    response, closed = await one_shot(native.base_url, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert response.status == 200
    assert closed


async def test_s9_3_idle_keep_alive_connection_is_closed(
    make_settings: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """§9.5: a keep-alive connection idle for `keep_alive_s` is closed by the server."""
    async with connected(make_settings, keep_alive_s=3.0) as client:
        await client.send(GET)
        assert (await client.response()).status == 200
        start = trio.current_time()
        assert await client.closed()
        assert 3.0 <= trio.current_time() - start < 4.0


async def test_s9_3_2_pipelined_requests_are_answered_in_order(native: Server) -> None:
    """§9.3.2: requests sent together are answered in the order they were sent."""
    paths = [b"/healthz", b"/nope", b"/.well-known/jwks.json", b"/token"]
    client = await RawClient.connect(native.base_url)
    await client.send(b"".join(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % p for p in paths))
    statuses = [(await client.response()).status for _ in paths]
    assert statuses == [200, 404, 200, 405]
    await client.aclose()


# §6, §7 message bodies


async def test_s7_1_chunked_request_body_is_read(native: Server) -> None:
    """§7.1: a chunked body is decoded: the form it carries is parsed (here, a grant type
    nobody supports), and the connection serves the next request."""
    body = chunked(b"grant_type=", b"urn:example:nope")
    client = await RawClient.connect(native.base_url)
    await client.send(token_request(body, b"Transfer-Encoding: chunked") + GET)
    response = await client.response()
    assert response.status == 400
    assert b"unsupported_grant_type" in response.body
    assert (await client.response()).status == 200
    await client.aclose()


async def test_rfc9110_s10_1_1_expect_100_continue(native: Server) -> None:
    """RFC 9110 §10.1.1: `Expect: 100-continue` gets an interim 100 before the body is sent."""
    body = b"grant_type=urn:example:nope"
    client = await RawClient.connect(native.base_url)
    await client.send(
        token_request(b"", b"Content-Length: %d" % len(body), b"Expect: 100-continue")
    )
    assert (await client.response()).status == 100
    await client.send(body)
    response = await client.response()
    assert response.status == 400
    assert b"unsupported_grant_type" in response.body
    await client.aclose()


async def test_rfc9110_s9_3_2_head_sends_headers_and_no_body(native: Server) -> None:
    """RFC 9110 §9.3.2: HEAD gets GET's headers (its Content-Length) and no body: the next
    response on the connection starts right after the head."""
    client = await RawClient.connect(native.base_url)
    await client.send(b"HEAD /.well-known/jwks.json HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
    head = await client.response(head_request=True)
    get = await client.response()
    assert head.status == get.status == 200
    assert int(head.headers["content-length"]) == len(get.body) > 0
    await client.aclose()


async def test_rfc9110_s6_6_1_date_and_no_server_header(native: Server) -> None:
    """RFC 9110 §6.6.1: a response carries `Date`; no `Server` header names the software;
    RFC 9112 §6.3: one `Content-Length`, never two (a strict client refuses two)."""
    client = await RawClient.connect(native.base_url)
    await client.send(GET + b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
    for _ in range(2):
        response = await client.response()
        assert parsedate_to_datetime(response.headers["date"]).tzinfo is not None
        assert "server" not in response.headers
        names = [line.split(b":")[0].lower() for line in response.raw_head.split(b"\r\n")[1:]]
        assert len(names) == len(set(names)), response.raw_head
    await client.aclose()


# Limits (ERR-3)


async def test_s3_long_request_target_is_414(native: Server) -> None:
    """ERR-3, RFC 9112 §3: a request target over the limit is refused with 414, then closed."""
    request = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    response, closed = await one_shot(native.base_url, request)
    assert response.status == 414
    assert closed


async def test_s5_headers_too_large_are_431(native: Server) -> None:
    """ERR-3, RFC 6585 §5: headers over the limit are refused with 431, then closed."""
    headers = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))
    response, closed = await one_shot(
        native.base_url, b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n"
    )
    assert response.status == 431
    assert closed


async def test_s5_endless_header_is_431_before_it_ends(native: Server) -> None:
    """ERR-3: a header line that never ends is refused once it passes the limit, unread."""
    client = await RawClient.connect(native.base_url)
    await client.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ")
    for _ in range(32):
        await client.send(b"v" * 4096)
    response = await client.response()  # the header has not ended: answered all the same
    assert response.status == 431
    assert await client.closed()
    await client.aclose()


async def test_s6_3_declared_body_over_the_limit_is_413_unread(native: Server) -> None:
    """ERR-3: a Content-Length over limits.max_body_bytes gets 413 before the body is read,
    and the connection is closed (its body must not be read as a request)."""
    request = token_request(b"", b"Content-Length: 10000000")
    response, closed = await one_shot(native.base_url, request)
    assert response.status == 413
    assert b"invalid_request" in response.body
    assert closed


async def test_s7_1_chunked_body_over_the_limit_is_413(native: Server) -> None:
    """ERR-3: a chunked body that grows past limits.max_body_bytes gets 413 and a close."""
    body = chunked(*[b"a=" + b"b" * 8000] * 10)
    response, closed = await one_shot(
        native.base_url, token_request(body, b"Transfer-Encoding: chunked")
    )
    assert response.status == 413
    assert closed


# Timeouts (slowloris)


async def test_slow_headers_get_408_and_a_close(
    make_settings: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """RFC 9110 §15.5.9: headers not complete within header_timeout_s get 408, then closed."""
    async with connected(make_settings, header_timeout_s=2.0) as client:
        await client.send(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
        start = trio.current_time()
        response = await client.response()
        assert response.status == 408
        assert 2.0 <= trio.current_time() - start < 3.0
        assert await client.closed()


async def test_slow_body_gets_408_and_a_close(
    make_settings: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """RFC 9110 §15.5.9: a body not complete within body_timeout_s gets 408, then closed."""
    async with connected(make_settings, body_timeout_s=2.0) as client:
        await client.send(token_request(b"grant_", b"Content-Length: 100"))
        response = await client.response()
        assert response.status == 408, response.body
        assert await client.closed()


# Malformed requests and request smuggling: 400 (or the status named) and the connection closed

SMUGGLING = {
    # §6.1: a sender must not send both; a server must treat it as an error or drop CL
    "content-length-with-transfer-encoding": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    # §6.3: differing lengths are an unrecoverable error
    "two-differing-content-lengths": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
    # §6.3 allows merging identical ones; oauthd refuses them too (no client needs it)
    "two-identical-content-lengths": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    ),
    "content-length-list": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
        400,
    ),
    "content-length-signed": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
        400,
    ),
    # §6.3: a request whose last transfer coding is not chunked cannot be framed
    "transfer-encoding-not-final-chunked": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    ),
    "transfer-encoding-unknown": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "transfer-encoding-twice": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    # §6.1: a coding the server does not implement: 501
    "transfer-encoding-gzip-then-chunked": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "obs-fold": (b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),  # §5.2
    "bare-lf": (b"GET /healthz HTTP/1.1\nHost: a\n\n", 400),  # §2.2
    "bare-lf-in-headers": (b"GET /healthz HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
    "nul-in-header": (b"GET /healthz HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),  # §5.5
    "control-in-header": (b"GET /healthz HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400),
    "space-before-colon": (b"GET /healthz HTTP/1.1\r\nHost : a\r\n\r\n", 400),  # §5.1
    "bad-chunk-size": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    "negative-chunk-size": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"-3\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    "chunk-size-overflow": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    "chunk-without-cr": (
        b"POST /token HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
        400,
    ),
    "not-http": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # TLS to a plain port
    "http-2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    "http-version-2": (b"GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n", 505),  # §2.6
    "asterisk-form-get": (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # §3.2.4: OPTIONS only
    "no-host": (b"GET /healthz HTTP/1.1\r\n\r\n", 400),  # §3.2: exactly one Host
    "two-hosts": (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", SMUGGLING)
async def test_s11_2_malformed_or_ambiguous_request_is_refused_and_closed(
    native: Server, name: str
) -> None:
    """§11.2: a request whose framing is ambiguous or malformed is refused (400, or 501/505
    where RFC 9112 names them) with a JSON error, and the connection closed."""
    request, status = SMUGGLING[name]
    response, closed = await one_shot(native.base_url, request)
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert b"invalid_request" in response.body
    assert closed


async def test_s6_3_body_on_get_is_not_read_as_a_request(native: Server) -> None:
    """§6.3: a GET's Content-Length body is body: a request hidden in it is never answered;
    the request after it is."""
    hidden = b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
    request = b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(hidden)
    client = await RawClient.connect(native.base_url)
    await client.send(
        request + hidden + GET + b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    statuses = [(await client.response()).status for _ in range(3)]
    assert statuses == [200, 200, 200]  # never the 404 of the hidden request
    assert await client.closed()
    await client.aclose()


async def test_rfc9110_s7_8_upgrade_is_ignored_and_the_connection_closed(native: Server) -> None:
    """RFC 9110 §7.8: a server may ignore Upgrade: the request is answered in HTTP/1.1, and
    nothing sent after it (in the protocol asked for) is read as a request."""
    upgrade = b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    response, closed = await one_shot(native.base_url, upgrade + GET)
    assert response.status == 200
    assert response.headers["connection"] == "close"
    assert closed


async def test_s9_3_pipelined_request_after_a_malformed_one_is_not_served(native: Server) -> None:
    """§9.3: requests before a malformed one are answered; nothing after it is parsed."""
    client = await RawClient.connect(native.base_url)
    await client.send(GET + b"GET /healthz HTTP/1.1\r\nHost: a\r\nX: a\x00\r\n\r\n" + GET)
    assert (await client.response()).status == 200
    assert (await client.response()).status == 400
    assert await client.closed()
    await client.aclose()
