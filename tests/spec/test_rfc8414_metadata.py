"""RFC 8414: authorization server metadata, over HTTP against a running oauthd."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from oauthd.settings import KeySettings, Settings
from tests.conftest import ISSUER, Server, running_server

AS_METADATA = "/.well-known/oauth-authorization-server"
OIDC_METADATA = "/.well-known/openid-configuration"
PATH_ISSUER = ISSUER + "/t1"


async def test_s3_metadata_document_is_json_with_configured_issuer(server: Server) -> None:
    """DISC-1/DISC-2: GET /.well-known/oauth-authorization-server -> 200 JSON, configured issuer."""
    response = await server.http.get(AS_METADATA)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["issuer"] == ISSUER


async def test_s3_3_issuer_is_byte_identical_to_configuration(server: Server) -> None:
    """DISC-2: `issuer` MUST be identical to the configured issuer, byte for byte."""
    response = await server.http.get(AS_METADATA)
    assert f'"issuer":"{ISSUER}"'.encode() in response.content


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
        {"Host": "evil.example:443", "X-Forwarded-Host": "evil.example", "Forwarded": "host=x"},
    ],
    ids=["host", "x-forwarded", "all"],
)
async def test_s3_3_issuer_is_not_influenced_by_request_headers(
    server: Server, headers: dict[str, str]
) -> None:
    """DISC-2: the issuer and every URL come from the config, never Host/X-Forwarded-*."""
    response = await server.http.get(AS_METADATA, headers=headers)
    assert response.status_code == 200
    assert "evil" not in response.text
    assert response.json()["issuer"] == ISSUER
    assert response.json()["jwks_uri"] == ISSUER + "/.well-known/jwks.json"


async def test_s3_metadata_ignores_query_strings(server: Server) -> None:
    """DISC-3: metadata responses ignore query strings."""
    plain = await server.http.get(AS_METADATA)
    queried = await server.http.get(AS_METADATA, params={"issuer": "https://evil.example"})
    assert queried.status_code == 200
    assert queried.content == plain.content


async def test_s3_metadata_sets_no_cookie(server: Server) -> None:
    """DISC-3: metadata responses carry no Set-Cookie."""
    for path in (AS_METADATA, OIDC_METADATA, "/.well-known/jwks.json"):
        response = await server.http.get(path)
        assert response.status_code == 200
        assert "set-cookie" not in response.headers


async def test_s3_1_pathless_issuer_has_no_path_suffixed_document(server: Server) -> None:
    """DISC-3: for a path-less issuer, /.well-known/oauth-authorization-server/anything -> 404."""
    response = await server.http.get(AS_METADATA + "/anything")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/",
        "/.well-known/foo",
        "/.well-known/oauth-authorization-server/",
        "/.well-known/openid-configuration/x",
        "/.well-known/jwks.json/x",
        "/.well-known/%00",
        "/.well-known/..%2f..%2fetc%2fpasswd",
        "/.well-known/" + "a" * 2000,
    ],
)
async def test_s3_unknown_well_known_path_is_404_json(server: Server, path: str) -> None:
    """DISC-3: every unknown /.well-known/* path -> 404 (MCP SDKs abort on a 5xx)."""
    response = await server.http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        AS_METADATA + "/t1",  # RFC 8414 §3.1: well-known segment inserted before the path
        OIDC_METADATA + "/t1",  # the same insertion, which MCP clients also try
        "/t1" + OIDC_METADATA,  # OIDC Discovery §4: appended after the path
    ],
)
async def test_s3_1_path_issuer_serves_documents_at_every_well_known_form(
    make_settings: Callable[..., Settings], path: str
) -> None:
    """DISC-3: for issuer https://h/t1 each well-known form -> 200 with that issuer."""
    async with running_server(make_settings(issuer=PATH_ISSUER)) as server:
        response = await server.http.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        document = response.json()
        assert document["issuer"] == PATH_ISSUER
        assert document["jwks_uri"] == PATH_ISSUER + "/.well-known/jwks.json"


async def test_s3_1_path_issuer_serves_jwks_under_its_path_and_not_at_root(
    make_settings: Callable[..., Settings],
) -> None:
    """DISC-3/DISC-13: with a path issuer, jwks_uri lives under it and root documents are 404."""
    async with running_server(make_settings(issuer=PATH_ISSUER)) as server:
        jwks = await server.http.get("/t1/.well-known/jwks.json")
        assert jwks.status_code == 200
        assert jwks.json()["keys"]
        for path in (AS_METADATA, OIDC_METADATA, AS_METADATA + "/t2"):
            response = await server.http.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"] == "not_found"


async def test_s2_advertised_endpoints_answer_on_the_running_server(server: Server) -> None:
    """DISC-4/DISC-13: every endpoint URL the documents advertise is on the issuer and answers."""
    urls = set()
    for path in (AS_METADATA, OIDC_METADATA):
        document = (await server.http.get(path)).json()
        urls |= {
            value
            for name, value in document.items()
            if name.endswith(("_endpoint", "_uri")) and isinstance(value, str)
        }
    assert ISSUER + "/.well-known/jwks.json" in urls
    for url in sorted(urls):
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == ISSUER, url
        assert not parts.fragment, url
        response = await server.http.get(parts.path)
        assert response.status_code not in (404, 500), url


async def test_s2_grant_types_are_explicit_and_never_implicit_or_password(server: Server) -> None:
    """DISC-6: grant_types_supported stated (default has implicit); no implicit/password."""
    for path in (AS_METADATA, OIDC_METADATA):
        document = (await server.http.get(path)).json()
        assert isinstance(document["grant_types_supported"], list)
        assert not {"implicit", "password"} & set(document["grant_types_supported"])
        assert "token" not in document["response_types_supported"]


@pytest.mark.parametrize(
    "endpoint", ["token_endpoint", "revocation_endpoint", "introspection_endpoint"]
)
async def test_s2_jwt_client_auth_names_its_signing_algorithms(
    server: Server, endpoint: str
) -> None:
    """DISC-7/DISC-9: `<endpoint>_auth_signing_alg_values_supported` MUST be present when
    private_key_jwt or client_secret_jwt is listed for that endpoint, and never holds none."""
    for path in (AS_METADATA, OIDC_METADATA):
        document = (await server.http.get(path)).json()
        methods = set(document[f"{endpoint}_auth_methods_supported"])
        assert "private_key_jwt" in methods
        algorithms = document[f"{endpoint}_auth_signing_alg_values_supported"]
        assert algorithms
        assert "none" not in algorithms
        assert algorithms == document["token_endpoint_auth_signing_alg_values_supported"]


async def test_s2_document_passes_authlib_metadata_validation(server: Server) -> None:
    """DISC-4/DISC-7/DISC-9: the RFC 8414 document passes Authlib's
    AuthorizationServerMetadata.validate(), which Authlib clients run before anything else."""
    document = (await server.http.get(AS_METADATA)).json()
    AuthorizationServerMetadata(document).validate()


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
async def test_oidc_discovery_s3_rs256_is_an_id_token_algorithm_in_both_documents(
    make_settings: Callable[..., Settings], algorithm: str
) -> None:
    """DISC-14: id_token_signing_alg_values_supported MUST include RS256, whatever signs
    access tokens; the RFC 8414 document carries it too (clients that read only that one)."""
    async with running_server(make_settings(keys=KeySettings(algorithm=algorithm))) as server:
        for path in (AS_METADATA, OIDC_METADATA):
            document = (await server.http.get(path)).json()
            assert sorted(document["id_token_signing_alg_values_supported"]) == sorted(
                {"RS256", algorithm}
            )
        jwks = (await server.http.get("/.well-known/jwks.json")).json()
        assert {key["alg"] for key in jwks["keys"]} == {"RS256", algorithm}


async def test_oidc_discovery_s3_document_passes_authlib_provider_validation(
    server: Server,
) -> None:
    """DISC-14/DISC-16: the OpenID document passes Authlib's OpenIDProviderMetadata.validate(),
    and both documents carry the same members."""
    document = (await server.http.get(OIDC_METADATA)).json()
    OpenIDProviderMetadata(document).validate()
    assert (await server.http.get(AS_METADATA)).json() == document
