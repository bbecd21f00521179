"""JWT access tokens (RFC 9068) and ID tokens (OIDC Core §2, §3.1.3), verified as a resource
server and a relying party would: PyJWT with PyJWKClient against /.well-known/jwks.json."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
import trio
from jwt import PyJWKClient

from oauthd.settings import ClientSettings, KeySettings, Settings
from tests.conftest import ISSUER, Server, running_server
from tests.flow import RESOURCE, Authorization, register, tokens_for

ALGORITHMS = ["ES256", "RS256", "EdDSA"]
AT_TTL_S = 3600  # TokenSettings.access_token_ttl_s default
ID_ALG = "RS256"  # OIDC Core §3.1.3.7: ID tokens are RS256 unless the client registered another


@pytest.fixture(params=ALGORITHMS)
async def server(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[Server]:
    """One server per signing algorithm the settings offer."""
    settings = make_settings(keys=KeySettings(algorithm=request.param))
    async with running_server(settings) as s:
        yield s


class Verifier:
    """A relying party's view: keys from the JWKS over HTTP, nothing from the server's state."""

    def __init__(self, server: Server) -> None:
        self.jwks = PyJWKClient(server.base_url + "/.well-known/jwks.json", cache_keys=False)
        self.algorithm = server.settings.keys.algorithm

    async def decode(
        self, token: str, audience: str, algorithm: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(header, claims) of a token in `algorithm` (the access tokens' by default);
        PyJWKClient fetches with urllib, so it runs off the event loop."""
        key = await trio.to_thread.run_sync(self.jwks.get_signing_key_from_jwt, token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm or self.algorithm],
            audience=audience,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "sub", "aud"]},
        )
        return jwt.get_unverified_header(token), claims


async def flow(server: Server, **fields: Any) -> tuple[Authorization, dict[str, Any]]:
    client = await register(server.http)
    auth = Authorization(client["client_id"], **fields)
    return auth, await tokens_for(server.http, auth)


async def refresh(http: httpx.AsyncClient, client_id: str, token: str) -> dict[str, Any]:
    response = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def expected_at_hash(access_token: str, alg: str) -> str:
    """OIDC Core §3.1.3.6: left half of the hash named by alg (SHA-512 for Ed25519)."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


# --- JWT access tokens (RFC 9068) ----------------------------------------------------------


async def test_rfc9068_s2_1_header_typ_alg_and_kid(server: Server) -> None:
    """JWTAT-1/JWKS-4: typ at+jwt, the configured alg (never none), a kid in the JWKS."""
    _, tokens = await flow(server)
    header, _ = await Verifier(server).decode(tokens["access_token"], RESOURCE)
    assert header["typ"].lower() in ("at+jwt", "application/at+jwt")
    assert header["alg"] == server.settings.keys.algorithm
    jwks = (await server.http.get("/.well-known/jwks.json")).json()["keys"]
    key = next(k for k in jwks if k["kid"] == header["kid"])
    assert key["alg"] == header["alg"]


async def test_rfc9068_s2_2_required_claims(server: Server) -> None:
    """JWTAT-2/4/5: iss, sub, aud, client_id, scope, iat, exp, jti; exp - iat == expires_in."""
    auth, tokens = await flow(server, scope="openid email mcp:tools")
    before = int(time.time())
    _, claims = await Verifier(server).decode(tokens["access_token"], RESOURCE)
    assert claims["iss"] == ISSUER
    assert claims["aud"] == RESOURCE
    assert claims["client_id"] == auth.client_id
    assert claims["scope"] == tokens["scope"] == "openid email mcp:tools"
    assert isinstance(claims["sub"], str)
    assert claims["sub"]
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16
    assert claims["exp"] > claims["iat"]
    assert claims["exp"] - claims["iat"] == tokens["expires_in"] == AT_TTL_S
    assert abs(claims["iat"] - before) <= 5
    # RFC 9068 §6: no personal data beyond what the resource needs.
    assert "email" not in claims
    assert "name" not in claims


async def test_rfc9068_s2_2_jti_is_unique(server: Server) -> None:
    """JWTAT-2: every access token has its own jti, across codes and refreshes."""
    verifier = Verifier(server)
    auth, tokens = await flow(server)
    access_tokens = [tokens["access_token"]]
    rt = tokens["refresh_token"]
    for _ in range(3):
        body = await refresh(server.http, auth.client_id, rt)
        access_tokens.append(body["access_token"])
        rt = body["refresh_token"]
    _, other = await flow(server)
    access_tokens.append(other["access_token"])
    jtis = {(await verifier.decode(at, RESOURCE))[1]["jti"] for at in access_tokens}
    assert len(jtis) == len(access_tokens)


async def test_rfc9068_s3_audience_is_the_issuer_without_resource(server: Server) -> None:
    """JWTAT-3/RES-3: without resource the token is for the issuer itself, never audience-less."""
    _, tokens = await flow(server, resource=None)
    _, claims = await Verifier(server).decode(tokens["access_token"], ISSUER)
    assert claims["aud"] == ISSUER


async def test_rfc9068_s3_token_for_a_resource_is_not_for_the_issuer(server: Server) -> None:
    """JWTAT-3: a token for RESOURCE does not verify for another audience."""
    _, tokens = await flow(server)
    with pytest.raises(jwt.InvalidAudienceError):
        await Verifier(server).decode(tokens["access_token"], ISSUER)


async def test_rfc9068_s2_2_sub_matches_id_token_and_userinfo(server: Server) -> None:
    """JWTAT-6/USERINFO-2: AT sub == ID token sub == /userinfo sub for the same user."""
    auth, tokens = await flow(server, resource=None)
    verifier = Verifier(server)
    _, at = await verifier.decode(tokens["access_token"], ISSUER)
    _, idt = await verifier.decode(tokens["id_token"], auth.client_id, ID_ALG)
    info = await server.http.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 200
    assert at["sub"] == idt["sub"] == info.json()["sub"]


async def test_rfc9068_s4_id_token_is_not_an_access_token(server: Server) -> None:
    """JWTAT-7: an ID token is not typ at+jwt, and /userinfo refuses it: 401 invalid_token."""
    _, tokens = await flow(server, resource=None)
    header = jwt.get_unverified_header(tokens["id_token"])
    assert header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt")
    info = await server.http.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['id_token']}"}
    )
    assert info.status_code == 401
    assert 'error="invalid_token"' in info.headers["www-authenticate"]


# --- ID tokens (OIDC Core) -----------------------------------------------------------------


async def test_oidc_s3_1_3_3_id_token_only_with_openid(server: Server) -> None:
    """OIDC-1: scope with openid returns an id_token; without openid there is none."""
    _, with_openid = await flow(server, scope="openid")
    assert "id_token" in with_openid
    _, without = await flow(server, scope="email mcp:tools")
    assert "id_token" not in without


async def test_oidc_s2_id_token_claims(server: Server) -> None:
    """OIDC-2/3/5: RS256 by default; iss, sub, aud = client_id, iat, exp, auth_time, nonce,
    at_hash."""
    nonce = "n-0S6_WzA2Mj"
    auth, tokens = await flow(server, extra={"nonce": nonce})
    header, claims = await Verifier(server).decode(tokens["id_token"], auth.client_id, ID_ALG)
    assert header["alg"] == "RS256"  # whatever signs access tokens
    assert claims["iss"] == ISSUER
    assert claims["aud"] == auth.client_id
    assert "azp" not in claims or claims["azp"] == auth.client_id
    assert claims["exp"] > time.time()
    assert claims["auth_time"] <= claims["iat"]
    assert claims["nonce"] == nonce
    assert 0 < len(claims["sub"]) <= 255
    assert claims["sub"].isascii()
    assert claims["at_hash"] == expected_at_hash(tokens["access_token"], header["alg"])


async def test_oidc_s3_1_2_1_no_nonce_claim_without_a_nonce(server: Server) -> None:
    """OIDC-3: no nonce in the request, no nonce claim."""
    auth, tokens = await flow(server)
    _, claims = await Verifier(server).decode(tokens["id_token"], auth.client_id, ID_ALG)
    assert "nonce" not in claims


async def test_oidc_s12_2_id_token_on_refresh(server: Server) -> None:
    """OIDC-2 (§12.2): a refreshed ID token keeps iss, sub, aud, auth_time; no nonce; at_hash
    matches the new access token."""
    auth, tokens = await flow(server, extra={"nonce": "abc"})
    verifier = Verifier(server)
    _, first = await verifier.decode(tokens["id_token"], auth.client_id, ID_ALG)
    body = await refresh(server.http, auth.client_id, tokens["refresh_token"])
    header, again = await verifier.decode(body["id_token"], auth.client_id, ID_ALG)
    assert (again["iss"], again["sub"], again["aud"], again["auth_time"]) == (
        first["iss"],
        first["sub"],
        first["aud"],
        first["auth_time"],
    )
    assert again["iat"] >= first["iat"]
    assert "nonce" not in again
    assert again["at_hash"] == expected_at_hash(body["access_token"], header["alg"])


async def test_oidc_registration_s2_id_token_in_the_registered_algorithm(server: Server) -> None:
    """OIDC Registration §2: id_token_signed_response_alg, when registered, signs the ID
    token (here the configured algorithm); access tokens keep the configured algorithm."""
    algorithm = server.settings.keys.algorithm
    client = await register(server.http, id_token_signed_response_alg=algorithm)
    assert client["id_token_signed_response_alg"] == algorithm
    auth = Authorization(client["client_id"], resource=None)
    tokens = await tokens_for(server.http, auth)
    verifier = Verifier(server)
    header, claims = await verifier.decode(tokens["id_token"], auth.client_id, algorithm)
    assert header["alg"] == algorithm
    assert claims["at_hash"] == expected_at_hash(tokens["access_token"], algorithm)
    access_header, _ = await verifier.decode(tokens["access_token"], ISSUER)
    assert access_header["alg"] == algorithm


async def test_oidc_registration_s2_configured_client_id_token_alg(
    make_settings: Callable[..., Settings],
) -> None:
    """OIDC Registration §2: a [[clients]] entry's id_token_signed_response_alg signs its ID
    tokens, at the code redemption and at refresh; without it they are RS256."""
    configured = ClientSettings(
        "es-ids",
        redirect_uris=("http://127.0.0.1:5555/cb",),
        token_endpoint_auth_method="none",
        scope="openid email mcp:tools",
        id_token_signed_response_alg="ES256",
    )
    settings = make_settings(keys=KeySettings(algorithm="ES256"), clients=(configured,))
    async with running_server(settings) as server:
        auth = Authorization("es-ids", scope="openid email")
        tokens = await tokens_for(server.http, auth)
        verifier = Verifier(server)
        header, claims = await verifier.decode(tokens["id_token"], "es-ids", "ES256")
        assert header["alg"] == "ES256"
        assert claims["at_hash"] == expected_at_hash(tokens["access_token"], "ES256")
        body = await refresh(server.http, "es-ids", tokens["refresh_token"])
        header, _ = await verifier.decode(body["id_token"], "es-ids", "ES256")
        assert header["alg"] == "ES256"
        registered, other = await flow(server)
        header, _ = await verifier.decode(other["id_token"], registered.client_id, ID_ALG)
        assert header["alg"] == ID_ALG


@pytest.mark.parametrize("alg", ["none", "HS256", "PS256", "", 7])
async def test_oidc_registration_s2_unsupported_id_token_alg_is_invalid_client_metadata(
    server: Server, alg: object
) -> None:
    """OIDC Registration §2: an id_token_signed_response_alg not in
    id_token_signing_alg_values_supported is refused: 400 invalid_client_metadata."""
    response = await server.http.post(
        "/register",
        json={
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none",
            "id_token_signed_response_alg": alg,
        },
    )
    if alg == "":  # an empty string is the member left out: the RS256 default
        assert response.status_code == 201, response.text
        return
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
