"""The device authorization grant (RFC 8628): user codes, device codes, and polling.

User codes are 8 characters of a base-20 alphabet without vowels or look-alikes (RFC 8628
§6.1, ≈34.5 bits), shown as `XXXX-XXXX` and accepted in any case, with or without the dash
and spaces (§3.3). Device codes are handles `dc_<shardkey>_<secret>` (oauth/handles.py), so
a poll routes to its client's shard without a lookup. Polling follows §3.5: a client polls
at most once per `interval` seconds; polling sooner earns `slow_down` and an interval 5 s
longer, for that poll and every later one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from oauthd.oauth.handles import issue_handle, parse_handle
from oauthd.oauth.scopes import check_scopes_allowed, parse_scope

__all__ = [
    "ALPHABET",
    "DEFAULT_INTERVAL_S",
    "DEVICE_GRANT",
    "SLOW_DOWN_S",
    "Poll",
    "device_scope",
    "display_user_code",
    "issue_device_code",
    "issue_user_code",
    "next_poll",
    "normalise_user_code",
    "parse_device_code",
]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: no vowels, no look-alikes
USER_CODE_LENGTH = 8
DEFAULT_INTERVAL_S = 5  # RFC 8628 §3.2: "If no value is provided, clients MUST use 5"
SLOW_DOWN_S = 5  # RFC 8628 §3.5: "increased by 5 seconds for this and all subsequent requests"
PREFIX = "dc"


def issue_user_code() -> str:
    """8 letters from ALPHABET, without the dash."""
    return "".join(secrets.choice(ALPHABET) for _ in range(USER_CODE_LENGTH))


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalise_user_code(text: str | None) -> str | None:
    """RFC 8628 §3.3: what the person typed, in any case, with or without the dash and spaces;
    the 8 letters, or None if it cannot be a user code."""
    if not text or len(text) > 32:
        return None
    letters = "".join(ch for ch in text.upper() if ch not in "- \t")
    if len(letters) != USER_CODE_LENGTH or any(ch not in ALPHABET for ch in letters):
        return None
    return letters


def issue_device_code(shard_key: str) -> str:
    """RFC 8628 §5.2 / TOKEN-17: 256 random bits, routable to the client's shard."""
    return issue_handle(PREFIX, shard_key)


def parse_device_code(value: str | None) -> str | None:
    """The shard key of a well-formed device code, else None."""
    return parse_handle(value, PREFIX)


def device_scope(requested: str | None, registered: str, known: frozenset[str]) -> tuple[str, ...]:
    """RFC 8628 §3.1 (RFC 6749 §3.3): the requested scope, known to the server and within the
    client's registered one; without a request, the registered scope."""
    asked = parse_scope(requested)
    allowed = parse_scope(registered)
    check_scopes_allowed(asked, known, allowed)
    return asked or allowed


@dataclass(frozen=True, slots=True)
class Poll:
    """The outcome of one poll's timing: whether it came too soon, and what to remember."""

    too_soon: bool
    interval: int
    next_poll_at: int


def next_poll(now: int, next_poll_at: int, interval: int) -> Poll:
    """RFC 8628 §3.5: a poll before `next_poll_at` is answered slow_down and lengthens the
    interval by 5 s for good; every poll sets when the next may come."""
    too_soon = now < next_poll_at
    if too_soon:
        interval += SLOW_DOWN_S
    return Poll(too_soon, interval, now + interval)
