"""Key states and the rotation schedule as pure functions (docs/architecture.md "Tokens":
published -> active -> retired -> gone; a rotation never makes a valid token unverifiable)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Sequence

import pytest

from oauthd.keys import (
    KeyState,
    KeyTimes,
    Plan,
    next_event_at,
    plan_rotation,
    plan_schedule,
    signer_at,
    signers_at,
    state_at,
)
from oauthd.settings import KeySettings

DAY = 86_400
HOUR = 3_600
# One line of keys: RS256 signs access and ID tokens alike (two lines: see the end).
SETTINGS = KeySettings(algorithm="RS256", active_s=30 * DAY, publish_ahead_s=DAY, retain_s=2 * DAY)
ES256 = dataclasses.replace(SETTINGS, algorithm="ES256")  # ES256 access tokens, RS256 ID tokens
T0 = 1_800_000_000  # an arbitrary epoch second
_kids = itertools.count()


def key(activate_at: int, *, alg: str = "RS256", settings: KeySettings = SETTINGS) -> KeyTimes:
    retire_at = activate_at + settings.active_s
    return KeyTimes(f"k{next(_kids)}", alg, activate_at, retire_at, retire_at + settings.retain_s)


def apply(keys: Sequence[KeyTimes], plan: Plan) -> list[KeyTimes]:
    """What the KeyManager does with a plan, minus the key material."""
    retire = {kid: (retire_at, remove_at) for kid, retire_at, remove_at in plan.retire}
    kept = [
        dataclasses.replace(k, retire_at=retire[k.kid][0], remove_at=retire[k.kid][1])
        if k.kid in retire
        else k
        for k in keys
        if k.kid not in plan.delete
    ]
    new = [
        KeyTimes(f"k{next(_kids)}", n.alg, n.activate_at, n.retire_at, n.remove_at)
        for n in plan.create
    ]
    return kept + new


# --- states --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "state"),
    [
        (-1, KeyState.PUBLISHED),
        (0, KeyState.ACTIVE),
        (30 * DAY - 1, KeyState.ACTIVE),
        (30 * DAY, KeyState.RETIRED),
        (32 * DAY - 1, KeyState.RETIRED),
        (32 * DAY, KeyState.GONE),
    ],
)
def test_key_state_changes_exactly_at_its_times(offset: int, state: KeyState) -> None:
    """A key is published before activate_at, active until retire_at, retired until
    remove_at, then gone; each boundary belongs to the later state."""
    assert state_at(key(T0), T0 + offset) is state


def test_signer_is_the_active_key_that_activated_last() -> None:
    """The signer is the active key with the latest activate_at; published and retired keys
    never sign."""
    old, new, future = key(T0 - 10 * DAY), key(T0 - DAY), key(T0 + HOUR)
    assert signer_at([old, new, future], T0) == new
    assert signer_at([future], T0) is None
    assert signer_at([old], T0 + 25 * DAY) is None  # retired
    assert signer_at([], T0) is None


# --- the schedule --------------------------------------------------------------------------------


def test_empty_key_set_creates_a_key_that_signs_at_once() -> None:
    """With no keys at all, the schedule creates one that is active now."""
    plan = plan_schedule([], T0 + 0.7, SETTINGS)
    assert plan.create[0].activate_at == T0
    assert plan.create[0].retire_at == T0 + SETTINGS.active_s
    assert plan.create[0].remove_at == T0 + SETTINGS.active_s + SETTINGS.retain_s
    assert signer_at(apply([], plan), T0 + 0.7) is not None


def test_server_down_past_retirement_creates_an_active_key_at_once() -> None:
    """A server that was down past its signer's retirement creates a key that signs at once
    and keeps the retired key for verification."""
    old = key(T0)
    now = old.retire_at + HOUR
    plan = plan_schedule([old], now, SETTINGS)
    assert [n.activate_at for n in plan.create] == [now]
    assert plan.delete == ()
    keys = apply([old], plan)
    assert state_at(old, now) is KeyState.RETIRED
    assert signer_at(keys, now) == keys[-1]


def test_server_down_past_removal_deletes_gone_keys_and_creates_an_active_key() -> None:
    """Keys past remove_at are deleted; a key that signs now replaces them."""
    old = key(T0)
    now = old.remove_at + DAY
    plan = plan_schedule([old], now, SETTINGS)
    assert plan.delete == (old.kid,)
    assert [n.activate_at for n in plan.create] == [now]


def test_successor_is_published_publish_ahead_s_before_the_signer_retires() -> None:
    """The next key appears in the JWKS publish_ahead_s before it signs, and signs exactly
    when the current signer retires."""
    signer = key(T0)
    due = signer.retire_at - SETTINGS.publish_ahead_s
    assert not plan_schedule([signer], due - 1, SETTINGS)
    plan = plan_schedule([signer], due, SETTINGS)
    assert plan.create == (plan.create[0],)
    assert plan.create[0].activate_at == signer.retire_at
    keys = apply([signer], plan)
    successor = keys[-1]
    assert state_at(successor, due) is KeyState.PUBLISHED
    assert not plan_schedule(keys, due + HOUR, SETTINGS)  # published once, not again
    assert signer_at(keys, signer.retire_at - 1) == signer
    assert signer_at(keys, signer.retire_at) == successor


def test_late_successor_activates_when_the_signer_retires_not_earlier() -> None:
    """Waking after the publish time but before retirement still publishes ahead: the new key
    signs at the signer's retirement, not at once."""
    signer = key(T0)
    now = signer.retire_at - HOUR
    plan = plan_schedule([signer], now, SETTINGS)
    assert plan.create[0].activate_at == signer.retire_at


def test_algorithm_change_publishes_a_key_of_the_new_algorithm_ahead() -> None:
    """A new access-token algorithm in the settings rotates like a manual rotation: its key is
    published publish_ahead_s before it signs; the old one signs until then and is retained."""
    eddsa = dataclasses.replace(ES256, algorithm="EdDSA")
    es256, rs256 = key(T0, alg="ES256"), key(T0)
    now = T0 + 3 * DAY
    keys = apply([es256, rs256], plan_schedule([es256, rs256], now, eddsa))
    new = keys[-1]
    assert new.alg == "EdDSA"
    assert new.activate_at == now + eddsa.publish_ahead_s
    old = dataclasses.replace(
        es256, retire_at=new.activate_at, remove_at=new.activate_at + eddsa.retain_s
    )
    assert keys[:2] == [old, rs256]
    assert signers_at(keys, new.activate_at - 1, eddsa).by_alg["ES256"] == old
    assert signers_at(keys, new.activate_at, eddsa).access == new
    assert signers_at(keys, new.activate_at, eddsa).by_alg["RS256"] == rs256  # ID tokens
    assert not plan_schedule(keys, now + HOUR, eddsa)  # no second key while it waits


def test_switching_access_tokens_to_rs256_retires_the_old_algorithm_at_once() -> None:
    """With RS256 configured, the ID token line signs access tokens too from now on: the
    ES256 key stops signing and is retained; its published successor is dropped."""
    es256, rs256 = key(T0, alg="ES256"), key(T0)
    successor = key(es256.retire_at, alg="ES256")
    now = T0 + 3 * DAY
    plan = plan_schedule([es256, rs256, successor], now, SETTINGS)
    assert plan.create == ()
    assert plan.retire == ((es256.kid, now, now + SETTINGS.retain_s),)
    assert plan.delete == (successor.kid,)
    assert signers_at(apply([es256, rs256, successor], plan), now, SETTINGS).access == rs256


# --- rotation on demand --------------------------------------------------------------------------


def test_rotation_publishes_a_key_that_signs_after_publish_ahead() -> None:
    """A planned rotation: the new key signs after publish_ahead_s; the old key signs until
    then and is retained for retain_s after it."""
    signer = key(T0)
    now = T0 + 5 * DAY
    plan = plan_rotation([signer], now, SETTINGS, immediate=False)
    start = now + SETTINGS.publish_ahead_s
    assert [n.activate_at for n in plan.create] == [start]
    assert plan.retire == ((signer.kid, start, start + SETTINGS.retain_s),)
    keys = apply([signer], plan)
    assert signer_at(keys, start - 1) == keys[0]
    assert signer_at(keys, start) == keys[1]


def test_immediate_rotation_signs_at_once_and_keeps_the_old_key_for_verification() -> None:
    """A suspected compromise: the new key signs now; the old key stops signing now and stays
    in the JWKS for retain_s, so tokens it signed remain verifiable."""
    signer = key(T0)
    now = T0 + 5 * DAY
    keys = apply([signer], plan_rotation([signer], now, SETTINGS, immediate=True))
    assert signer_at(keys, now) == keys[1]
    assert state_at(keys[0], now) is KeyState.RETIRED
    assert keys[0].remove_at == now + SETTINGS.retain_s


def test_rotation_drops_published_keys_that_never_signed() -> None:
    """Published keys that never signed are deleted by a rotation; retired keys are left."""
    retired, signer = key(T0 - 31 * DAY), key(T0 - DAY)
    successor = key(signer.retire_at)
    now = signer.retire_at - HOUR
    plan = plan_rotation([retired, signer, successor], now, SETTINGS, immediate=True)
    assert plan.delete == (successor.kid,)
    assert [kid for kid, *_ in plan.retire] == [signer.kid]


def test_rotation_while_a_successor_is_published_never_leaves_a_gap() -> None:
    """A planned rotation that drops an already-published successor keeps the current signer
    signing until the new key starts, even past its own planned retirement."""
    signer = key(T0)
    keys = apply([signer], plan_schedule([signer], signer.retire_at - DAY, SETTINGS))
    now = signer.retire_at - HOUR
    keys = apply(keys, plan_rotation(keys, now, SETTINGS, immediate=False))
    for t in range(now, now + 2 * DAY, 600):
        assert signer_at(keys, t) is not None, t


# --- the timer -----------------------------------------------------------------------------------


def test_next_event_is_the_earliest_future_state_change_or_publish_time() -> None:
    """The KeyManager wakes at the next activate, retire, remove or successor-publish time."""
    signer = key(T0)
    assert next_event_at([], T0, SETTINGS) == math.inf
    assert next_event_at([signer], T0, SETTINGS) == signer.retire_at - SETTINGS.publish_ahead_s
    assert next_event_at([signer], signer.retire_at - 1, SETTINGS) == signer.retire_at
    assert next_event_at([signer], signer.retire_at, SETTINGS) == signer.remove_at
    assert next_event_at([signer], signer.remove_at, SETTINGS) == math.inf


@pytest.mark.parametrize("settings", [SETTINGS, ES256], ids=["one-line", "two-lines"])
def test_a_year_of_schedules_and_rotations_never_strands_a_token(settings: KeySettings) -> None:
    """Whatever the schedule and on-demand rotations do, every line always has a signer, and
    a key that signed at time s is in the JWKS until s + retain_s (the longest token lifetime)."""
    rng = random.Random(7)
    keys: list[KeyTimes] = []
    signed: list[tuple[str, int]] = []  # (kid, last time it signed)
    now = T0
    while now < T0 + 365 * DAY:
        if rng.random() < 0.01:
            keys = apply(keys, plan_rotation(keys, now, settings, immediate=rng.random() < 0.5))
        keys = apply(keys, plan_schedule(keys, now, settings))
        signers = signers_at(keys, now, settings)
        assert signers.access is not None, now
        assert signers.access.alg == settings.algorithm
        assert signers.by_alg.keys() == set(settings.signing_algorithms), now
        signed += [(kid, now) for kid in signers.kids]
        visible = {k.kid for k in keys if state_at(k, now) is not KeyState.GONE}
        for kid, at in signed:
            if now < at + settings.retain_s:
                assert kid in visible, (kid, at, now)
        signed = [(kid, at) for kid, at in signed if now < at + settings.retain_s]
        now = min(now + rng.randrange(1, 6 * HOUR), int(next_event_at(keys, now, settings)))
    assert len(keys) <= 5 * len(settings.signing_algorithms)  # gone keys are deleted


# --- two lines: access tokens in the configured algorithm, ID tokens in RS256 ------------------


def test_empty_key_set_creates_a_key_of_each_algorithm_that_signs_at_once() -> None:
    """OIDC Discovery §3: beside the configured ES256 key, an RS256 key signs ID tokens."""
    plan = plan_schedule([], T0, ES256)
    assert [(n.alg, n.activate_at) for n in plan.create] == [("ES256", T0), ("RS256", T0)]
    signers = signers_at(apply([], plan), T0, ES256)
    assert signers.access is not None
    assert signers.access.alg == "ES256"
    assert signers.by_alg.keys() == {"ES256", "RS256"}


def test_keys_from_before_id_token_keys_gain_an_rs256_key_that_signs_at_once() -> None:
    """A data dir with only the ES256 line gets its RS256 key at once: ID tokens must not
    wait a day in another algorithm than their clients expect."""
    es256 = key(T0, alg="ES256")
    now = T0 + 5 * DAY
    plan = plan_schedule([es256], now, ES256)
    assert [(n.alg, n.activate_at) for n in plan.create] == [("RS256", now)]
    assert plan.retire == ()
    keys = apply([es256], plan)
    assert signers_at(keys, now, ES256).access == es256
    assert not plan_schedule(keys, now + HOUR, ES256)


def test_each_line_publishes_its_successor_ahead_on_its_own_schedule() -> None:
    """Two lines created at different times rotate independently, each publishing its
    successor publish_ahead_s before its signer retires."""
    es256, rs256 = key(T0, alg="ES256"), key(T0 + 5 * DAY)
    keys = [es256, rs256]
    assert next_event_at(keys, T0 + 6 * DAY, ES256) == es256.retire_at - DAY
    keys = apply(keys, plan_schedule(keys, es256.retire_at - DAY, ES256))
    assert [(k.alg, k.activate_at) for k in keys[2:]] == [("ES256", es256.retire_at)]
    assert next_event_at(keys, es256.remove_at + 1, ES256) == rs256.retire_at - DAY
    keys = apply(keys, plan_schedule(keys, rs256.retire_at - DAY, ES256))
    assert es256 not in keys  # gone
    assert [(k.alg, k.activate_at) for k in keys if k.activate_at > rs256.activate_at] == [
        ("ES256", es256.retire_at),
        ("RS256", rs256.retire_at),
    ]


def test_rotation_rotates_every_line() -> None:
    """`oauthd keys rotate` starts a new key of each algorithm at the same moment."""
    keys = apply([], plan_schedule([], T0, ES256))
    now = T0 + 5 * DAY
    plan = plan_rotation(keys, now, ES256, immediate=True)
    assert sorted(n.alg for n in plan.create) == ["ES256", "RS256"]
    assert sorted(kid for kid, *_ in plan.retire) == sorted(k.kid for k in keys)
    rotated = apply(keys, plan)
    assert signers_at(rotated, now, ES256).kids == {k.kid for k in rotated[2:]}
