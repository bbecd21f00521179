"""Sealing under a key derived from a secret (keys/sealing.py): a standard compact JWE, dir
with A256GCM (RFC 7516 §7.1, RFC 7518 §4.5 and §5.3), that only the secret opens."""

from __future__ import annotations

import hashlib
import json

from joserfc import jwe
from joserfc.jwk import OctKey

from oauthd.keys.compact import b64decode
from oauthd.keys.sealing import open_sealed, seal_for

SECRET = "rt_0123456789abcdef0123_secret"
PLAINTEXT = json.dumps({"access_token": "x" * 600, "refresh_token": "rt_y"}).encode()


def test_rfc7516_s7_1_a_sealed_value_is_a_compact_jwe_dir_a256gcm() -> None:
    """Five segments, an empty encrypted key (dir), a 96-bit IV, a 128-bit tag; opened by the
    secret, by joserfc as any JWE, and fresh each time (a new IV)."""
    sealed = seal_for(SECRET, PLAINTEXT)
    header, key, iv, _ciphertext, tag = sealed.split(".")
    assert json.loads(b64decode(header)) == {"alg": "dir", "enc": "A256GCM"}
    assert key == ""
    assert (len(b64decode(iv)), len(b64decode(tag))) == (12, 16)
    assert open_sealed(SECRET, sealed) == PLAINTEXT
    assert seal_for(SECRET, PLAINTEXT) != sealed


def test_rfc7516_s5_2_another_secret_or_a_changed_value_opens_nothing() -> None:
    """AES-GCM's tag covers the header, IV and ciphertext: any change, or another key, fails."""
    sealed = seal_for(SECRET, PLAINTEXT)
    assert open_sealed(SECRET + "x", sealed) is None
    header, key, iv, ciphertext, tag = sealed.split(".")
    flipped = ("B" if ciphertext[0] == "A" else "A") + ciphertext[1:]
    assert open_sealed(SECRET, ".".join((header, key, iv, flipped, tag))) is None
    other_header = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIiwieCI6MX0"  # one more member
    assert open_sealed(SECRET, ".".join((other_header, key, iv, ciphertext, tag))) is None


def test_values_sealed_by_joserfc_still_open() -> None:
    """A value sealed before sealing was done here (by joserfc's JWE) opens as before."""
    key = hashlib.sha256(b"oauthd refresh replay v1\x00" + SECRET.encode()).digest()
    header = {"alg": "dir", "enc": "A256GCM"}
    old = jwe.encrypt_compact(
        header, PLAINTEXT, OctKey.import_key(key), algorithms=["dir", "A256GCM"]
    )
    assert open_sealed(SECRET, old) == PLAINTEXT
