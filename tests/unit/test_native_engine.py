"""The native engine (web/native) with small ASGI apps over real sockets: what the ASGI spec
asks of a server (scope, lifespan, disconnect, streaming), what it does when an app fails, and
the server's own duties (connection cap, graceful shutdown, IPv6, inherited sockets)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from oauthd.web.native import Limits, exchange, open_listeners, serve_native
from oauthd.web.native.server import NativeServer
from tests.raw_http import RawClient, one_shot

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
LIMITS = dict(
    keep_alive_s=60.0,
    header_timeout_s=10.0,
    body_timeout_s=30.0,
    max_connections=100,
    max_body_bytes=65536,
    max_target=8192,
    max_headers=16384,
    graceful_timeout_s=5.0,
)


def http_only(app: App) -> App:
    """`app`, refusing the lifespan scope (an app without startup or shutdown work)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        await app(scope, receive, send)

    return wrapped


@asynccontextmanager
async def serving(
    app: App,
    host: str = "127.0.0.1",
    listen_fd: int | None = None,
    lifespan: bool = False,
    **limits: Any,
) -> AsyncIterator[tuple[str, trio.Event]]:
    """`app` on the native engine on a free port: (its URL, the event that shuts it down)."""
    app = app if lifespan else http_only(app)
    stop = trio.Event()
    listeners = await open_listeners(host, 0, listen_fd)
    async with trio.open_nursery() as nursery:
        serve = partial(serve_native, app, Limits(**{**LIMITS, **limits}), listeners, stop.wait)
        binds: list[str] = await nursery.start(serve)
        yield binds[0], stop
        stop.set()


async def respond(send: Any, body: bytes = b"ok", status: int = 200) -> None:
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def echo_scope(scope: dict[str, Any], receive: Any, send: Any) -> None:
    shown = {k: v for k, v in scope.items() if k not in ("asgi", "state")}
    await respond(send, repr(shown).encode())


CLOSE = b"Connection: close\r\n"


async def test_asgi_scope_carries_the_request_as_the_asgi_spec_says() -> None:
    """ASGI HTTP scope: method, raw and decoded path, query, lower-cased byte headers, client,
    server, scheme, root_path, http_version."""
    async with serving(echo_scope) as (url, _):
        request = (
            b"GET /a%20b/c?x=1&y=%2F HTTP/1.1\r\nHost: h\r\nX-Mixed-Case: V\r\n" + CLOSE + b"\r\n"
        )
        response, _ = await one_shot(url, request)
    scope = eval(response.body)  # noqa: S307 (the repr of a dict of str, bytes, tuples)
    port = int(url.rpartition(":")[2])
    assert scope["method"] == "GET"
    assert scope["path"] == "/a b/c"
    assert scope["raw_path"] == b"/a%20b/c"
    assert scope["query_string"] == b"x=1&y=%2F"
    assert (b"x-mixed-case", b"V") in scope["headers"]
    assert scope["server"] == ("127.0.0.1", port)
    assert scope["client"][0] == "127.0.0.1"
    assert (scope["scheme"], scope["root_path"], scope["http_version"]) == ("http", "", "1.1")


async def test_absolute_form_target_is_served_by_its_path() -> None:
    """RFC 9112 §3.2.2: a server accepts the absolute form; the path and query are served."""
    async with serving(echo_scope) as (url, _):
        request = b"GET http://h/p?q=1 HTTP/1.1\r\nHost: h\r\n" + CLOSE + b"\r\n"
        response, _ = await one_shot(url, request)
    scope = eval(response.body)  # noqa: S307
    assert (scope["path"], scope["query_string"]) == ("/p", b"q=1")


async def test_streamed_response_without_length_is_chunked() -> None:
    """RFC 9112 §7.1: a response streamed with more_body and no Content-Length is chunked,
    and the connection stays usable."""

    async def stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with serving(stream) as (url, _):
        client = await RawClient.connect(url)
        await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" * 2)
        for _ in range(2):
            response = await client.response()
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.body == b"one two three"
        await client.aclose()


async def test_responses_larger_than_the_socket_buffer_arrive_whole_and_in_order() -> None:
    """RFC 9112 §9.3.2: pipelined responses in order, each whole, when the socket takes a
    write only in part (the engine's write at once, then the rest after waiting)."""
    piece = bytes(range(256)) * 4096  # 1 MiB

    async def big(scope: dict[str, Any], receive: Any, send: Any) -> None:
        mark = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": mark + piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with serving(big) as (url, _):
        client = await RawClient.connect(url)
        await client.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        for mark in (b"/1", b"/2"):
            response = await client.response()
            assert response.body == (mark + piece) * 3
        await client.aclose()


async def test_app_raising_before_its_response_gets_a_500_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An app that raises before responding: the client gets a JSON 500, the log the trace."""

    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("secret internals")

    async with serving(broken) as (url, _):
        response, closed = await one_shot(url, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert response.status == 500
    assert b"server_error" in response.body
    assert b"secret" not in response.body
    assert closed
    assert "secret internals" in caplog.text


@pytest.mark.parametrize(
    "header",
    [(b"x-note", b"a\r\nset-cookie: forged=1"), (b"x-note", b"a\nb"), (b"x\rnote", b"a")],
)
async def test_rfc9110_s5_5_response_header_with_cr_or_lf_is_never_written(
    header: tuple[bytes, bytes],
) -> None:
    """RFC 9110 §5.5: a field value holding CR or LF would split the response (a forged
    header); such a head is never written: the client gets the engine's JSON 500."""

    async def splitting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain"), header]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serving(splitting) as (url, _):
        response, closed = await one_shot(url, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert response.status == 500
    assert b"forged" not in response.body
    assert closed


async def test_repeated_response_headers_are_written_alike() -> None:
    """The same headers sent again give the same head (a rendered block is remembered): the
    app's Content-Length and `Connection: close` are honoured each time, [name, value] lists
    are rendered as tuples are, and a block with a cookie is never remembered."""
    sent = {
        "/close": [
            (b"content-type", b"text/plain"),
            (b"content-length", b"2"),
            (b"Connection", b"close"),
        ],
        "/lists": [[b"content-type", b"text/plain"], [b"x-note", b"a"]],
        "/cookie": [(b"content-type", b"text/plain"), (b"set-cookie", b"sid=secret")],
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = sent[scope["path"]]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serving(app) as (url, _):
        heads = []
        for path in ("/close", "/close", "/lists", "/lists", "/cookie", "/cookie"):
            client = await RawClient.connect(url)
            await client.send(b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % path.encode())
            response = await client.response()
            if path == "/close":
                assert await client.closed()
            await client.aclose()
            assert response.body == b"ok"
            heads.append({k: v for k, v in response.headers.items() if k != "date"})
    assert (
        heads[0]
        == heads[1]
        == {"content-type": "text/plain", "content-length": "2", "connection": "close"}
    )
    assert (
        heads[2] == heads[3] == {"content-type": "text/plain", "x-note": "a", "content-length": "2"}
    )
    assert heads[4] == heads[5]
    assert not any(b"sid=secret" in block for block, _, _ in exchange._heads.values())


@pytest.mark.parametrize("declared", [True, False])
async def test_app_failing_mid_response_closes_the_connection(declared: bool) -> None:
    """An app that fails after its response started: the connection is closed, so the client
    sees an incomplete response (never a second status line, never a traceback)."""

    async def half(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"100")] if declared else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom")

    async with serving(half) as (url, _):
        client = await RawClient.connect(url)
        await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        rest = await client.rest()
        await client.aclose()
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.count(b"HTTP/1.1") == 1
    assert b"boom" not in rest


async def test_app_returning_without_a_response_gets_a_500() -> None:
    """An app that returns having sent nothing: 500 (something must answer the request)."""

    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return

    async with serving(silent) as (url, _):
        response, closed = await one_shot(url, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert response.status == 500
    assert closed


async def test_receive_after_the_client_goes_away_is_http_disconnect() -> None:
    """ASGI: once the body is read, `receive` returns http.disconnect when the client closes."""
    seen: list[str] = []
    done = trio.Event()

    async def waits(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((await receive())["type"])
        seen.append((await receive())["type"])
        done.set()

    async with serving(waits) as (url, _):
        client = await RawClient.connect(url)
        await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        await client.aclose()
        await done.wait()
    assert seen == ["http.request", "http.disconnect"]


async def test_lifespan_startup_before_serving_and_shutdown_after() -> None:
    """ASGI lifespan: startup completes before the first request, shutdown after the last."""
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        events.append("request")
        await respond(send)

    async with serving(app, lifespan=True) as (url, _):
        await one_shot(url, b"GET / HTTP/1.1\r\nHost: h\r\n" + CLOSE + b"\r\n")
    assert events == ["lifespan.startup", "request", "lifespan.shutdown"]


async def test_lifespan_startup_failure_stops_the_server() -> None:
    """ASGI lifespan: startup.failed means the server does not serve."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(BaseExceptionGroup) as failed:
        async with serving(app, lifespan=True):
            pass  # pragma: no cover
    assert failed.group_contains(RuntimeError, match="no database")


async def test_connection_cap_pauses_accepting_until_one_closes() -> None:
    """With max_connections open, the next connection waits in the backlog (it is not
    refused and nothing fails) and is served once one closes."""
    async with serving(echo_scope, max_connections=1) as (url, _):
        first = await RawClient.connect(url)
        await first.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await first.response()).status == 200
        second = await RawClient.connect(url)  # the kernel completes the handshake
        await second.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        fd = second.stream.socket.fileno()
        with (
            socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as probe,
            pytest.raises(BlockingIOError),  # nothing served while the first is open
        ):
            probe.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        await first.aclose()
        assert (await second.response()).status == 200
        await second.aclose()


async def test_graceful_shutdown_finishes_in_flight_and_closes_idle() -> None:
    """Shutdown: new connections are refused, an idle keep-alive connection is closed at
    once, a request in flight gets its whole response (with Connection: close)."""
    release = trio.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await release.wait()
        await respond(send)

    async with serving(slow) as (url, stop):
        idle = await RawClient.connect(url)
        await idle.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await idle.response()).status == 200
        busy = await RawClient.connect(url)
        await busy.send(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        stop.set()
        assert await idle.closed()
        with pytest.raises(OSError, match="connect"):
            await RawClient.connect(url)
        release.set()
        response = await busy.response()
        assert (response.status, response.headers["connection"]) == (200, "close")
        assert await busy.closed()


async def test_graceful_timeout_cancels_requests_that_run_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Shutdown waits graceful_timeout_s for requests in flight, then cancels them."""

    async def forever(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await trio.sleep_forever()

    async with serving(forever, graceful_timeout_s=3.0) as (url, stop):
        client = await RawClient.connect(url)
        await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        stop.set()
        assert await client.closed()
        assert trio.current_time() - start == pytest.approx(3.0)


async def test_ipv6_loopback_is_served() -> None:
    """`listen = "[::1]:port"`: the engine serves IPv6 (and the scope says so)."""
    async with serving(echo_scope, host="::1") as (url, _):
        assert url.startswith("http://[::1]:")
        response, _ = await one_shot(url, b"GET / HTTP/1.1\r\nHost: h\r\n" + CLOSE + b"\r\n")
    assert eval(response.body)["client"][0] == "::1"  # noqa: S307


async def test_inherited_listening_socket_is_served() -> None:
    """`--workers`: a worker serves the listening socket its supervisor bound (fd://)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        async with serving(echo_scope, listen_fd=sock.fileno()) as (url, _):
            assert url == f"http://127.0.0.1:{sock.getsockname()[1]}"
            response, _ = await one_shot(url, b"GET / HTTP/1.1\r\nHost: h\r\n" + CLOSE + b"\r\n")
            assert response.status == 200
    finally:
        sock.close()


async def test_accepted_connections_have_tcp_nodelay() -> None:
    """Responses are written whole, so Nagle's delay would only add latency: TCP_NODELAY."""
    server = NativeServer(http_only(echo_scope), Limits(**LIMITS))
    listeners = await open_listeners("127.0.0.1", 0, None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.accept, listeners[0], nursery)
        port = listeners[0].socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        await trio.testing.wait_all_tasks_blocked()
        (connection,) = server.connections
        assert connection.stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await client.aclose()
        nursery.cancel_scope.cancel()


async def test_response_is_complete_once_its_declared_length_is_sent() -> None:
    """RFC 9112 §6.3: a response with Content-Length ends with its last byte, even if the app
    (Quart sends a closing empty piece) stops before saying so: the connection is reused."""

    async def stops_early(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok", "more_body": True})

    async with serving(stops_early) as (url, _):
        client = await RawClient.connect(url)
        await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" * 2)
        for _ in range(2):
            response = await client.response()
            assert (response.status, response.body) == (200, b"ok")
            assert "connection" not in response.headers
        await client.aclose()


async def test_body_over_the_limit_leaves_the_app_time_to_answer() -> None:
    """ERR-3: past max_body_bytes the app's reader gets no more body, and the app's own 413
    (here from another task, as in Quart) is what the client gets, not the engine's."""
    over = trio.Event()

    async def counts(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def read() -> None:
            size = 0
            while (message := await receive())["type"] == "http.request":
                size += len(message["body"])
                if size > 1000:
                    over.set()
            nursery.cancel_scope.cancel()  # the client is gone: Quart stops its handler

        async def answer() -> None:
            await over.wait()
            await respond(send, b"the app's own 413", 413)
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            nursery.start_soon(answer)

    async with serving(counts, max_body_bytes=1000) as (url, _):
        body = b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
        request = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        response, closed = await one_shot(url, request)
    assert (response.status, response.body) == (413, b"the app's own 413")
    assert closed
