"""`X-Content-Type-Options: nosniff` on every response (issue 14, item 18; HTML-6): JSON,
HTML, redirects, errors and refusals, from Quart, the fast path and the request limits alike."""

from __future__ import annotations

import pytest

from tests.conftest import Server

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}

# (method, path, extra request arguments, the status expected)
REQUESTS = [
    ("GET", "/.well-known/oauth-authorization-server", {}, 200),
    ("GET", "/.well-known/openid-configuration", {}, 200),
    ("GET", "/.well-known/oauth-protected-resource", {}, 200),
    ("GET", "/.well-known/jwks.json", {}, 200),  # the fast path
    ("HEAD", "/.well-known/jwks.json", {}, 200),
    ("GET", "/healthz", {}, 200),
    ("GET", "/metrics", {}, 200),
    ("GET", "/authorize", {"params": {"client_id": "nobody"}}, 400),  # an error page
    ("GET", "/login", {}, 400),
    ("GET", "/device", {}, 200),
    ("GET", "/userinfo", {}, 401),
    ("POST", "/token", {"data": {"grant_type": "password"}}, 400),
    ("POST", "/introspect", {"data": {"token": "x"}}, 401),
    ("POST", "/revoke", {"data": {"token": "x"}}, 401),
    ("POST", "/register", {"json": {"redirect_uris": ["ftp://x"]}}, 400),
    ("GET", "/token", {}, 405),  # 405 from the fast path
    ("POST", "/healthz", {}, 405),  # 405 from Quart
    ("GET", "/nope", {}, 404),
    ("GET", "/nope", {"headers": {"Accept": BROWSER}}, 404),  # the HTML error page
    ("OPTIONS", "/token", {"headers": PREFLIGHT}, 200),
    ("OPTIONS", "/.well-known/jwks.json", {"headers": PREFLIGHT}, 200),
    ("POST", "/token", {"content": b"x" * 70_000}, 413),
    ("GET", "/" + "a" * 9000, {}, 414),  # refused before any framework sees it
    ("GET", "/healthz", {"headers": {"X-Big": "b" * 17_000}}, 431),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    REQUESTS,
    ids=[f"{m} {p[:40]} {s}" for m, p, _, s in REQUESTS],
)
async def test_every_response_carries_nosniff(
    server: Server, method: str, path: str, kwargs: dict[str, object], status: int
) -> None:
    """Every response, redirects and errors included, carries X-Content-Type-Options: nosniff."""
    response = await server.http.request(method, path, **kwargs)  # type: ignore[arg-type]  # httpx's overloads take each argument by name
    assert response.status_code == status, response.text
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


async def test_redirects_carry_nosniff(server: Server) -> None:
    """A 303 to the login page carries X-Content-Type-Options: nosniff too."""
    registered = await server.http.post(
        "/register",
        json={"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"},
    )
    params = {
        "client_id": registered.json()["client_id"],
        "redirect_uri": "http://127.0.0.1/cb",
        "response_type": "code",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "state": "s",
    }
    response = await server.http.get("/authorize", params=params)
    assert response.status_code in (302, 303)
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
