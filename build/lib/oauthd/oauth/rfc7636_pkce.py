"""PKCE (RFC 7636) as OAuth 2.1 profiles it: S256 only, for every client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from oauthd.errors import InvalidGrant, InvalidRequest

__all__ = ["METHODS", "check_challenge", "check_verifier", "s256"]

METHODS = ("S256",)  # `plain` is refused (OAuth 2.1 §4.1.1; RFC 9700 §2.1.1)
_UNRESERVED_43_128 = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_challenge(challenge: str | None, method: str | None) -> None:
    """At the authorization endpoint."""
    # OAuth 2.1 §4.1.2.1: PKCE is required; RFC 7636 §4.4.1 answers invalid_request.
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE S256)")
    # OAuth 2.1 §4.1.1: an absent method means plain, which this server does not support;
    # it must never be silently taken as S256.
    if method is None:
        raise InvalidRequest("code_challenge_method is required and must be S256")
    if method not in METHODS:
        raise InvalidRequest("code_challenge_method must be S256")
    # RFC 7636 §4.2: an S256 challenge is 43 unreserved characters (base64url, no padding).
    if not _UNRESERVED_43_128.fullmatch(challenge) or len(challenge) != 43:
        raise InvalidRequest("code_challenge is malformed")


def check_verifier(verifier: str | None, challenge: str) -> None:
    """At the token endpoint, against the challenge bound to the code."""
    # OAuth 2.1 §4.1.3: code_verifier is required when the code carries a challenge.
    if not verifier:
        raise InvalidGrant("code_verifier is required")
    # RFC 7636 §4.1: 43-128 unreserved characters.
    if not _UNRESERVED_43_128.fullmatch(verifier):
        raise InvalidGrant("code_verifier is malformed")
    # RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge.
    if not hmac.compare_digest(s256(verifier), challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")
