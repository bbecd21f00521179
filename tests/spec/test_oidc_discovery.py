"""OpenID Connect Discovery 1.0: OpenID Provider metadata, over HTTP against a running oauthd."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.conftest import ISSUER, Server

AS_METADATA = "/.well-known/oauth-authorization-server"
OIDC_METADATA = "/.well-known/openid-configuration"


async def test_s4_openid_configuration_is_json_with_configured_issuer(server: Server) -> None:
    """DISC-14: GET /.well-known/openid-configuration -> 200 JSON, issuer identical to DISC-2's."""
    response = await server.http.get(OIDC_METADATA)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["issuer"] == ISSUER


async def test_s3_request_uri_parameter_supported_is_stated_false(server: Server) -> None:
    """DISC-17: request_uri_parameter_supported (default true) is stated false."""
    document = (await server.http.get(OIDC_METADATA)).json()
    assert document["request_uri_parameter_supported"] is False
    assert document["request_parameter_supported"] is False
    assert document["claims_parameter_supported"] is False
    assert "grant_types_supported" in document


async def test_s3_documents_agree_on_every_shared_member(server: Server) -> None:
    """DISC-16: every member present in both documents has the same value."""
    oauth = (await server.http.get(AS_METADATA)).json()
    oidc = (await server.http.get(OIDC_METADATA)).json()
    shared = oauth.keys() & oidc.keys()
    assert {"issuer", "jwks_uri", "grant_types_supported"} <= shared
    assert {name: oauth[name] for name in shared} == {name: oidc[name] for name in shared}


async def test_s3_jwks_uri_is_present_and_absolute(server: Server) -> None:
    """DISC-13: jwks_uri is present, absolute, and returns the key set."""
    document = (await server.http.get(OIDC_METADATA)).json()
    assert document["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    # The server is bound to a free port, not the issuer's: fetch the advertised path.
    response = await server.http.get(urlsplit(document["jwks_uri"]).path)
    assert response.status_code == 200
    assert response.json()["keys"]
