"""Opaque credentials: codes, refresh tokens, registration access tokens, request ids.

Each carries the shard key of its client, so the front door routes it without a global lookup
(docs/architecture.md "Actors"): `<prefix>_<shardkey>_<secret>`. The secret part is 256 bits from
`secrets` (OAuth 2.1 §7.7 asks for at least 128), base64url, so every character is unreserved.
Only a hash of the whole handle is stored.
"""

from __future__ import annotations

import re
import secrets

__all__ = ["issue_client_id", "issue_handle", "issue_secret", "parse_handle"]

_HANDLE = re.compile(r"([a-z]{2,4})_([0-9a-f]{20})_([A-Za-z0-9_-]{43})")


def issue_handle(prefix: str, shard_key: str) -> str:
    return f"{prefix}_{shard_key}_{secrets.token_urlsafe(32)}"


def parse_handle(value: str | None, prefix: str) -> str | None:
    """The shard key inside a well-formed handle of this kind, else None (garbage never
    reaches an actor)."""
    if not value or len(value) > 80:
        return None
    match = _HANDLE.fullmatch(value)
    if match is None or match.group(1) != prefix:
        return None
    return match.group(2)


def issue_client_id() -> str:
    """128 bits, unreserved characters only, so Basic auth with or without form-encoding
    agrees (TOKEN-7). Never starting with '-', so it can follow an option on a
    command line (`oauthd grants list --client <id>`) without being read as one."""
    while True:
        client_id = secrets.token_urlsafe(16)
        if not client_id.startswith("-"):
            return client_id


def issue_secret() -> str:
    return secrets.token_urlsafe(32)
