"""oauthd's own compact JWS (keys/compact.py, Keyring.sign/verify): what other libraries
accept, and what is refused (RFC 7515 §7.1, RFC 7518 §3.3-§3.4, RFC 8037, RFC 8725 §3.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

from oauthd.keys import GeneratedKey, Keyring, TokenInvalid, build_keyring, generate_key
from oauthd.keys.compact import import_jwk, sign_raw

CLAIMS = {"iss": "https://as.example", "sub": "u1", "aud": "https://rs.example", "exp": 2**31}


def generated(alg: str) -> tuple[Keyring, GeneratedKey]:
    key = generate_key(alg)
    return build_keyring([(key.kid, alg, key.public_jwk, key.private_jwk)], key.kid, None), key


def keyring(alg: str) -> tuple[Keyring, str]:
    ring, key = generated(alg)
    return ring, key.public_jwk


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_s7_1_tokens_verify_in_pyjwt_joserfc_and_oauthd(alg: str) -> None:
    """RFC 7515 §7.1: the compact form other libraries verify (PyJWT and joserfc here)."""
    ring, public = keyring(alg)
    token = ring.sign(CLAIMS, "at+jwt")
    key = jwt.PyJWK(json.loads(public)).key
    assert jwt.decode(token, key, algorithms=[alg], audience=CLAIMS["aud"]) == CLAIMS
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    jose_key = JWKRegistry.import_key(json.loads(public))
    verified = jws.deserialize_compact(token, jose_key, algorithms=[alg])
    assert json.loads(verified.payload) == CLAIMS
    assert verified.protected == {"alg": alg, "kid": json.loads(public)["kid"], "typ": "at+jwt"}
    header, claims = ring.verify(token)
    assert (header["alg"], claims) == (alg, CLAIMS)


def _segments(token: str) -> list[str]:
    return token.split(".")


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_a_changed_payload_or_signature_is_refused(alg: str) -> None:
    """RFC 7515 §5.2: any change to the signing input or the signature fails."""
    ring, _ = keyring(alg)
    for token in _changed(ring.sign(CLAIMS)):
        with pytest.raises(TokenInvalid):
            ring.verify(token)


def _changed(token: str) -> tuple[str, str]:
    """`token` with another payload, and with one character of its signature changed."""
    header, payload, signature = _segments(token)
    other = base64.urlsafe_b64encode(json.dumps({**CLAIMS, "sub": "u2"}).encode()).rstrip(b"=")
    bad_sig = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{header}.{other.decode()}.{signature}", f"{header}.{payload}.{bad_sig}"


def test_s5_2_a_token_verified_before_does_not_vouch_for_a_changed_one() -> None:
    """RFC 7515 §5.2: a snapshot remembers the tokens it verified, by their exact bytes: a
    change to the payload or signature of a remembered token is verified, and refused."""
    ring, _ = keyring("ES256")
    token = ring.sign(CLAIMS)
    header, claims = ring.verify(token)
    claims["sub"] = "changed by the caller"  # a copy: the remembered claims are not touched
    assert ring.verify(token) == (header, CLAIMS)
    for changed in _changed(token):
        with pytest.raises(TokenInvalid):
            ring.verify(changed)


def test_a_token_of_a_key_gone_is_refused_by_the_next_snapshot() -> None:
    """What a snapshot remembers is its own: the next one (the key gone from the key set, a
    rotation's last state) verifies from its keys alone and refuses the token."""
    old, _ = generated("ES256")
    token = old.sign(CLAIMS)
    old.verify(token)
    new, _ = generated("ES256")
    with pytest.raises(TokenInvalid):
        new.verify(token)
    assert new.names_unknown_key(token)


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


# --- differential: oauthd's hand-written verify against joserfc ------------------------------

ALGS = ("ES256", "RS256", "EdDSA")
B64_ALPHABET = string.ascii_letters + string.digits + "-_"
JUNK = "!~ =+/.\t\né\x00"


@dataclass(frozen=True)
class Pair:
    """oauthd's keyring and the same public key in joserfc, with its alg and kid."""

    ring: Keyring
    public: Key
    private: object
    alg: str
    kid: str

    def oauthd_accepts(self, token: str) -> bool:
        try:
            self.ring.verify(token)
        except TokenInvalid:
            return False
        return True

    def joserfc_accepts(self, token: str) -> bool:
        """joserfc with the same restrictions: this key, its alg only, its kid, object claims."""
        try:
            obj = jws.deserialize_compact(token, self.public, algorithms=[self.alg])
            claims = json.loads(obj.payload)
        except (JoseError, ValueError):
            return False
        return obj.headers().get("kid") == self.kid and isinstance(claims, dict)

    def sign_raw_parts(self, header: bytes, payload: bytes) -> str:
        """A correctly signed token over exactly these header and payload bytes."""
        signing_input = f"{_b64(header)}.{_b64(payload)}"
        signature = sign_raw(self.alg, self.private, signing_input.encode())
        return f"{signing_input}.{_b64(signature)}"

    def header(self, **changes: object) -> bytes:
        return json.dumps({"alg": self.alg, "kid": self.kid, "typ": "at+jwt", **changes}).encode()


@pytest.fixture(scope="module", params=ALGS)
def pair(request: pytest.FixtureRequest) -> Pair:
    ring, key = generated(request.param)
    private = JWKRegistry.import_key(json.loads(key.private_jwk)).private_key
    public = JWKRegistry.import_key(json.loads(key.public_jwk))
    return Pair(ring, public, private, request.param, key.kid)


def mutations(token: str, rng: random.Random) -> Iterator[str]:
    """Edits of a valid token: inserted characters, flipped bits, replaced characters,
    swapped, dropped or doubled segments, truncation, padding."""
    parts = token.split(".")
    for _ in range(40):
        at = rng.randrange(len(token) + 1)
        inserted = "".join(rng.choices(JUNK + B64_ALPHABET, k=rng.choice((1, 2, 4))))
        yield token[:at] + inserted + token[at:]
        at = rng.randrange(len(token) - len(parts[2]), len(token) + 1)  # in the signature
        yield token[:at] + "".join(rng.choices(JUNK, k=4)) + token[at:]
        at = rng.randrange(len(token))
        yield token[:at] + rng.choice(B64_ALPHABET) + token[at + 1 :]
        index = rng.randrange(3)
        raw = bytearray(base64.urlsafe_b64decode(parts[index] + "=="))
        if raw:
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        yield ".".join([*parts[:index], _b64(bytes(raw)), *parts[index + 1 :]])
        yield token[: rng.randrange(len(token))]
    yield from (f"{parts[1]}.{parts[0]}.{parts[2]}", f"{parts[0]}.{parts[2]}.{parts[1]}")
    yield from (f"{parts[0]}.{parts[1]}", f"{token}.{parts[2]}", f"{parts[0]}..{parts[2]}")
    yield from (token + "=", token + "==", " " + token, token + "\n", token.replace(".", ". "))


def random_tokens(rng: random.Random) -> Iterator[str]:
    for _ in range(100):
        segments = rng.randrange(1, 5)
        yield ".".join(
            "".join(rng.choice(B64_ALPHABET + JUNK) for _ in range(rng.randrange(0, 60)))
            for _ in range(segments)
        )


def test_rfc7515_differential_valid_mutated_and_random_tokens(pair: Pair) -> None:
    """RFC 7515 §5.2, §7.1: oauthd's own compact JWS verification accepts and refuses exactly
    what joserfc does with the same key and algorithm, for valid, mutated and random tokens."""
    rng = random.Random(7515)
    token = pair.ring.sign(CLAIMS, "at+jwt")
    assert pair.oauthd_accepts(token)
    assert pair.joserfc_accepts(token)
    for candidate in (token, *mutations(token, rng), *random_tokens(rng)):
        assert pair.oauthd_accepts(candidate) == pair.joserfc_accepts(candidate), repr(candidate)


def test_rfc4648_s3_5_non_canonical_trailing_bits_are_refused(pair: Pair) -> None:
    """RFC 7515 §2 (base64url per RFC 4648 §5, §3.5): the last character of a segment whose
    bits past the final byte are not zero names the same bytes to a lax decoder; both
    refuse it."""
    token = pair.ring.sign(CLAIMS, "at+jwt")
    header, payload, signature = token.split(".")
    assert len(signature) % 4, "a signature that ends on a whole quantum has no spare bits"
    lax = B64_ALPHABET[B64_ALPHABET.index(signature[-1]) + 1]
    assert base64.urlsafe_b64decode(signature[:-1] + lax + "==") == base64.urlsafe_b64decode(
        signature + "=="
    )
    forged = f"{header}.{payload}.{signature[:-1]}{lax}"
    assert not pair.oauthd_accepts(forged)
    assert not pair.joserfc_accepts(forged)


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        pytest.param({}, json.dumps(CLAIMS).encode(), id="valid"),
        pytest.param({}, b'["a", "list"]', id="claims-not-an-object"),
        pytest.param({}, b"\xff\xfe{}", id="claims-not-utf8"),
        pytest.param({}, b'{"sub": "a", "sub": "b"}', id="duplicate-claims"),
        pytest.param({"kid": "another"}, json.dumps(CLAIMS).encode(), id="other-kid"),
        pytest.param({"alg": "none"}, json.dumps(CLAIMS).encode(), id="other-alg"),
        pytest.param({"crit": ["exp"], "exp": 1}, json.dumps(CLAIMS).encode(), id="crit"),
    ],
)
def test_rfc7515_differential_signed_odd_content(
    pair: Pair, header: dict[str, object], payload: bytes
) -> None:
    """RFC 7515 §5.2: correctly signed tokens with odd headers or claims are judged alike;
    a `crit` extension neither understands is refused (§4.1.11)."""
    token = pair.sign_raw_parts(pair.header(**header), payload)
    assert pair.oauthd_accepts(token) == pair.joserfc_accepts(token)


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        pytest.param(None, b'{"exp": NaN}', id="nan-claim"),
        pytest.param(None, b'{"a":' * 40 + b"1" + b"}" * 40, id="nested-claims"),
        pytest.param(None, json.dumps(CLAIMS).encode("utf-16"), id="utf16-claims"),
        pytest.param(None, b"\xef\xbb\xbf" + json.dumps(CLAIMS).encode(), id="bom-claims"),
    ],
)
def test_rfc7515_documented_exceptions_joserfc_accepts_oauthd_refuses(
    pair: Pair, header: bytes | None, payload: bytes
) -> None:
    """Where joserfc is lenient and oauthd is not, on purpose: NaN is not JSON (RFC 8259 §6);
    nesting past oauthd's limit of 32 (RFC 8259 §9 lets a parser limit it); claims are UTF-8
    (RFC 7519 §7.2 step 10), so UTF-16 and a byte order mark (RFC 8259 §8.1) are refused."""
    token = pair.sign_raw_parts(header or pair.header(), payload)
    assert pair.joserfc_accepts(token)
    assert not pair.oauthd_accepts(token)


def test_rfc8259_s9_deep_nesting_is_refused_where_joserfc_crashes(pair: Pair) -> None:
    """RFC 8259 §9: claims nested deeper than Python's parser can recurse raise RecursionError
    in joserfc's reader (json.loads); oauthd refuses them as TokenInvalid before parsing."""
    token = pair.sign_raw_parts(pair.header(), b"[" * 5000 + b"]" * 5000)
    with pytest.raises(RecursionError):
        json.loads(jws.deserialize_compact(token, pair.public, algorithms=[pair.alg]).payload)
    assert not pair.oauthd_accepts(token)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_a_stored_jwk_imports_as_the_same_key_joserfc_reads(alg: str) -> None:
    """RFC 7518 §6.2-§6.3, RFC 8037 §2: a stored JWK, imported straight from its members, is
    the key joserfc reads from it, private and public; a verifier gets no private part."""
    key = generate_key(alg)
    private, public = json.loads(key.private_jwk), json.loads(key.public_jwk)
    mine = import_jwk(private)
    theirs = JWKRegistry.import_key(private)
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    expected = theirs.public_key.public_bytes(*raw)
    assert mine.public_key().public_bytes(*raw) == expected
    assert import_jwk(public).public_bytes(*raw) == expected
    assert not hasattr(import_jwk(public), "sign")


def test_a_jwk_on_another_curve_is_refused() -> None:
    """Only P-256 EC keys are oauthd's (ES256, RFC 7518 §3.4)."""
    key = generate_key("ES256")
    p384 = {**json.loads(key.private_jwk), "crv": "P-384"}
    with pytest.raises(ValueError, match="curve"):
        import_jwk(p384)
