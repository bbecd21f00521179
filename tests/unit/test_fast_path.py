"""The fast path for the hot JSON endpoints (web/fast.py): the same HTTP rules as the Quart
routes, checked at the ASGI level (ERR-1, ERR-3, ERR-4, CORS-2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oauthd.errors import InvalidGrant
from oauthd.web.fast import ApiRequest, ApiResponse, FastPath, FastRoutes, document_handler
from oauthd.web.responses import API_CORS

MAX = 64


async def echo(request: ApiRequest) -> ApiResponse:
    form = request.form()
    return ApiResponse(200, json.dumps(dict(form.pairs)).encode(), {"Cache-Control": "no-store"})


async def refuse(_request: ApiRequest) -> ApiResponse:
    raise InvalidGrant("the code was used", detail="private detail")


async def crash(_request: ApiRequest) -> ApiResponse:
    raise RuntimeError("a secret in a traceback")


async def fallback(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"quart"})


def app() -> FastPath:
    routes = FastRoutes()
    routes.add("/echo", ("POST",), echo, API_CORS)
    routes.add("/refuse", ("GET",), refuse, API_CORS)
    routes.add("/crash", ("GET",), crash, API_CORS)
    return FastPath(fallback, routes, MAX)


async def call(
    method: str, path: str, chunks: tuple[bytes, ...] = (b"",), headers: tuple[Any, ...] = ()
) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": list(headers),
    }
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app()(scope, receive, send)
    head = {k.decode(): v.decode() for k, v in sent[0].get("headers", [])}
    return sent[0]["status"], head, b"".join(m.get("body", b"") for m in sent[1:])


FORM = ((b"content-type", b"application/x-www-form-urlencoded"),)


async def test_other_paths_go_to_quart() -> None:
    """Everything that is not a fast endpoint is Quart's."""
    assert (await call("GET", "/authorize"))[0] == 299


async def test_form_is_parsed_and_cors_added() -> None:
    """CORS-2: the JSON API allows any origin, on success and error alike."""
    status, headers, body = await call("POST", "/echo", (b"a=1&b=2",), FORM)
    assert status == 200
    assert json.loads(body) == {"a": "1", "b": "2"}
    assert headers["access-control-allow-origin"] == "*"
    assert headers["cache-control"] == "no-store"


async def test_oauth_error_is_its_json_without_the_private_detail() -> None:
    """ERR-1: an OAuth error answers its JSON, no-store; the detail stays in the log."""
    status, headers, body = await call("GET", "/refuse")
    assert status == 400
    assert json.loads(body) == {"error": "invalid_grant", "error_description": "the code was used"}
    assert headers["cache-control"] == "no-store"
    assert headers["access-control-allow-origin"] == "*"


async def test_unexpected_exception_is_server_error_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crash answers 500 server_error; the traceback goes to the log only."""
    status, _headers, body = await call("GET", "/crash")
    assert status == 500
    assert json.loads(body)["error"] == "server_error"
    assert b"secret" not in body
    assert "a secret in a traceback" in caplog.text


async def test_s15_5_14_streamed_body_over_the_limit_is_413() -> None:
    """ERR-3: a body over the limit is 413 even without a Content-Length (chunked)."""
    chunks = (b"a=" + b"x" * 40, b"x" * 40)
    assert (await call("POST", "/echo", chunks, FORM))[0] == 413


async def test_s15_5_14_declared_body_over_the_limit_is_413_before_routing() -> None:
    """ERR-3: a declared length over the limit is 413 whatever the method."""
    headers = ((b"content-length", b"1000"),)
    assert (await call("GET", "/refuse", headers=headers))[0] == 413


async def test_s15_5_6_wrong_method_is_405_with_allow() -> None:
    """ERR-4: 405 with Allow, as JSON."""
    status, headers, body = await call("GET", "/echo")
    assert status == 405
    assert headers["allow"] == "OPTIONS, POST"
    assert json.loads(body)["error"] == "method_not_allowed"


async def test_options_preflight_and_head() -> None:
    """CORS-1: OPTIONS answers the preflight; HEAD is GET without a body (RFC 9110 §9.3.2)."""
    status, headers, _body = await call("OPTIONS", "/echo")
    assert status == 200
    assert "POST" in headers["access-control-allow-methods"]
    status, headers, body = await call("HEAD", "/refuse")
    assert status == 400
    assert body == b""
    assert int(headers["content-length"]) > 0


async def test_a_document_is_rendered_on_its_first_request_and_once() -> None:
    """A document route renders its bytes when first asked for (not when the routes are made,
    as a cold tenant's activation makes them), then serves the same bytes."""
    rendered: list[int] = []

    def render() -> bytes:
        rendered.append(1)
        return b'{"issuer":"https://as.example"}'

    handler = document_handler(render, {"Cache-Control": "public, max-age=300"})
    assert rendered == []
    request = ApiRequest({"type": "http", "method": "GET", "path": "/", "headers": []}, b"")
    first, second = await handler(request), await handler(request)
    assert rendered == [1]
    assert first.body == second.body == b'{"issuer":"https://as.example"}'
    assert first.headers == {"Cache-Control": "public, max-age=300"}
