"""ID tokens (OIDC Core §2, §3.1.3.6) and the user claims each scope releases (§5.4)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

__all__ = ["at_hash", "id_token_claims", "user_claims"]


def at_hash(access_token: str, alg: str) -> str:
    """OIDC Core §3.1.3.6: left half of the hash of the access token, base64url. The hash is
    the one of the signing algorithm: SHA-256 for ES256/RS256, SHA-512 for EdDSA (Ed25519)."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def user_claims(
    scope: tuple[str, ...], email: str, name: str, email_verified: bool
) -> dict[str, Any]:
    """OIDC Core §5.4: `profile` releases the name, `email` the address and its status."""
    claims: dict[str, Any] = {}
    if "profile" in scope and name:
        claims["name"] = name
    if "email" in scope and email:
        claims["email"] = email
        claims["email_verified"] = email_verified
    return claims


def id_token_claims(
    *,
    issuer: str,
    subject: str,
    client_id: str,
    now: int,
    ttl_s: int,
    auth_time: int,
    nonce: str | None,
    access_token: str | None,
    alg: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    claims: dict[str, Any] = {
        **extra,
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "iat": now,
        "exp": now + ttl_s,
        "auth_time": auth_time,
    }
    if nonce is not None:
        claims["nonce"] = nonce  # OIDC Core §3.1.2.1: exactly as requested
    if access_token is not None:
        claims["at_hash"] = at_hash(access_token, alg)
    return claims
