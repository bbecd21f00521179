"""Key states and the rotation schedule, as pure functions of key times and `now`.

A key is *published* (in the JWKS, not signing) before `activate_at`, *active* until
`retire_at`, *retired* (in the JWKS, verifying only) until `remove_at`, then *gone*.
The signer is the active key that activated last. `remove_at = retire_at + retain_s` with
`retain_s` at least the longest token lifetime, so no rotation strands a valid token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from oauthd.settings import KeySettings

__all__ = [
    "KeyState",
    "KeyTimes",
    "NewKey",
    "Plan",
    "next_event_at",
    "plan_rotation",
    "plan_schedule",
    "signer_at",
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


def signer_at(keys: Sequence[KeyTimes], now: float) -> KeyTimes | None:
    active = [k for k in keys if state_at(k, now) is KeyState.ACTIVE]
    return max(active, key=lambda k: (k.activate_at, k.kid), default=None)


def _new_key(activate_at: int, settings: KeySettings) -> NewKey:
    retire_at = activate_at + settings.active_s
    return NewKey(activate_at, retire_at, retire_at + settings.retain_s)


def plan_schedule(keys: Sequence[KeyTimes], now: float, settings: KeySettings) -> Plan:
    """The scheduled work at `now`: drop gone keys, make sure a signer exists, and publish
    the successor `publish_ahead_s` before the signer retires. A change of algorithm in the
    settings rotates on the same schedule as a manual rotation."""
    t = int(now)
    gone = tuple(k.kid for k in keys if state_at(k, now) is KeyState.GONE)
    living = [k for k in keys if k.kid not in gone]
    signer = signer_at(living, now)
    if signer is None:
        return Plan(create=(_new_key(t, settings),), delete=gone)
    if signer.alg != settings.algorithm and not _has_successor(living, signer, settings):
        return _merge(plan_rotation(living, now, settings, immediate=False), gone)
    successor_due = signer.retire_at - settings.publish_ahead_s
    if t >= successor_due and not _has_successor(living, signer, settings):
        return Plan(create=(_new_key(max(signer.retire_at, t), settings),), delete=gone)
    return Plan(delete=gone)


def _has_successor(keys: Sequence[KeyTimes], signer: KeyTimes, settings: KeySettings) -> bool:
    return any(
        k.activate_at > signer.activate_at and k.alg == settings.algorithm
        for k in keys
        if k.kid != signer.kid
    )


def _merge(plan: Plan, gone: tuple[str, ...]) -> Plan:
    return Plan(create=plan.create, retire=plan.retire, delete=plan.delete + gone)


def plan_rotation(
    keys: Sequence[KeyTimes], now: float, settings: KeySettings, *, immediate: bool
) -> Plan:
    """Rotate on demand: a new key signs after `publish_ahead_s` (or at once when `immediate`,
    for a suspected compromise); every key active now signs until then (even past its own
    retirement, so that dropping a published successor leaves no gap without a signer) and is
    retained for `retain_s`. Published keys that never signed are dropped."""
    t = int(now)
    start = t if immediate else t + settings.publish_ahead_s
    new = _new_key(start, settings)
    retire = tuple(
        (k.kid, start, start + settings.retain_s) for k in keys if k.activate_at <= t < k.retire_at
    )
    unused = tuple(k.kid for k in keys if k.activate_at > t)
    return Plan(create=(new,), retire=retire, delete=unused)


def next_event_at(keys: Sequence[KeyTimes], now: float, settings: KeySettings) -> float:
    """The next time a state changes or the schedule has work (for the KeyManager's timer)."""
    times: list[float] = []
    for k in keys:
        times.extend(t for t in (k.activate_at, k.retire_at, k.remove_at) if t > now)
    signer = signer_at(keys, now)
    if signer is not None:
        due = signer.retire_at - settings.publish_ahead_s
        if due > now:
            times.append(due)
    return min(times, default=math.inf)
