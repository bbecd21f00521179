"""An independent OAuth client against a real `oauthd serve`: Authlib's httpx OAuth2Client with
PKCE S256 and a resource indicator, a person driving the login and consent pages, and PyJWT
verifying the access token against the published JWKS. Authlib's metadata validation of both
discovery documents, and a PyJWT relying party that reads only the RFC 8414 document."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import jwt
import pytest
from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from tests.flow import ALICE, RESOURCE, form_field, pkce, query_of
from tests.interop.test_cli import Config, free_port, serving

with warnings.catch_warnings():
    # Authlib prefers the `httpx2` distribution and warns when it falls back to httpx.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

REDIRECT_URI = "http://127.0.0.1:61023/callback"


@pytest.fixture
def oauthd(tmp_path: Path) -> Iterator[Config]:
    """`oauthd serve` in dev mode with one MCP resource, on a free loopback port."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    path = tmp_path / "oauthd.toml"
    path.write_text(
        f'issuer = "{issuer}"\n'
        f'data_dir = "{tmp_path / "data"}"\n'
        "dev_mode = true\n"
        f'listen = "127.0.0.1:{port}"\n'
        f'[[resources]]\nuri = "{RESOURCE}"\nscopes = ["mcp:tools"]\n'
        '[log]\nlevel = "warning"\n',
        encoding="utf-8",
    )
    config = Config(path, issuer, issuer)
    with serving(config, tmp_path / "stderr.log"):
        yield config


def sign_in_and_consent(browser: httpx.Client, authorization_url: str) -> str:
    """A person in a browser: follow redirects, submit login and consent; the final redirect
    to the client."""
    response = browser.get(authorization_url)
    for _ in range(6):
        assert response.status_code in (302, 303), response.text
        location = urljoin(str(response.url), response.headers["location"])
        if location.startswith(REDIRECT_URI):
            return location
        page = browser.get(location)
        assert page.status_code == 200, page.text
        form = {"request": form_field(page.text, "request"), "csrf": form_field(page.text, "csrf")}
        if "/login" in location:
            form |= {"email": ALICE[0], "password": ALICE[1]}
            response = browser.post("/login", data=form)
        else:
            response = browser.post("/consent", data={**form, "decision": "allow"})
    raise AssertionError("the flow did not reach the client")


def test_authlib_code_flow_with_pkce_refresh_and_jwks_verification(oauthd: Config) -> None:
    """Authlib registers nothing of its own: DCR over HTTP, then the code flow with S256 PKCE,
    a refresh with rotation, and RFC 9068 access tokens verified with PyJWKClient."""
    metadata = httpx.get(oauthd.url + "/.well-known/oauth-authorization-server", timeout=5).json()
    assert "S256" in metadata["code_challenge_methods_supported"]
    registered = httpx.post(
        metadata["registration_endpoint"],
        json={
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "authlib interop",
        },
        timeout=5,
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]

    with (
        OAuth2Client(
            client_id=client_id,
            token_endpoint_auth_method="none",
            scope="openid email mcp:tools",
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
            timeout=5,
        ) as client,
        httpx.Client(base_url=oauthd.url, timeout=5) as browser,
    ):
        verifier = generate_token(64)
        url, state = client.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, resource=RESOURCE
        )
        callback = sign_in_and_consent(browser, url)
        params = query_of(callback)
        assert params["state"] == state
        assert params["iss"] == metadata["issuer"]

        token = client.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            code_verifier=verifier,
            resource=RESOURCE,
        )
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "openid email mcp:tools"
        assert "id_token" in token

        jwks = jwt.PyJWKClient(metadata["jwks_uri"].replace(oauthd.issuer, oauthd.url))
        claims = verify(jwks, token["access_token"], metadata["issuer"])
        assert claims["client_id"] == client_id
        assert claims["scope"] == "openid email mcp:tools"

        refreshed = client.refresh_token(
            metadata["token_endpoint"], refresh_token=token["refresh_token"]
        )
        assert refreshed["refresh_token"] != token["refresh_token"]
        again = verify(jwks, refreshed["access_token"], metadata["issuer"])
        assert again["sub"] == claims["sub"]
        assert again["jti"] != claims["jti"]


def verify(jwks: jwt.PyJWKClient, access_token: str, issuer: str) -> dict[str, object]:
    assert jwt.get_unverified_header(access_token)["typ"] == "at+jwt"
    key = jwks.get_signing_key_from_jwt(access_token)
    claims: dict[str, object] = jwt.decode(
        access_token,
        key,
        algorithms=["ES256", "RS256", "EdDSA"],
        audience=RESOURCE,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]},
    )
    return claims


def test_authlib_validates_both_metadata_documents(oauthd: Config) -> None:
    """RFC 8414 §2, OIDC Discovery §3: Authlib validates the documents before it does anything
    else; both pass, the OpenID one with every OIDC rule (RS256 for ID tokens)."""
    base = oauthd.url + "/.well-known/"
    rfc8414 = httpx.get(base + "oauth-authorization-server", timeout=5).json()
    AuthorizationServerMetadata(rfc8414).validate()
    openid = httpx.get(base + "openid-configuration", timeout=5).json()
    OpenIDProviderMetadata(openid).validate()
    assert rfc8414["issuer"] == openid["issuer"] == oauthd.issuer


def test_pyjwt_verifies_an_id_token_from_the_rfc8414_document_alone(oauthd: Config) -> None:
    """A relying party that reads only /.well-known/oauth-authorization-server (jwks_uri and
    id_token_signing_alg_values_supported) verifies the ID token of a real code flow with
    PyJWKClient, in RS256, the algorithm OIDC gives clients that registered none."""
    metadata = httpx.get(oauthd.url + "/.well-known/oauth-authorization-server", timeout=5).json()
    algorithms = metadata["id_token_signing_alg_values_supported"]
    assert "RS256" in algorithms
    registered = httpx.post(
        metadata["registration_endpoint"],
        json={"redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"},
        timeout=5,
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    verifier, challenge = pkce()
    nonce = generate_token(16)
    with httpx.Client(base_url=oauthd.url, timeout=5) as browser:
        authorize = browser.build_request(
            "GET",
            metadata["authorization_endpoint"],
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT_URI,
                "scope": "openid email",
                "state": "s1",
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        code = query_of(sign_in_and_consent(browser, str(authorize.url)))["code"]
        token = httpx.post(
            metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": REDIRECT_URI,
                "client_id": client_id,
            },
            timeout=5,
        )
    assert token.status_code == 200, token.text
    id_token = token.json()["id_token"]

    jwks = jwt.PyJWKClient(metadata["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(id_token)
    claims = jwt.decode(
        id_token,
        key,
        algorithms=algorithms,
        audience=client_id,
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "iss", "sub", "aud"]},
    )
    assert jwt.get_unverified_header(id_token)["alg"] == "RS256"
    assert claims["nonce"] == nonce
    assert claims["sub"]
