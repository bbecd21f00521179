"""Key states and the rotation schedule, as pure functions of key times and `now`.

A key is *published* (in the JWKS, not signing) before `activate_at`, *active* until
`retire_at`, *retired* (in the JWKS, verifying only) until `remove_at`, then *gone*.
`remove_at = retire_at + retain_s` with `retain_s` at least the longest token lifetime, so no
rotation strands a valid token.

Keys form one line per signing algorithm (`KeySettings.signing_algorithms`): the configured
`keys.algorithm`, which signs access tokens, and RS256, which signs ID tokens (OIDC Discovery
§3: RS256 MUST be supported); one line serves both when the configured algorithm is RS256.
Each line's signer is its active key that activated last, and each line rotates on the same
schedule. A key of an algorithm no longer configured signs until the new line's first key
does, then retires.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from oauthd.settings import ID_TOKEN_ALG, KeySettings

__all__ = [
    "KeyState",
    "KeyTimes",
    "NewKey",
    "Plan",
    "Signers",
    "next_event_at",
    "plan_rotation",
    "plan_schedule",
    "signer_at",
    "signers_at",
    "state_at",
]


class KeyState(StrEnum):
    PUBLISHED = "published"
    ACTIVE = "active"
    RETIRED = "retired"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class KeyTimes:
    kid: str
    alg: str
    activate_at: int
    retire_at: int
    remove_at: int


@dataclass(frozen=True, slots=True)
class NewKey:
    alg: str
    activate_at: int
    retire_at: int
    remove_at: int


@dataclass(frozen=True, slots=True)
class Plan:
    """What to change: keys to create, keys whose signing ends early, keys to delete."""

    create: tuple[NewKey, ...] = ()
    retire: tuple[tuple[str, int, int], ...] = ()  # (kid, retire_at, remove_at)
    delete: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.create or self.retire or self.delete)


def state_at(key: KeyTimes, now: float) -> KeyState:
    if now < key.activate_at:
        return KeyState.PUBLISHED
    if now < key.retire_at:
        return KeyState.ACTIVE
    if now < key.remove_at:
        return KeyState.RETIRED
    return KeyState.GONE


def signer_at(keys: Sequence[KeyTimes], now: float, alg: str | None = None) -> KeyTimes | None:
    """The active key that activated last (of algorithm `alg`, when given)."""
    active = [
        k for k in keys if state_at(k, now) is KeyState.ACTIVE and (alg is None or k.alg == alg)
    ]
    return max(active, key=lambda k: (k.activate_at, k.kid), default=None)


@dataclass(frozen=True, slots=True)
class Signers:
    """Who signs at one moment: `access` signs access tokens, `by_alg` the signer of each
    algorithm that has an active key (ID tokens, in the algorithm their client expects)."""

    access: KeyTimes | None
    by_alg: dict[str, KeyTimes]

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(k.kid for k in self.by_alg.values())


def signers_at(keys: Sequence[KeyTimes], now: float, settings: KeySettings) -> Signers:
    """Access tokens are signed by the configured algorithm's signer; until it has one (just
    after the algorithm changed), by the key that activated last."""
    by_alg = {alg: signer for alg in {k.alg for k in keys} if (signer := signer_at(keys, now, alg))}
    access = by_alg.get(settings.algorithm) or signer_at(keys, now)
    return Signers(access, by_alg)


def _new_key(alg: str, activate_at: int, settings: KeySettings) -> NewKey:
    retire_at = activate_at + settings.active_s
    return NewKey(alg, activate_at, retire_at, retire_at + settings.retain_s)


def plan_schedule(keys: Sequence[KeyTimes], now: float, settings: KeySettings) -> Plan:
    """The scheduled work at `now`: drop gone keys, make sure each line has a signer, publish
    each line's successor `publish_ahead_s` before its signer retires, and retire the keys of
    an algorithm no longer configured once the new line signs."""
    gone = tuple(k.kid for k in keys if state_at(k, now) is KeyState.GONE)
    living = [k for k in keys if k.kid not in gone]
    create = tuple(
        new for alg in settings.signing_algorithms for new in _plan_line(alg, living, now, settings)
    )
    retire, unused = _retire_unconfigured(living, create, now, settings)
    return Plan(create=create, retire=retire, delete=unused + gone)


def _plan_line(
    alg: str, living: Sequence[KeyTimes], now: float, settings: KeySettings
) -> tuple[NewKey, ...]:
    t = int(now)
    line = [k for k in living if k.alg == alg]
    signer = signer_at(line, now)
    if signer is None:
        if any(k.activate_at > t for k in line):
            return ()  # its first key is published and will sign
        # A new access-token algorithm is published ahead while the old one signs; a lapsed
        # line, and the ID token line (no other algorithm may stand in), sign at once.
        ahead = not line and alg != ID_TOKEN_ALG and signer_at(living, now) is not None
        return (_new_key(alg, t + settings.publish_ahead_s if ahead else t, settings),)
    successor_due = signer.retire_at - settings.publish_ahead_s
    if t >= successor_due and not any(k.activate_at > signer.activate_at for k in line):
        return (_new_key(alg, max(signer.retire_at, t), settings),)
    return ()


def _retire_unconfigured(
    living: Sequence[KeyTimes], create: Sequence[NewKey], now: float, settings: KeySettings
) -> tuple[tuple[tuple[str, int, int], ...], tuple[str, ...]]:
    """Keys of an algorithm no longer configured: active ones sign until the configured line
    does (even past their own retirement, so there is no gap) and are retained for
    `retain_s`; published ones that never signed are dropped."""
    t = int(now)
    lines = settings.signing_algorithms
    old = [k for k in living if k.alg not in lines]
    if not old:
        return (), ()
    configured = [k for k in living if k.alg == settings.algorithm]
    starts = [k.activate_at for k in configured] + [
        n.activate_at for n in create if n.alg == settings.algorithm
    ]
    start = t if signer_at(configured, now) else min((a for a in starts if a > t), default=t)
    retire = tuple(
        (k.kid, start, start + settings.retain_s)
        for k in old
        if k.activate_at <= t < k.retire_at and k.retire_at != start
    )
    return retire, tuple(k.kid for k in old if k.activate_at > t)


def plan_rotation(
    keys: Sequence[KeyTimes], now: float, settings: KeySettings, *, immediate: bool
) -> Plan:
    """Rotate on demand, every line at once: a new key signs after `publish_ahead_s` (or at
    once when `immediate`, for a suspected compromise); every key active now signs until then
    (even past its own retirement, so that dropping a published successor leaves no gap
    without a signer) and is retained for `retain_s`. Published keys that never signed are
    dropped."""
    t = int(now)
    start = t if immediate else t + settings.publish_ahead_s
    create = tuple(_new_key(alg, start, settings) for alg in settings.signing_algorithms)
    retire = tuple(
        (k.kid, start, start + settings.retain_s) for k in keys if k.activate_at <= t < k.retire_at
    )
    unused = tuple(k.kid for k in keys if k.activate_at > t)
    return Plan(create=create, retire=retire, delete=unused)


def next_event_at(keys: Sequence[KeyTimes], now: float, settings: KeySettings) -> float:
    """The next time a state changes or the schedule has work (for the KeyManager's timer)."""
    times: list[float] = []
    for k in keys:
        times.extend(t for t in (k.activate_at, k.retire_at, k.remove_at) if t > now)
    for alg in settings.signing_algorithms:
        signer = signer_at(keys, now, alg)
        if signer is not None:
            due = signer.retire_at - settings.publish_ahead_s
            if due > now:
                times.append(due)
    return min(times, default=math.inf)
