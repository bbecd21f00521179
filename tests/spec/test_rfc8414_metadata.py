"""RFC 8414: authorization server metadata, over HTTP against a running oauthd."""

from __future__ import annotations

from tests.conftest import ISSUER, Server


async def test_s3_metadata_document_is_json_with_configured_issuer(server: Server) -> None:
    """DISC-1/DISC-2: GET /.well-known/oauth-authorization-server -> 200 JSON, issuer as configured."""
    response = await server.http.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["issuer"] == ISSUER
