"""RFC 9110 semantics at the front door: 404, 405, HEAD, 413, error pages, health (ERR-3, ERR-4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from oauthd.settings import LimitSettings, Settings
from tests.conftest import Server, running_server

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
GET_ENDPOINTS = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/.well-known/jwks.json",
    "/healthz",
]


async def test_healthz_is_ok_when_healthy(server: Server) -> None:
    """/healthz -> 200 {"status": "ok"} when the data dir is writable and a key signs."""
    response = await server.http.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["status"] == "ok"
    assert response.json()["problems"] == []


@pytest.mark.parametrize("path", ["/nope", "/authorize/../x", "/healthz/", "/%ff%fe"])
async def test_s15_5_5_unknown_path_is_404_json(server: Server, path: str) -> None:
    """ERR-4: unknown paths -> 404 with a JSON {"error": ...} body."""
    response = await server.http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/.well-known/oauth-authorization-server"),
        ("PUT", "/.well-known/openid-configuration"),
        ("DELETE", "/.well-known/jwks.json"),
        ("POST", "/healthz"),
    ],
)
async def test_s15_5_6_wrong_method_is_405_with_allow(
    server: Server, method: str, path: str
) -> None:
    """ERR-4: wrong method on an endpoint -> 405 with an Allow header and a JSON body."""
    response = await server.http.request(method, path)
    assert response.status_code == 405
    assert "GET" in {m.strip() for m in response.headers["allow"].split(",")}
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "method_not_allowed"
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", GET_ENDPOINTS)
async def test_s9_3_2_head_on_get_endpoint_answers_like_get_without_body(
    server: Server, path: str
) -> None:
    """ERR-4: HEAD on GET endpoints does not 500 (RFC 9110 §9.3.2: same headers, no body)."""
    response = await server.http.head(path)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "application/json"


async def test_browser_gets_an_html_error_page_that_cannot_be_framed(server: Server) -> None:
    """ERR-4/HTML-1: a browser gets an HTML error page with frame-ancestors 'none' and XFO DENY."""
    response = await server.http.get("/nope", headers={"Accept": BROWSER})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "not_found" in response.text


async def test_browser_error_page_escapes_the_request(server: Server) -> None:
    """ERR-4/HTML-9: nothing from the request reaches the error page unescaped."""
    payload = "<script>alert(1)</script>"
    response = await server.http.get(
        f"/{payload}", params={"q": payload}, headers={"Accept": BROWSER}
    )
    assert response.status_code == 404
    assert "<script" not in response.text


async def test_browser_405_page_keeps_the_allow_header(server: Server) -> None:
    """ERR-4: the HTML form of a 405 still carries Allow."""
    response = await server.http.post("/healthz", headers={"Accept": BROWSER})
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("text/html")
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/healthz", "/nope"])
async def test_s15_5_14_oversized_body_is_413_json(
    make_settings: Callable[..., Settings], path: str
) -> None:
    """ERR-3: a body over limits.max_body_bytes -> 413 JSON, never 500."""
    settings = make_settings(limits=LimitSettings(max_body_bytes=1024))
    async with running_server(settings) as server:
        response = await server.http.post(path, content=b"x" * 4096)
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"] == "invalid_request"
        still_up = await server.http.get("/healthz")
        assert still_up.status_code == 200


async def test_s15_5_14_body_at_the_limit_is_not_413(
    make_settings: Callable[..., Settings],
) -> None:
    """ERR-3: the limit is inclusive: a body of exactly max_body_bytes is routed normally."""
    settings = make_settings(limits=LimitSettings(max_body_bytes=1024))
    async with running_server(settings) as server:
        response = await server.http.post("/healthz", content=b"x" * 1024)
        assert response.status_code == 405


async def test_s15_5_15_an_overlong_uri_answers_414(server: Server) -> None:
    """ERR-3: a URI over the documented limit (8 KiB) answers 414 JSON, and the server stays up."""
    response = await server.http.get("/.well-known/jwks.json", params={"x": "a" * 9000})
    assert response.status_code == 414
    assert response.json()["error"] == "invalid_request"
    assert (await server.http.get("/healthz")).status_code == 200


async def test_rfc6585_s5_oversized_headers_answer_431(server: Server) -> None:
    """ERR-3: headers over the documented limit (16 KiB) answer 431 JSON."""
    headers = {f"x-filler-{i}": "b" * 1000 for i in range(20)}
    response = await server.http.get("/.well-known/jwks.json", headers=headers)
    assert response.status_code == 431


async def test_s9_6_a_refusal_before_the_body_is_read_closes_the_connection(
    server: Server,
) -> None:
    """ERR-4: a POST refused before its body is read (405) never leaves that body to stall the
    next request on a kept-alive connection: the connection closes (Connection: close), or the
    body was consumed (the native engine skips a body it has already read) and it is reused."""
    for _ in range(3):
        response = await server.http.post("/healthz", content=b"a=1" * 100)
        assert response.status_code == 405
        with trio.fail_after(5):  # an unread body left on the connection would hang this
            assert (await server.http.get("/healthz")).status_code == 200


async def test_err1_the_json_api_answers_json_errors_even_to_browsers(server: Server) -> None:
    """ERR-1: /token answers a wrong method as JSON even when Accept prefers HTML."""
    response = await server.http.get("/token", headers={"Accept": "text/html"})
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/json"
