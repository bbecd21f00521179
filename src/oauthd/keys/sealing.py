"""Sealing a value under a key derived from a secret the caller holds (JWE dir + A256GCM).

Used for the refresh-token replay window: the successor pair is sealed under a key derived
from the old refresh token, so only someone presenting that token can open it, and the
database alone reveals nothing usable (docs/architecture.md "Tokens").
"""

from __future__ import annotations

import hashlib

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

__all__ = ["open_sealed", "seal_for"]

_HEADER = {"alg": "dir", "enc": "A256GCM"}
_ALGS = ["dir", "A256GCM"]
_CONTEXT = b"oauthd refresh replay v1\x00"


def _key(secret: str) -> OctKey:
    return OctKey.import_key(hashlib.sha256(_CONTEXT + secret.encode()).digest())


def seal_for(secret: str, plaintext: bytes) -> str:
    return jwe.encrypt_compact(_HEADER, plaintext, _key(secret), algorithms=_ALGS)


def open_sealed(secret: str, sealed: str) -> bytes | None:
    try:
        message = jwe.decrypt_compact(sealed, _key(secret), algorithms=_ALGS)
    except (JoseError, ValueError):
        return None
    return message.plaintext
