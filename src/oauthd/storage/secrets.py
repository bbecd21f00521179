"""Secrets at rest are hashes (docs/architecture.md "Storage").

High-entropy secrets (client secrets, codes, refresh tokens, session ids) are checked with
SHA-256: guessing them is infeasible, so a slow hash only costs latency. Human passwords use
argon2id (about 150 ms each, by design).
"""

from __future__ import annotations

import hashlib
import hmac

import argon2

__all__ = ["check_password", "check_secret", "hash_password", "hash_secret"]

_PREFIX = "sha256:"
_hasher = argon2.PasswordHasher()


def hash_secret(secret: str) -> str:
    return _PREFIX + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_secret(secret: str, stored: str) -> bool:
    return stored.startswith(_PREFIX) and hmac.compare_digest(hash_secret(secret), stored)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password: str, stored: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False
