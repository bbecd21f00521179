"""RFC 9700 §2.6: CORS on the public documents, for browser-based MCP clients (CORS-1)."""

from __future__ import annotations

import pytest

from tests.conftest import Server

ORIGIN = "https://inspector.example"
PUBLIC = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/.well-known/jwks.json",
]


@pytest.mark.parametrize("path", PUBLIC)
async def test_s2_6_public_documents_allow_any_origin(server: Server, path: str) -> None:
    """CORS-1: GET metadata and JWKS with Origin -> Access-Control-Allow-Origin: *."""
    response = await server.http.get(
        path, headers={"Origin": ORIGIN, "MCP-Protocol-Version": "2025-06-18"}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize("path", PUBLIC)
async def test_s2_6_preflight_allows_mcp_protocol_version(server: Server, path: str) -> None:
    """CORS-1: OPTIONS preflight asking for header mcp-protocol-version -> 2xx allowing it."""
    response = await server.http.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "mcp-protocol-version",
        },
    )
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert "mcp-protocol-version" in allowed
    assert "GET" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource/mcp",  # RFC 9728 §3.1 path-inserted variants
        "/.well-known/oauth-authorization-server/mcp",
        "/.well-known/openid-configuration/mcp",
    ],
)
async def test_s2_6_a_document_not_served_is_a_readable_404(server: Server, path: str) -> None:
    """CORS-1: MCP clients probe well-known URLs in turn; a 404 without CORS would read as a
    network failure in a browser and stop the probing instead of moving to the next URL."""
    response = await server.http.get(
        path, headers={"Origin": ORIGIN, "MCP-Protocol-Version": "2025-06-18"}
    )
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    assert "access-control-allow-credentials" not in response.headers
