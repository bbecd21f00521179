"""Untrusted compact JWS at every endpoint that reads one (/userinfo, /introspect, /revoke, and
client_assertion at /token): base64url is strict (RFC 7515 §2) and JSON nesting is bounded
(RFC 8259 §9), so malformed tokens are refused with the endpoint's own error, never a 500."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt

from tests.conftest import Server
from tests.spec.test_rfc7009_revocation import (
    CONF_ID,
    CONF_SECRET,
    confidential_tokens,
    server,
    server_key,
)
from tests.spec.test_rfc7523_private_key_jwt import (
    ClientKey,
    assert_invalid_client,
    claims_for,
    register_jwt_client,
    sign,
    token,
)

NESTED = b"[" * 5000  # deeper than Python's JSON parser can recurse
__all__ = ["server"]  # the fixture: oauthd with a confidential client (CONF_ID)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def access_token(server: Server) -> str:
    """An access token for the issuer itself, so that /userinfo accepts it."""
    access: str = (await confidential_tokens(server, resource=None))["access_token"]
    return access


async def nested_tokens(server: Server) -> list[str]:
    """A nested header; and a nested payload validly signed by the server's own key."""
    access = await access_token(server)
    _, payload, signature = access.split(".")
    kid, key = server_key(server.settings, access)
    signed = jwt.api_jws.encode(NESTED, key, algorithm="ES256", headers={"kid": kid})
    return [f"{b64(NESTED)}.{payload}.{signature}", signed]


def with_junk(token: str, index: int = 2) -> str:
    """Non-alphabet characters inside one segment (the signature by default): base64 decoders
    that skip them read the same bytes."""
    parts = token.split(".")
    parts[index] = f"{parts[index][:8]}!!~~{parts[index][8:]}"
    return ".".join(parts)


async def userinfo(http: httpx.AsyncClient, access: str) -> httpx.Response:
    return await http.get("/userinfo", headers={"Authorization": f"Bearer {access}"})


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_rfc8259_s9_nested_json_in_a_token_is_invalid_token_at_userinfo(
    server: Server,
) -> None:
    """RFC 8259 §9 (a parser may limit nesting), OIDC Core §5.3.3: a token whose header or
    claims nest past the limit -> 401 invalid_token, not 500."""
    for access in await nested_tokens(server):
        assert_invalid_token(await userinfo(server.http, access))


async def test_rfc8259_s9_nested_json_in_a_token_is_inactive_at_introspect(
    server: Server,
) -> None:
    """RFC 7662 §2.2: a malformed token introspects as exactly {"active": false}."""
    for access in await nested_tokens(server):
        response = await server.http.post(
            "/introspect", data={"token": access}, auth=(CONF_ID, CONF_SECRET)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"active": False}


async def test_rfc8259_s9_nested_json_in_a_token_is_200_at_revoke(server: Server) -> None:
    """RFC 7009 §2.2: an invalid token is answered 200 and changes nothing."""
    for access in await nested_tokens(server):
        response = await server.http.post(
            "/revoke", data={"token": access}, auth=(CONF_ID, CONF_SECRET)
        )
        assert response.status_code == 200, response.text


async def test_rfc8259_s9_nested_json_in_a_client_assertion_is_invalid_client(
    server: Server,
) -> None:
    """RFC 7523 §3.2: a malformed client_assertion -> 401 invalid_client, not 500."""
    key = ClientKey()
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    header, payload, signature = sign(key, claims_for(client_id)).split(".")
    for assertion in (f"{b64(NESTED)}.{payload}.{signature}", f"{header}.{b64(NESTED)}."):
        assert_invalid_client(await token(server.http, assertion, client_id=client_id))
    nested_claims = {**claims_for(client_id), "x": json.loads("[" * 900 + "]" * 900)}
    deep = sign(key, nested_claims)  # valid signature, claims nested past the limit
    assert_invalid_client(await token(server.http, deep, client_id=client_id))


async def test_s2_non_alphabet_characters_in_a_signature_are_refused_at_userinfo(
    server: Server,
) -> None:
    """RFC 7515 §2, §5.2: base64url uses the URL-safe alphabet and no padding; a signature
    with other characters in it is not the signature -> 401 invalid_token."""
    access = await access_token(server)
    assert (await userinfo(server.http, access)).status_code == 200
    for bad in (with_junk(access), access + "=", access.replace(".", ". ", 1)):
        assert_invalid_token(await userinfo(server.http, bad))


async def test_s2_non_alphabet_characters_make_a_token_inactive_at_introspect(
    server: Server,
) -> None:
    """RFC 7515 §2; RFC 7662 §2.2: the same token with junk characters is not active."""
    access = await access_token(server)
    response = await server.http.post(
        "/introspect", data={"token": with_junk(access)}, auth=(CONF_ID, CONF_SECRET)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"active": False}


async def test_s2_non_alphabet_characters_in_a_client_assertion_are_invalid_client(
    server: Server,
) -> None:
    """RFC 7515 §2; RFC 7523 §3.2: junk in the assertion's signature -> 401 invalid_client."""
    key = ClientKey()
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    assertion = sign(key, claims_for(client_id, exp=int(time.time()) + 60))
    for index in (0, 1, 2):
        assert_invalid_client(await token(server.http, with_junk(assertion, index)))
