"""Scope strings (OAuth 2.1 §1.4.1): space-delimited, case-sensitive tokens of
%x21 / %x23-5B / %x5D-7E."""

from __future__ import annotations

import re

from oauthd.errors import InvalidScope
from oauthd.settings import Settings

__all__ = [
    "OIDC_SCOPES",
    "check_scopes_allowed",
    "format_scope",
    "known_scopes",
    "parse_scope",
]

_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


def parse_scope(text: str | None) -> tuple[str, ...]:
    """Scope tokens in first-seen order, without duplicates; InvalidScope on a bad character."""
    if not text:
        return ()
    tokens: list[str] = []
    for token in text.split(" "):
        if not token:
            continue  # tolerate doubled spaces
        if not _TOKEN.fullmatch(token):
            raise InvalidScope("scope contains characters that are not allowed")
        if token not in tokens:
            tokens.append(token)
    return tuple(tokens)


def format_scope(tokens: tuple[str, ...]) -> str:
    return " ".join(tokens)


OIDC_SCOPES = ("openid", "profile", "email", "offline_access")


def check_scopes_allowed(
    requested: tuple[str, ...], server: frozenset[str], client: tuple[str, ...]
) -> None:
    """OAuth 2.1 §3.2.4 invalid_scope: unknown to the server, or beyond the client's
    registered scope (when it registered one)."""
    unknown = [s for s in requested if s not in server]
    if unknown:
        raise InvalidScope("scope is not supported by this server")
    if client and any(s not in client for s in requested):
        raise InvalidScope("scope exceeds what the client registered")


def known_scopes(settings: Settings) -> frozenset[str]:
    """Every scope this server issues: the OIDC ones and those of its resources."""
    scopes = set(OIDC_SCOPES)
    for resource in settings.resources:
        scopes.update(resource.scopes)
    return frozenset(scopes)
