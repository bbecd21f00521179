"""oauthd's own compact JWS (keys/compact.py, Keyring.sign/verify): what other libraries
accept, and what is refused (RFC 7515 §7.1, RFC 7518 §3.3-§3.4, RFC 8037, RFC 8725 §3.1)."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from oauthd.keys import Keyring, TokenInvalid, build_keyring, generate_key

CLAIMS = {"iss": "https://as.example", "sub": "u1", "aud": "https://rs.example", "exp": 2**31}


def keyring(alg: str) -> tuple[Keyring, str]:
    key = generate_key(alg)
    return build_keyring([(key.kid, alg, key.public_jwk, key.private_jwk)], key.kid, None), (
        key.public_jwk
    )


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
    """RFC 7518 §3.4: an ES256 signature is r || s, 64 bytes; a DER signature is refused."""
    ring, _ = keyring("ES256")
    header, payload, signature = _segments(ring.sign(CLAIMS))
    raw = base64.urlsafe_b64decode(signature + "==")
    longer = base64.urlsafe_b64encode(raw + b"\x00").rstrip(b"=").decode()
    with pytest.raises(TokenInvalid):
        ring.verify(f"{header}.{payload}.{longer}")


def test_rfc8725_s3_1_the_header_alg_must_be_the_keys() -> None:
    """RFC 8725 §3.1: the key's own algorithm only; `none` and others are refused."""
    ring, _ = keyring("ES256")
    header, payload, signature = _segments(ring.sign(CLAIMS))
    fields = json.loads(base64.urlsafe_b64decode(header + "=="))
    for alg in ("none", "HS256", "RS256"):
        forged = base64.urlsafe_b64encode(json.dumps({**fields, "alg": alg}).encode())
        with pytest.raises(TokenInvalid):
            ring.verify(f"{forged.rstrip(b'=').decode()}.{payload}.{signature}")


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
