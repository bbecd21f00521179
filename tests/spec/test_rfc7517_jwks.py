"""RFC 7517: the JWK Set at jwks_uri, over HTTP against a running oauthd."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from oauthd.settings import KeySettings, Settings
from tests.conftest import Server, running_server

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

JWKS = "/.well-known/jwks.json"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


async def fetch_keys(server: Server) -> list[dict[str, Any]]:
    response = await server.http.get(JWKS)
    assert response.status_code == 200
    assert response.headers["content-type"] in ("application/json", "application/jwk-set+json")
    keys: list[dict[str, Any]] = response.json()["keys"]
    assert keys
    return keys


async def test_s5_jwks_is_a_json_key_set_with_at_least_one_key(server: Server) -> None:
    """JWKS-1: GET jwks_uri -> 200 JSON {"keys": [...]} with >= 1 key."""
    response = await server.http.get(JWKS)
    assert response.status_code == 200
    assert response.headers["content-type"] in ("application/json", "application/jwk-set+json")
    body = response.json()
    assert list(body) == ["keys"]
    assert len(body["keys"]) >= 1


async def test_s9_2_jwks_has_no_private_or_symmetric_members(server: Server) -> None:
    """JWKS-2: no key contains d, p, q, dp, dq, qi, oth, and no kty "oct" (symmetric k)."""
    for key in await fetch_keys(server):
        assert not PRIVATE_MEMBERS & key.keys(), key
        assert key["kty"] != "oct"


async def test_s4_every_key_has_unique_kid_kty_use_sig_and_alg(server: Server) -> None:
    """JWKS-3: every key has a unique kid, kty, use "sig" and alg."""
    keys = await fetch_keys(server)
    for key in keys:
        assert key["kid"], key
        assert key["kty"], key
        assert key["alg"], key
        assert key["use"] == "sig"
    assert len({key["kid"] for key in keys}) == len(keys)


def key_of(keys: list[dict[str, Any]], alg: str) -> dict[str, Any]:
    (key,) = (k for k in keys if k["alg"] == alg)
    return key


async def test_s4_default_es256_key_is_on_p256_beside_an_rs256_key(server: Server) -> None:
    """JWKS-3: EC keys are on P-256 with the matching crv (RFC 7518 §3.4); at least one RS256
    key (for ID tokens) beside the configured ES256 one."""
    keys = await fetch_keys(server)
    assert sorted(k["alg"] for k in keys) == ["ES256", "RS256"]
    key = key_of(keys, "ES256")
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
    assert len(base64.urlsafe_b64decode(key["x"] + "=")) == 32


async def test_rfc7518_s3_3_rs256_key_has_modulus_of_at_least_2048_bits(
    make_settings: Callable[..., Settings],
) -> None:
    """JWKS-3: an RSA key's modulus MUST be at least 2048 bits (RFC 7518 §3.3)."""
    async with running_server(make_settings(keys=KeySettings(algorithm="RS256"))) as server:
        (key,) = await fetch_keys(server)
        assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
        assert b64url_int(key["n"]).bit_length() >= 2048
        assert not PRIVATE_MEMBERS & key.keys()


async def test_rfc8037_eddsa_key_is_okp_ed25519(make_settings: Callable[..., Settings]) -> None:
    """JWKS-3: an EdDSA key is kty OKP on crv Ed25519 (RFC 8037 §2) with no private `d`."""
    async with running_server(make_settings(keys=KeySettings(algorithm="EdDSA"))) as server:
        key = key_of(await fetch_keys(server), "EdDSA")
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
        assert not PRIVATE_MEMBERS & key.keys()
