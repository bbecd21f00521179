"""RFC 7523 §2.2, §3; OIDC Core §9: `private_key_jwt` client authentication at /token
(TOKEN-14, TOKEN-15, REG-11, DISC-7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import jwt
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oauthd.server import serve
from oauthd.settings import ClientSettings, Settings
from tests.conftest import ISSUER, ManualClock, Server

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWKS_URI = "https://client.example/jwks.json"


class ClientKey:
    """An EC P-256 key pair as the client holds it, with its public JWK."""

    def __init__(self, kid: str = "k1") -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.jwk: dict[str, Any] = {
            **json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key())),
            "kid": kid,
        }

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def claims_for(client_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(16),
        **changes,
    }
    return {k: v for k, v in claims.items() if v is not None}


def sign(key: ClientKey, claims: dict[str, Any], **header: Any) -> str:
    return jwt.encode(claims, key.private, algorithm="ES256", headers={"kid": key.kid, **header})


def hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """By hand: PyJWT rightly refuses public keys as HMAC secrets."""
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = b".".join(base64url(json.dumps(part).encode()) for part in (header, claims))
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64url(signature)).decode()


def base64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]  # alg none


async def register_jwt_client(http: httpx.AsyncClient, **metadata: Any) -> str:
    body = {
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["client_credentials"],
        "scope": "mcp:tools",
        **metadata,
    }
    response = await http.post("/register", json=body)
    assert response.status_code == 201, response.text
    assert "client_secret" not in response.json()
    client_id: str = response.json()["client_id"]
    return client_id


async def token(http: httpx.AsyncClient, assertion: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }
    return await http.post("/token", data=form)


def assert_invalid_client(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"


@pytest.fixture
def key() -> ClientKey:
    return ClientKey()


# --- TOKEN-14: the good assertion --------------------------------------------------------


async def test_s3_assertion_signed_by_registered_key_authenticates(
    server: Server, key: ClientKey
) -> None:
    """TOKEN-14: iss = sub = client_id, aud = issuer, exp, jti, registered key -> 200."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    response = await token(server.http, sign(key, claims_for(client_id)), client_id=client_id)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


async def test_s3_client_id_parameter_is_optional(server: Server, key: ClientKey) -> None:
    """TOKEN-14, RFC 7523 §3.1: client_id may be left out; the assertion names the client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    response = await token(server.http, sign(key, claims_for(client_id)))
    assert response.status_code == 200, response.text


async def test_s3_token_endpoint_url_as_aud_is_accepted(server: Server, key: ClientKey) -> None:
    """TOKEN-15 (MAY): aud = the token endpoint URL is accepted for compatibility."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    assertion = sign(key, claims_for(client_id, aud=f"{ISSUER}/token"))
    assert (await token(server.http, assertion)).status_code == 200


# --- TOKEN-15: every negative is 401 invalid_client ----------------------------------------


async def test_s3_expired_exp_is_invalid_client(server: Server, key: ClientKey) -> None:
    """TOKEN-15: an expired exp -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    past = int(time.time()) - 10
    assertion = sign(key, claims_for(client_id, iat=past - 60, exp=past))
    assert_invalid_client(await token(server.http, assertion))


async def test_s3_exp_too_far_ahead_is_invalid_client(server: Server, key: ClientKey) -> None:
    """TOKEN-15: an assertion valid for hours (a long replay window) -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    assertion = sign(key, claims_for(client_id, exp=int(time.time()) + 3600))
    assert_invalid_client(await token(server.http, assertion))


async def test_s3_aud_of_another_server_is_invalid_client(server: Server, key: ClientKey) -> None:
    """TOKEN-15: aud = another authorization server -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    assertion = sign(key, claims_for(client_id, aud="https://other-as.example"))
    assert_invalid_client(await token(server.http, assertion))


async def test_s3_multi_valued_aud_is_invalid_client(server: Server, key: ClientKey) -> None:
    """TOKEN-15 (rfc7523bis): aud as an array, even holding the issuer -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    assertion = sign(key, claims_for(client_id, aud=[ISSUER, "https://other-as.example"]))
    assert_invalid_client(await token(server.http, assertion))


async def test_s3_iss_differs_from_sub_is_invalid_client(server: Server, key: ClientKey) -> None:
    """TOKEN-15: iss != sub -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    assertion = sign(key, claims_for(client_id, iss="someone-else"))
    assert_invalid_client(await token(server.http, assertion))


async def test_s3_unregistered_key_is_invalid_client(server: Server, key: ClientKey) -> None:
    """TOKEN-15: signed by a key the client did not register -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    stranger = ClientKey(kid=key.kid)  # same kid, other key: the signature must fail
    assert_invalid_client(await token(server.http, sign(stranger, claims_for(client_id))))
    unknown = ClientKey(kid="unknown")
    assert_invalid_client(await token(server.http, sign(unknown, claims_for(client_id))))


async def test_s3_alg_none_is_invalid_client(server: Server, key: ClientKey) -> None:
    """TOKEN-15, RFC 8725 §3.1: alg none -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    assert_invalid_client(await token(server.http, unsigned(claims_for(client_id))))


async def test_s3_hs256_with_public_key_as_secret_is_invalid_client(
    server: Server, key: ClientKey
) -> None:
    """TOKEN-15: HS256 with the client's public key as the HMAC secret -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    for material in (json.dumps(key.jwk).encode(), key.public_pem()):
        assertion = hs256(claims_for(client_id), material, key.kid)
        assert_invalid_client(await token(server.http, assertion))


async def test_s3_missing_jti_is_invalid_client(server: Server, key: ClientKey) -> None:
    """TOKEN-15, OIDC Core §9: no jti -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    assertion = sign(key, claims_for(client_id, jti=None))
    assert_invalid_client(await token(server.http, assertion))


async def test_s3_reused_jti_is_invalid_client(server: Server, key: ClientKey) -> None:
    """TOKEN-15 (RFC 7523 §3 item 7): the same assertion a second time -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    assertion = sign(key, claims_for(client_id))
    assert (await token(server.http, assertion)).status_code == 200
    assert_invalid_client(await token(server.http, assertion))
    # A new jti with the same key works again.
    assert (await token(server.http, sign(key, claims_for(client_id)))).status_code == 200


async def test_s3_reused_jti_at_introspection_is_invalid_client(
    server: Server, key: ClientKey
) -> None:
    """INTRO-7, TOKEN-15: an assertion is spent at /introspect as at /token: the same one a
    second time there, or then at /token, is 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    form = {"token": "opaque", "client_assertion_type": ASSERTION_TYPE}
    assertion = sign(key, claims_for(client_id))
    first = await server.http.post("/introspect", data={**form, "client_assertion": assertion})
    assert first.status_code == 200, first.text
    assert first.json() == {"active": False}
    again = await server.http.post("/introspect", data={**form, "client_assertion": assertion})
    assert_invalid_client(again)
    assert_invalid_client(await token(server.http, assertion))


async def test_s3_jti_stays_used_when_the_grant_fails(server: Server, key: ClientKey) -> None:
    """TOKEN-15: an assertion spent on a failed grant (invalid_scope) cannot be replayed."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    assertion = sign(key, claims_for(client_id))
    response = await token(server.http, assertion, scope="not-registered")
    assert response.json()["error"] == "invalid_scope"
    assert_invalid_client(await token(server.http, assertion))


async def test_s3_client_id_must_match_assertion(server: Server, key: ClientKey) -> None:
    """TOKEN-14, RFC 7523 §3.1: a client_id other than the assertion's -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    other = await register_jwt_client(server.http, jwks=ClientKey().jwks)
    response = await token(server.http, sign(key, claims_for(client_id)), client_id=other)
    assert_invalid_client(response)


async def test_s2_2_wrong_assertion_type_is_invalid_client(server: Server, key: ClientKey) -> None:
    """TOKEN-15, RFC 7523 §2.2: an unknown client_assertion_type -> 401 invalid_client."""
    client_id = await register_jwt_client(server.http, jwks=key.jwks)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:example:other",
        "client_assertion": sign(key, claims_for(client_id)),
    }
    assert_invalid_client(await server.http.post("/token", data=form))


async def test_s3_secret_client_cannot_use_an_assertion(server: Server, key: ClientKey) -> None:
    """RFC 7591 §2: a client authenticates with its registered method only -> invalid_client."""
    response = await server.http.post(
        "/register",
        json={"grant_types": ["client_credentials"], "scope": "mcp:tools", "jwks": key.jwks},
    )
    client_id = response.json()["client_id"]
    assert_invalid_client(await token(server.http, sign(key, claims_for(client_id))))


async def test_s3_garbage_assertion_is_invalid_client(server: Server) -> None:
    """TOKEN-15: a client_assertion that is not a JWT -> 401 invalid_client."""
    assert_invalid_client(await token(server.http, "not.a.jwt"))
    assert_invalid_client(await token(server.http, "garbage"))


# --- REG-11: registration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        {},  # neither jwks nor jwks_uri
        {"jwks": {"keys": []}},
        {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
        {"jwks_uri": "http://client.example/jwks.json"},  # not https
    ],
)
async def test_rfc7591_s2_private_key_jwt_needs_usable_keys(
    server: Server, metadata: dict[str, Any]
) -> None:
    """REG-11: private_key_jwt without (usable) jwks or jwks_uri -> invalid_client_metadata."""
    body = {"token_endpoint_auth_method": "private_key_jwt", "grant_types": ["client_credentials"]}
    response = await server.http.post("/register", json={**body, **metadata})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"


async def test_rfc7591_s2_jwks_and_jwks_uri_together_are_refused(
    server: Server, key: ClientKey
) -> None:
    """REG-11: jwks and jwks_uri both present -> 400 invalid_client_metadata."""
    body = {
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["client_credentials"],
        "jwks": key.jwks,
        "jwks_uri": JWKS_URI,
    }
    response = await server.http.post("/register", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


async def test_rfc7591_s2_private_jwk_is_refused(server: Server, key: ClientKey) -> None:
    """REG-11: a JWK set carrying a private key -> 400 invalid_client_metadata."""
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.private))
    body = {
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["client_credentials"],
        "jwks": {"keys": [private]},
    }
    response = await server.http.post("/register", json=body)
    assert response.json()["error"] == "invalid_client_metadata"


# --- DISC-7 ----------------------------------------------------------------------------------


async def test_rfc8414_s2_metadata_advertises_private_key_jwt(server: Server) -> None:
    """DISC-7: private_key_jwt listed, with signing algorithms that never include none."""
    metadata = (await server.http.get("/.well-known/oauth-authorization-server")).json()
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    algs = metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert algs
    assert "none" not in algs
    assert not any(alg.startswith("HS") for alg in algs)


# --- jwks_uri through the Fetcher, and config clients ------------------------------------------


class KeyServer:
    """An in-process https origin serving the client's JWK set; counts fetches."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        self.fetches = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if str(request.url) != JWKS_URI:
            return httpx.Response(404)
        return httpx.Response(200, json=self.jwks)


@asynccontextmanager
async def serving(
    settings: Settings, transport: httpx.AsyncBaseTransport, clock: ManualClock | None = None
) -> AsyncIterator[Server]:
    """`running_server` with the Fetcher's HTTP going to `transport`."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve, settings, shutdown=stop.wait, clock=clock, fetch_transport=transport)
        )
        async with httpx.AsyncClient(base_url=binds[0]) as http:
            try:
                yield Server(binds[0], http, settings, stop)
            finally:
                stop.set()


async def test_s3_keys_from_jwks_uri(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """TOKEN-14: a key published at the client's jwks_uri authenticates; the set is cached,
    and fetched again when the client signs with a new key (rotation)."""
    key = ClientKey()
    origin = KeyServer(key.jwks)
    transport = httpx.MockTransport(origin.handle)
    async with serving(make_settings(), transport, clock) as server:
        client_id = await register_jwt_client(server.http, jwks_uri=JWKS_URI)
        for _ in range(2):
            response = await token(server.http, sign(key, claims_for(client_id)))
            assert response.status_code == 200, response.text
        assert origin.fetches == 1
        rotated = ClientKey(kid="k2")
        origin.jwks = {"keys": [key.jwk, rotated.jwk]}
        clock.advance(31)  # past the Fetcher's minimum interval between refetches
        response = await token(server.http, sign(rotated, claims_for(client_id)))
        assert response.status_code == 200, response.text
        stranger = ClientKey(kid="k3")
        assert_invalid_client(await token(server.http, sign(stranger, claims_for(client_id))))
        assert origin.fetches == 2  # an unknown kid refetches at most once per interval


async def test_s3_unreachable_jwks_uri_is_invalid_client(
    make_settings: Callable[..., Settings],
) -> None:
    """TOKEN-15: keys that cannot be fetched (404) -> 401 invalid_client, never a 500."""
    key = ClientKey()
    transport = httpx.MockTransport(lambda _request: httpx.Response(404))
    async with serving(make_settings(), transport) as server:
        client_id = await register_jwt_client(server.http, jwks_uri=JWKS_URI)
        assert_invalid_client(await token(server.http, sign(key, claims_for(client_id))))


async def test_s3_configured_client_with_jwks(make_settings: Callable[..., Settings]) -> None:
    """TOKEN-14: a [[clients]] entry with private_key_jwt and an inline jwks authenticates."""
    key = ClientKey()
    client = ClientSettings(
        client_id="machine",
        token_endpoint_auth_method="private_key_jwt",
        grant_types=("client_credentials",),
        scope="mcp:tools",
        jwks=json.dumps(key.jwks),
    )
    transport = httpx.MockTransport(lambda _request: httpx.Response(500))
    async with serving(make_settings(clients=(client,)), transport) as server:
        response = await token(server.http, sign(key, claims_for("machine")))
        assert response.status_code == 200, response.text
