"""Client key sets and the signature of client assertions (RFC 7523 §3 item 9; OIDC Core §9).

`parse_client_jwks` accepts a client's JWK set (RFC 7517 §5) of public signing keys only;
`verify_client_assertion` checks a compact JWS against it: the header's `alg` must be an
asymmetric one this server accepts (never `none`, never HMAC, RFC 8725 §3.1), the key is the
one named by `kid` (or the only one), of the type `alg` needs. Claims are checked elsewhere
(`oauthd.oauth.rfc7523_client_assertion`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from oauthd.decoding import loads_bounded
from oauthd.keys.jwk import TokenInvalid, _peek_header

__all__ = [
    "ASSERTION_ALGORITHMS",
    "ClientKeys",
    "KeySetInvalid",
    "UnknownKey",
    "parse_client_jwks",
    "parse_provider_jwks",
    "verify_client_assertion",
    "verify_signed",
]

ASSERTION_ALGORITHMS = ("EdDSA", "ES256", "RS256")
# alg -> (kty, crv) the key must have
_KEY_TYPE = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
MAX_KEYS = 10
MAX_JWKS_BYTES = 32_000


class KeySetInvalid(ValueError):
    """A client's JWK set that cannot be used: not a set, private keys, unknown types."""


class UnknownKey(TokenInvalid):
    """No key of the set has the assertion's kid (the client may have rotated its keys)."""


@dataclass(frozen=True, slots=True)
class _ClientKey:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: Key


@dataclass(frozen=True, slots=True)
class ClientKeys:
    keys: tuple[_ClientKey, ...]

    def pick(self, kid: Any) -> _ClientKey | None:
        """The key named by `kid`; without a kid, the only key there is."""
        if kid is None:
            return self.keys[0] if len(self.keys) == 1 else None
        return next((k for k in self.keys if k.kid == kid), None)


def parse_client_jwks(document: str | dict[str, Any]) -> ClientKeys:
    """A client's JWK set; KeySetInvalid for anything but public EC/RSA/OKP signing keys."""
    members = _jwk_set_members(document, MAX_JWKS_BYTES)
    if not members or len(members) > MAX_KEYS:
        raise KeySetInvalid(f"a JWK set needs 1 to {MAX_KEYS} keys")
    return ClientKeys(tuple(_parse_key(member) for member in members))


def parse_provider_jwks(document: str) -> ClientKeys:
    """An identity provider's published JWK set (OIDC Core §10.1.1): its signing keys, with
    encryption keys and key types this server cannot use left out. KeySetInvalid when the
    document is not a JWK set or holds no usable key."""
    usable = []
    for member in _jwk_set_members(document, 4 * MAX_JWKS_BYTES):
        try:
            usable.append(_parse_key(member))
        except KeySetInvalid:
            continue  # an encryption key, or a type we do not verify with
    if not usable:
        raise KeySetInvalid("the JWK set has no usable signing key")
    return ClientKeys(tuple(usable))


def _jwk_set_members(document: str | dict[str, Any], max_bytes: int) -> list[Any]:
    """The `keys` array of a JWK set (RFC 7517 §5), parsed from at most `max_bytes` of JSON
    when it comes as text."""
    if isinstance(document, str):
        if len(document) > max_bytes:
            raise KeySetInvalid("the JWK set is too large")
        try:
            document = loads_bounded(document)
        except ValueError:
            raise KeySetInvalid("the JWK set is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeySetInvalid("a JWK set is an object with a keys array")
    members: list[Any] = document["keys"]
    return members


def _parse_key(member: Any) -> _ClientKey:
    if not isinstance(member, dict):
        raise KeySetInvalid("a JWK is an object")
    if any(name in member for name in _PRIVATE_MEMBERS):
        raise KeySetInvalid("a client's JWK set holds public keys only")  # RFC 7591 §2
    if member.get("use", "sig") != "sig":
        raise KeySetInvalid("client keys are signing keys")
    kty = member.get("kty")
    kinds: dict[Any, Any] = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}
    if kty not in kinds:
        raise KeySetInvalid("unsupported key type")
    try:
        key = kinds[kty].import_key(member)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise KeySetInvalid("a JWK cannot be imported") from exc
    kid, alg, crv = member.get("kid"), member.get("alg"), member.get("crv")
    return _ClientKey(
        kid if isinstance(kid, str) else None,
        str(kty),
        crv if isinstance(crv, str) else None,
        alg if isinstance(alg, str) else None,
        key,
    )


def verify_client_assertion(assertion: str, keys: ClientKeys) -> dict[str, Any]:
    """The assertion's claims if a key of `keys` signed it with an accepted algorithm;
    TokenInvalid otherwise."""
    return verify_signed(assertion, keys, ASSERTION_ALGORITHMS)


def verify_signed(token: str, keys: ClientKeys, algorithms: tuple[str, ...]) -> dict[str, Any]:
    """The claims of a compact JWS signed by a key of `keys` with one of `algorithms`; the
    algorithm comes from the header but must be in the list (RFC 8725 §3.1). UnknownKey when
    no key has the token's kid; TokenInvalid for anything else."""
    header = _peek_header(token)
    alg = header.get("alg")
    if alg not in algorithms or alg not in _KEY_TYPE:
        raise TokenInvalid("signature algorithm not accepted")
    key = keys.pick(header.get("kid"))
    if key is None:
        raise UnknownKey("no known key matches the token's kid")
    kty, crv = _KEY_TYPE[alg]
    if key.kty != kty or (crv is not None and key.crv != crv) or key.alg not in (None, alg):
        raise TokenInvalid("the key does not fit the algorithm")
    try:
        obj = jws.deserialize_compact(token, key.key, algorithms=[alg])
        claims = loads_bounded(obj.payload or b"")
    except (JoseError, ValueError) as exc:
        raise TokenInvalid("bad signature or payload") from exc
    if not isinstance(claims, dict):
        raise TokenInvalid("claims are not an object")
    return claims
