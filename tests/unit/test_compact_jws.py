"""oauthd's own compact JWS (keys/compact.py, Keyring.sign/verify): what other libraries
accept, and what is refused (RFC 7515 §7.1, RFC 7518 §3.3-§3.4, RFC 8037, RFC 8725 §3.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from oauthd.keys import GeneratedKey, Keyring, TokenInvalid, build_keyring, generate_key
from oauthd.keys.compact import sign_raw

CLAIMS = {"iss": "https://as.example", "sub": "u1", "aud": "https://rs.example", "exp": 2**31}


def generated(alg: str) -> tuple[Keyring, GeneratedKey]:
    key = generate_key(alg)
    return build_keyring([(key.kid, alg, key.public_jwk, key.private_jwk)], key.kid, None), key


def keyring(alg: str) -> tuple[Keyring, str]:
    ring, key = generated(alg)
    return ring, key.public_jwk


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_s7_1_tokens_verify_in_pyjwt_and_in_oauthd(alg: str) -> None:
    """RFC 7515 §7.1: the compact form other libraries verify (PyJWT here)."""
    ring, public = keyring(alg)
    token = ring.sign(CLAIMS, "at+jwt")
    key = jwt.PyJWK(json.loads(public)).key
    assert jwt.decode(token, key, algorithms=[alg], audience=CLAIMS["aud"]) == CLAIMS
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    header, claims = ring.verify(token)
    assert (header["alg"], claims) == (alg, CLAIMS)


def _segments(token: str) -> list[str]:
    return token.split(".")


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_a_changed_payload_or_signature_is_refused(alg: str) -> None:
    """RFC 7515 §5.2: any change to the signing input or the signature fails."""
    ring, _ = keyring(alg)
    header, payload, signature = _segments(ring.sign(CLAIMS))
    other = base64.urlsafe_b64encode(json.dumps({**CLAIMS, "sub": "u2"}).encode()).rstrip(b"=")
    bad_sig = ("A" if signature[0] != "A" else "B") + signature[1:]
    for token in (f"{header}.{other.decode()}.{signature}", f"{header}.{payload}.{bad_sig}"):
        with pytest.raises(TokenInvalid):
            ring.verify(token)


def test_s3_4_es256_signature_must_be_64_bytes() -> None:
    """RFC 7518 §3.4: an ES256 signature is r || s, 32 bytes each. The same r and s in a
    longer form (a padded r, or DER) are refused, though they name the same signature."""
    ring, _ = keyring("ES256")
    header, payload, signature = _segments(ring.sign(CLAIMS))
    raw = base64.urlsafe_b64decode(signature + "==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    padded = raw[:32] + b"\x00" + raw[32:]  # s as 33 bytes: int.from_bytes reads it the same
    for form in (padded, encode_dss_signature(r, s)):
        encoded = base64.urlsafe_b64encode(form).rstrip(b"=").decode()
        with pytest.raises(TokenInvalid):
            ring.verify(f"{header}.{payload}.{encoded}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_rfc8725_s3_1_the_header_alg_must_be_the_keys() -> None:
    """RFC 8725 §3.1: the key's own algorithm only. Tokens really made with `none` or with
    HS256 keyed by the public key (alg confusion) are refused."""
    ring, public = keyring("ES256")
    header = json.loads(base64.urlsafe_b64decode(_segments(ring.sign(CLAIMS))[0] + "=="))
    payload = _b64(json.dumps(CLAIMS).encode())
    none_header = _b64(json.dumps({**header, "alg": "none"}).encode())
    with pytest.raises(TokenInvalid):
        ring.verify(f"{none_header}.{payload}.")
    hs_header = _b64(json.dumps({**header, "alg": "HS256"}).encode())
    mac = hmac.new(public.encode(), f"{hs_header}.{payload}".encode(), hashlib.sha256)
    with pytest.raises(TokenInvalid):
        ring.verify(f"{hs_header}.{payload}.{_b64(mac.digest())}")


def test_rfc8725_s3_1_a_valid_signature_under_another_alg_name_is_refused() -> None:
    """RFC 8725 §3.1: a header naming another algorithm is refused even when the signature
    is the key's own, made over that header."""
    ring, key = generated("ES256")
    private = jwt.PyJWK(json.loads(key.private_jwk)).key
    header = _b64(json.dumps({"alg": "ES384", "kid": key.kid, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(CLAIMS).encode())
    signature = sign_raw("ES256", private, f"{header}.{payload}".encode())
    with pytest.raises(TokenInvalid):
        ring.verify(f"{header}.{payload}.{_b64(signature)}")


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "x.y.z", "eyJ9.e30.AAAA"])
def test_malformed_tokens_are_token_invalid(token: str) -> None:
    """Garbage is TokenInvalid, never another exception."""
    ring, _ = keyring("ES256")
    with pytest.raises(TokenInvalid):
        ring.verify(token)


def test_s2_padded_segments_are_refused() -> None:
    """RFC 7515 §2: base64url without padding; a padded signature is not the same token."""
    ring, _ = keyring("RS256")
    header, payload, signature = _segments(ring.sign(CLAIMS))
    with pytest.raises(TokenInvalid):
        ring.verify(f"{header}.{payload}.{signature}==")
