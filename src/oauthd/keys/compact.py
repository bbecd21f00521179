"""Compact JWS (RFC 7515 §7.1) with oauthd's own keys, straight on `cryptography`.

Signing an access token is on the path of every token request, and verifying one on every
introspection and userinfo call. joserfc's general JWS machinery (header registries, algorithm
objects, base64 helpers) costs several times the signature itself, so for the three algorithms
oauthd signs with, the signing input and the signature encoding (RFC 7518 §3.4: ES256 is r || s,
32 bytes each) are done here. Keys are still generated, imported and published through joserfc
(jwk.py); client and upstream tokens, whose algorithms vary, are verified by joserfc too.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from oauthd.decoding import b64url_decode as b64decode

__all__ = ["b64decode", "b64encode", "import_jwk", "sign_raw", "verify_raw"]

_ES256_BYTES = 32
# The algorithm objects are immutable: made once, not on every signature (~2 us each).
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _int(member: str) -> int:
    return int.from_bytes(b64decode(member), "big")


def import_jwk(jwk: dict[str, Any]) -> Any:
    """The `cryptography` key of one of oauthd's own stored JWKs (RFC 7518 §6.2, §6.3;
    RFC 8037 §2): private when it has `d`. Straight from its members, as `sign_raw` signs:
    joserfc's import (its member registry and key objects) doubled the cost of a key's
    first use, on a cold tenant's first token. `cryptography` checks the key either way
    (a private EC point on its curve, an RSA key's consistency: tens of ms, so RSA keys are
    imported only when used)."""
    kty = jwk["kty"]
    if kty == "EC":
        if jwk["crv"] != "P-256":
            raise ValueError(f"unsupported curve {jwk['crv']!r}")
        public = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), ec.SECP256R1())
        if "d" in jwk:
            return ec.EllipticCurvePrivateNumbers(_int(jwk["d"]), public).private_key()
        return public.public_key()
    if kty == "RSA":
        rsa_public = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"]))
        if "d" in jwk:
            p, q, d, dp, dq, qi = (_int(jwk[m]) for m in ("p", "q", "d", "dp", "dq", "qi"))
            return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, rsa_public).private_key()
        return rsa_public.public_key()
    if kty == "OKP" and jwk["crv"] == "Ed25519":
        if "d" in jwk:
            return ed25519.Ed25519PrivateKey.from_private_bytes(b64decode(jwk["d"]))
        return ed25519.Ed25519PublicKey.from_public_bytes(b64decode(jwk["x"]))
    raise ValueError(f"unsupported key type {kty!r}")


def sign_raw(alg: str, key: Any, data: bytes) -> bytes:
    """The JWS signature of `data` (RFC 7518 §3.3, §3.4; RFC 8037 §3.1)."""
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(data, _ECDSA_SHA256))
        return r.to_bytes(_ES256_BYTES, "big") + s.to_bytes(_ES256_BYTES, "big")
    if alg == "RS256":
        signature: bytes = key.sign(data, _PKCS1V15, _SHA256)
        return signature
    if alg == "EdDSA":
        return bytes(key.sign(data))
    raise ValueError(f"unsupported algorithm {alg!r}")


def verify_raw(alg: str, key: Any, data: bytes, signature: bytes) -> bool:
    """Whether `signature` is `key`'s JWS signature of `data` with `alg` (and only `alg`)."""
    try:
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 2 * _ES256_BYTES or key.curve.name != "secp256r1":
                return False
            r = int.from_bytes(signature[:_ES256_BYTES], "big")
            s = int.from_bytes(signature[_ES256_BYTES:], "big")
            key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
            return True
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, _PKCS1V15, _SHA256)
            return True
        if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
    except InvalidSignature:
        return False
    return False
