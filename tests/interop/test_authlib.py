"""An independent OAuth client against a real `oauthd serve`: Authlib's httpx OAuth2Client with
PKCE S256 and a resource indicator, a person driving the login and consent pages, and PyJWT
verifying the access token against the published JWKS; then introspection and revocation by
a confidential client, client_credentials, and the device flow, each as Authlib does them;
Authlib's metadata validation of both discovery documents, and a PyJWT relying party that
reads only the RFC 8414 document. Each runs at the root issuer and at a path tenant's
(`<root>/t/acme`, added with `oauthd tenants add`), found through RFC 8414 §3.1's
path-inserted metadata URL."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jwt
import pytest
from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from tests.flow import ALICE, RESOURCE, form_field, pkce, query_of
from tests.interop.test_cli import Config, run, serving, write_config

with warnings.catch_warnings():
    # Authlib prefers the `httpx2` distribution and warns when it falls back to httpx.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

REDIRECT_URI = "http://127.0.0.1:61023/callback"


# What a tenant needs for these flows, as the root's file has it: the resource, and
# self-registered clients allowed client_credentials (off by default).
TABLES = (
    f'[[resources]]\nuri = "{RESOURCE}"\nscopes = ["mcp:tools"]\n'
    "[registration]\nallow_client_credentials = true\n"
)


@pytest.fixture(scope="module", params=["root", "path tenant"])
def oauthd(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Config]:
    """`oauthd serve` in dev mode on a free loopback port; the flows run at its root issuer,
    or at a path tenant `<root>/t/acme` added by `oauthd tenants add` before it starts. One
    server for the module's tests: each registers clients of its own."""
    tmp_path = tmp_path_factory.mktemp("authlib")
    config = write_config(tmp_path, TABLES + '[log]\nlevel = "warning"\n')
    if request.param == "path tenant":
        settings = tmp_path / "acme.toml"
        settings.write_text(TABLES, encoding="utf-8")
        added = run(
            "tenants", "add", "acme", "--config", str(config.path), "--settings", str(settings)
        )
        assert added.returncode == 0, added.stderr
    with serving(config, tmp_path / "stderr.log"):
        if request.param == "root":
            yield config
        else:
            issuer = f"{config.issuer}/t/acme"
            yield Config(config.path, issuer, issuer)


def well_known(issuer: str, name: str) -> str:
    """RFC 8414 §3.1: the well-known segment goes between the issuer's host and its path."""
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}/.well-known/{name}{parts.path}"


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


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def discover(oauthd: Config) -> dict[str, Any]:
    response = httpx.get(well_known(oauthd.issuer, "oauth-authorization-server"), timeout=5)
    metadata: dict[str, Any] = response.json()
    return metadata


def register(metadata: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = httpx.post(metadata["registration_endpoint"], json=body, timeout=5)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


def register_web_client(metadata: dict[str, Any], method: str, name: str) -> dict[str, Any]:
    """A code-flow client registered over HTTP (RFC 7591) with auth `method`."""
    return register(
        metadata,
        redirect_uris=["http://127.0.0.1/callback"],
        token_endpoint_auth_method=method,
        grant_types=["authorization_code", "refresh_token"],
        client_name=name,
    )


def web_client(registered: dict[str, Any], scope: str) -> OAuth2Client:
    """Authlib's client for the code flow with S256 PKCE, as registered."""
    return OAuth2Client(
        client_id=registered["client_id"],
        client_secret=registered.get("client_secret"),
        token_endpoint_auth_method=registered["token_endpoint_auth_method"],
        scope=scope,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        timeout=5,
    )


def code_flow(client: OAuth2Client, browser: httpx.Client, metadata: dict[str, Any]) -> Any:
    """Authlib's authorization URL with S256 PKCE and RESOURCE, a person allowing it, and the
    code exchanged; the callback carries the state and the issuer (RFC 9207)."""
    verifier = generate_token(64)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, resource=RESOURCE
    )
    callback = sign_in_and_consent(browser, url)
    params = query_of(callback)
    assert params["state"] == state
    assert params["iss"] == metadata["issuer"]
    return client.fetch_token(
        metadata["token_endpoint"],
        authorization_response=callback,
        code_verifier=verifier,
        resource=RESOURCE,
    )


def test_authlib_code_flow_with_pkce_refresh_and_jwks_verification(oauthd: Config) -> None:
    """Authlib registers nothing of its own: DCR over HTTP, then the code flow with S256 PKCE,
    a refresh with rotation, and RFC 9068 access tokens verified with PyJWKClient."""
    metadata = discover(oauthd)
    assert "S256" in metadata["code_challenge_methods_supported"]
    registered = register_web_client(metadata, "none", "authlib interop")
    client_id = registered["client_id"]

    with (
        web_client(registered, "openid email mcp:tools") as client,
        httpx.Client(base_url=oauthd.url, timeout=5) as browser,
    ):
        token = code_flow(client, browser, metadata)
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


def test_authlib_confidential_client_introspects_and_revokes(oauthd: Config) -> None:
    """RFC 7662 §2.1 and RFC 7009 §2.1 as Authlib sends them (client_secret_basic): the
    client's AT and RT introspect active; revoking the RT ends the grant, AT included."""
    metadata = discover(oauthd)
    registered = register_web_client(metadata, "client_secret_basic", "authlib confidential")
    with (
        web_client(registered, "openid mcp:tools") as client,
        httpx.Client(base_url=oauthd.url, timeout=5) as browser,
    ):
        token = code_flow(client, browser, metadata)
        endpoint = metadata["introspection_endpoint"]
        access = client.introspect_token(endpoint, token=token["access_token"]).json()
        assert access["active"] is True
        assert access["client_id"] == registered["client_id"]
        assert access["aud"] == RESOURCE
        refresh = client.introspect_token(
            endpoint, token=token["refresh_token"], token_type_hint="refresh_token"
        ).json()
        assert refresh["active"] is True
        assert refresh["token_type"] == "refresh_token"

        revoked = client.revoke_token(
            metadata["revocation_endpoint"],
            token=token["refresh_token"],
            token_type_hint="refresh_token",
        )
        assert revoked.status_code == 200, revoked.text
        for kind in ("access_token", "refresh_token"):
            assert client.introspect_token(endpoint, token=token[kind]).json() == {"active": False}


def test_authlib_client_credentials(oauthd: Config) -> None:
    """OAuth 2.1 §4.2, RFC 9068 §2.2: a machine client gets a token for the resource with
    its own id as `sub`, and no refresh token."""
    metadata = discover(oauthd)
    machine = register(
        metadata,
        token_endpoint_auth_method="client_secret_basic",
        grant_types=["client_credentials"],
        scope="mcp:tools",
        client_name="authlib machine",
    )
    with OAuth2Client(
        client_id=machine["client_id"],
        client_secret=machine["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
        scope="mcp:tools",
        timeout=5,
    ) as client:
        token = client.fetch_token(
            metadata["token_endpoint"], grant_type="client_credentials", resource=RESOURCE
        )
    assert "refresh_token" not in token
    jwks = jwt.PyJWKClient(metadata["jwks_uri"].replace(oauthd.issuer, oauthd.url))
    claims = verify(jwks, token["access_token"], metadata["issuer"])
    assert claims["sub"] == claims["client_id"] == machine["client_id"]
    assert claims["scope"] == "mcp:tools"


def approve_device(browser: httpx.Client, user_code: str) -> None:
    """A person on another device: enter the code, log in, allow."""
    response = browser.get("/device", params={"user_code": user_code})
    for _ in range(4):
        if response.status_code == 200:
            assert "signed in on your device" in response.text
            return
        assert response.status_code in (302, 303), response.text
        location = urljoin(str(response.url), response.headers["location"])
        page = browser.get(location)
        form = {"request": form_field(page.text, "request"), "csrf": form_field(page.text, "csrf")}
        if "/login" in location:
            response = browser.post(
                "/login", data={**form, "email": ALICE[0], "password": ALICE[1]}
            )
        else:
            response = browser.post("/consent", data={**form, "decision": "allow"})
    raise AssertionError("the device flow did not finish")


def test_authlib_device_flow(oauthd: Config) -> None:
    """RFC 8628 §3.1-§3.5 as in the README's example: Authlib starts the flow, a person
    approves it elsewhere, and Authlib's token request gets the tokens, which then work at
    /userinfo."""
    metadata = discover(oauthd)
    registered = register(
        metadata,
        token_endpoint_auth_method="none",
        grant_types=[DEVICE_GRANT, "refresh_token"],
        client_name="authlib device",
    )
    with (
        OAuth2Client(
            client_id=registered["client_id"], token_endpoint_auth_method="none", timeout=5
        ) as client,
        httpx.Client(base_url=oauthd.url, timeout=5) as browser,
    ):
        device = client.request(
            "POST",
            metadata["device_authorization_endpoint"],
            data={"client_id": registered["client_id"], "scope": "openid email"},
            withhold_token=True,
        ).json()
        approve_device(browser, device["user_code"])
        token = client.fetch_token(
            metadata["token_endpoint"], grant_type=DEVICE_GRANT, device_code=device["device_code"]
        )
        assert "refresh_token" in token
        userinfo = client.get(metadata["userinfo_endpoint"].replace(oauthd.issuer, oauthd.url))
        assert userinfo.status_code == 200, userinfo.text
        assert userinfo.json()["email"] == ALICE[0]


def test_authlib_validates_both_metadata_documents(oauthd: Config) -> None:
    """RFC 8414 §2, OIDC Discovery §3: Authlib validates the documents before it does anything
    else; both pass, the OpenID one with every OIDC rule (RS256 for ID tokens)."""
    rfc8414 = discover(oauthd)
    AuthorizationServerMetadata(rfc8414).validate()
    # OIDC Discovery §4: the document is at the issuer with the well-known path appended
    openid = httpx.get(oauthd.issuer + "/.well-known/openid-configuration", timeout=5).json()
    OpenIDProviderMetadata(openid).validate()
    assert rfc8414["issuer"] == openid["issuer"] == oauthd.issuer


def test_pyjwt_verifies_an_id_token_from_the_rfc8414_document_alone(oauthd: Config) -> None:
    """A relying party that reads only /.well-known/oauth-authorization-server (jwks_uri and
    id_token_signing_alg_values_supported) verifies the ID token of a real code flow with
    PyJWKClient, in RS256, the algorithm OIDC gives clients that registered none."""
    metadata = discover(oauthd)
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
