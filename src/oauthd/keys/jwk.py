"""Keys as JWKs: generate, seal at rest, sign and verify compact JWS, serve the JWKS."""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import Key, OctKey
from joserfc.jwk import generate_key as _generate

from oauthd.decoding import parse_json_segment, split_compact
from oauthd.keys.compact import b64decode, b64encode, import_jwk, sign_raw, verify_raw

__all__ = [
    "ALGORITHMS",
    "GeneratedKey",
    "Keyring",
    "KeyringHolder",
    "TokenInvalid",
    "build_keyring",
    "generate_key",
    "parse_kek",
]

ALGORITHMS = ("ES256", "RS256", "EdDSA")
_SEAL_HEADER = {"alg": "dir", "enc": "A256GCM"}
_SEAL_ALGS = ["dir", "A256GCM"]

# RFC 9864 prefers "Ed25519" but deployed JWT libraries know "EdDSA": keep the name they know.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", module="joserfc")


class TokenInvalid(Exception):
    """A JWT that is malformed, signed by an unknown key or with the wrong algorithm."""


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    kid: str
    alg: str
    public_jwk: str
    private_jwk: str


def generate_key(alg: str, rsa_bits: int = 2048) -> GeneratedKey:
    """A fresh signing key; its kid is its RFC 7638 thumbprint."""
    key: Key
    if alg == "ES256":
        key = _generate("EC", "P-256")
    elif alg == "RS256":
        key = _generate("RSA", rsa_bits)
    elif alg == "EdDSA":
        key = _generate("OKP", "Ed25519")
    else:
        raise ValueError(f"unsupported algorithm {alg!r}")
    kid = key.thumbprint()
    extra = {"kid": kid, "alg": alg, "use": "sig"}
    public = {**key.as_dict(private=False), **extra}
    private = {**key.as_dict(private=True), **extra}
    return GeneratedKey(kid, alg, json.dumps(public, sort_keys=True), json.dumps(private))


def parse_kek(text: str) -> bytes:
    """A key-encryption key: 32 bytes, base64url."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the key-encryption key is not base64url") from None
    if len(raw) != 32:
        raise ValueError("the key-encryption key must be 32 bytes (base64url)")
    return raw


def seal(private_jwk: str, kek: bytes | None) -> str:
    """Encrypt a private JWK for storage (JWE dir + A256GCM) when a KEK is configured."""
    if kek is None:
        return private_jwk
    return jwe.encrypt_compact(
        _SEAL_HEADER, private_jwk.encode(), OctKey.import_key(kek), algorithms=_SEAL_ALGS
    )


def unseal(stored: str, kek: bytes | None) -> str:
    if stored.startswith("{"):
        return stored
    if kek is None:
        raise ValueError("a signing key is encrypted but no key-encryption key is configured")
    try:
        message = jwe.decrypt_compact(stored, OctKey.import_key(kek), algorithms=_SEAL_ALGS)
    except JoseError:
        raise ValueError("a signing key cannot be decrypted with this key-encryption key") from None
    assert message.plaintext is not None
    return message.plaintext.decode()


class _LazyKey:
    """A stored JWK, imported on first use. Importing a private RSA key costs tens of
    milliseconds (cryptography checks the key), and a tenant's KeyManager loads every key on
    its first activation: keys that never sign or verify in this process are never imported."""

    __slots__ = ("_jwk", "_key", "alg", "kid")

    def __init__(self, kid: str, alg: str, jwk_json: str) -> None:
        self.kid = kid
        self.alg = alg
        self._jwk = jwk_json
        self._key: Any = None

    @property
    def key(self) -> Any:
        """The `cryptography` key: private for a signer, public for a verifier."""
        if self._key is None:
            self._key = import_jwk(json.loads(self._jwk))
        return self._key


# Tokens a snapshot remembers having verified (Keyring.verify), least recently used first out.
VERIFIED_KEPT = 256
Verified = tuple[dict[str, Any], dict[str, Any]]


class Keyring:
    """An immutable snapshot: the signers (one per algorithm; one of them signs access tokens),
    every verifying key, and the JWKS bytes (made on first use).

    It remembers the last VERIFIED_KEPT tokens whose signature it verified: a client presents
    one access token again and again (userinfo, introspection, a resource server), and the
    signature of the same bytes under the same keys cannot change. A key change makes a new
    snapshot, with nothing remembered; claims (exp, aud, revocation) are the caller's to check
    on every use, as before."""

    __slots__ = (
        "_access",
        "_headers",
        "_jwks",
        "_public",
        "_signers",
        "_verified",
        "_verifiers",
        "kids",
    )

    def __init__(
        self,
        signers: Sequence[_LazyKey],
        access_kid: str | None,
        verifiers: Mapping[str, _LazyKey],
        public_jwks: Sequence[str],
    ) -> None:
        self._signers = {s.alg: s for s in signers}
        self._access = next((s for s in signers if s.kid == access_kid), None)
        self._verifiers = dict(verifiers)
        self._headers: dict[tuple[str, str], bytes] = {}
        self._verified: OrderedDict[str, Verified] = OrderedDict()
        self._public = tuple(public_jwks)
        self._jwks: bytes | None = None
        self.kids = tuple(self._verifiers)

    @property
    def jwks_bytes(self) -> bytes:
        """The JWKS (RFC 7517 §5), public members only (§9.2): made on its first request, not
        when the keys load (a cold tenant's first token has no use for it). Two threads making
        it at once make the same bytes."""
        if self._jwks is None:
            keys = [json.loads(jwk) for jwk in self._public]
            self._jwks = json.dumps({"keys": keys}, separators=(",", ":")).encode()
        return self._jwks

    @property
    def signer_kid(self) -> str | None:
        """The key that signs access tokens."""
        return self._access.kid if self._access else None

    @property
    def signing_alg(self) -> str:
        return self._access.alg if self._access else ""

    def sign(self, claims: Mapping[str, Any], typ: str = "JWT", alg: str | None = None) -> str:
        """A compact JWS of `claims` (RFC 7515 §7.1) signed by the active key of `alg`, or by
        the access-token signer when `alg` is None."""
        signer = self._access if alg is None else self._signers.get(alg)
        if signer is None:
            raise RuntimeError(f"no active signing key for {alg or 'access tokens'}")
        header = self._headers.get((signer.kid, typ))
        if header is None:  # one encoded header per key and typ: the snapshot is immutable
            fields = {"alg": signer.alg, "kid": signer.kid, "typ": typ}
            header = self._headers[(signer.kid, typ)] = b64encode(json.dumps(fields).encode())
        payload = b64encode(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = header + b"." + payload
        signature = sign_raw(signer.alg, signer.key, signing_input)
        return (signing_input + b"." + b64encode(signature)).decode()

    def names_unknown_key(self, token: str) -> bool:
        """Whether `token` is shaped like a JWS whose `kid` this snapshot lacks: perhaps a key
        another process made since this one last read the keys shard."""
        if token in self._verified:
            return False
        try:
            kid = _peek_header(token).get("kid")
        except TokenInvalid:
            return False
        return isinstance(kid, str) and kid not in self._verifiers

    def verify(self, token: str) -> Verified:
        """Check the signature with the key named by `kid` and its own algorithm only
        (RFC 8725 §3.1); returns (header, claims), copies the caller may keep. Claims are not
        validated here. A token verified before by this snapshot is not verified again."""
        known = self._verified.pop(token, None)  # pop and put back: most recently used last
        if known is None:
            known = self._verify(token)
            if len(self._verified) >= VERIFIED_KEPT:
                with suppress(KeyError):  # emptied meanwhile by another thread (resource/)
                    self._verified.popitem(last=False)
        self._verified[token] = known
        return dict(known[0]), dict(known[1])

    def _verify(self, token: str) -> Verified:
        header = _peek_header(token)
        verifier = self._verifiers.get(str(header.get("kid")))
        if verifier is None or header.get("alg") != verifier.alg:
            raise TokenInvalid("unknown key or algorithm")
        if "crit" in header:  # RFC 7515 §4.1.11: no extension is understood here
            raise TokenInvalid("unsupported critical header")
        try:
            encoded_header, payload, signature = split_compact(token)
            signing_input = f"{encoded_header}.{payload}".encode("ascii")
            valid = verify_raw(verifier.alg, verifier.key, signing_input, b64decode(signature))
            claims = parse_json_segment(payload) if valid else {}
        except ValueError as exc:
            raise TokenInvalid("malformed token") from exc
        if not valid:
            raise TokenInvalid("bad signature")
        return header, claims


def _peek_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, unverified; TokenInvalid unless it is one."""
    try:
        return parse_json_segment(split_compact(token)[0])
    except ValueError:
        raise TokenInvalid("malformed header") from None


def build_keyring(
    keys: Sequence[tuple[str, str, str, str]],
    signer_kid: str | None,
    kek: bytes | None,
    other_signers: Collection[str] = (),
) -> Keyring:
    """From (kid, alg, public_jwk, sealed_private_jwk) rows: the snapshot and its JWKS bytes.
    `signer_kid` signs access tokens; `other_signers` are the signing keys of the other
    algorithms (at most one each). The JWKS holds public members only (RFC 7517 §9.2)."""
    verifiers: dict[str, _LazyKey] = {}
    signers: list[_LazyKey] = []
    for kid, alg, public_jwk, sealed in keys:
        verifiers[kid] = _LazyKey(kid, alg, public_jwk)
        if kid == signer_kid or kid in other_signers:
            # Unsealed now, so that a wrong key-encryption key shows when the keys load.
            signers.append(_LazyKey(kid, alg, unseal(sealed, kek)))
    # The access signer goes last, so that it is its algorithm's signer.
    signers.sort(key=lambda s: s.kid == signer_kid)
    return Keyring(signers, signer_kid, verifiers, [public_jwk for _, _, public_jwk, _ in keys])


class KeyringHolder:
    """The current snapshot, replaced whole on every key change."""

    __slots__ = ("current", "version")

    def __init__(self) -> None:
        self.current = Keyring((), None, {}, ())
        self.version = 0

    def replace(self, keyring: Keyring) -> None:
        self.current = keyring
        self.version += 1
