"""The KeyManager actor: owns the keys shard, keeps the rotation schedule, and publishes a new
`Keyring` snapshot whenever the set of keys or the signer changes.

It re-reads the shard when another process (`oauthd keys rotate`, another worker) committed to
it, so a rotation by the CLI reaches a running server within `keys.reload_interval_s`, and at
once when a token arrives signed by a key this process does not know yet (`ReloadKeys`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import trio

from oauthd.actors.shard import ShardActor, command, query
from oauthd.errors import OAuthError
from oauthd.keys import (
    KeyringHolder,
    KeyState,
    KeyTimes,
    Plan,
    build_keyring,
    generate_key,
    next_event_at,
    plan_rotation,
    plan_schedule,
    signers_at,
    state_at,
)
from oauthd.keys.jwk import seal
from oauthd.runtime import ActorSystem, Address, Clock, Command, Query
from oauthd.settings import KeySettings
from oauthd.storage import KeyRow, KeyStore

__all__ = [
    "KeyInfo",
    "KeyManager",
    "ListKeys",
    "NextKeyChange",
    "ReloadKeys",
    "RotateKeys",
    "Tick",
    "keys_address",
    "run_key_schedule",
]

log = logging.getLogger("oauthd.keys")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    alg: str
    state: str
    signing: bool
    activate_at: int
    retire_at: int
    remove_at: int


@dataclass(frozen=True, slots=True)
class Tick(Command[float]):
    """Command: apply the schedule and pick up changes from disk; replies with the time of the
    next scheduled change."""


@dataclass(frozen=True, slots=True)
class RotateKeys(Command[list[KeyInfo]]):
    """Command: rotate now. `immediate` makes the new key sign at once (suspected compromise)."""

    immediate: bool = False


@dataclass(frozen=True, slots=True)
class ReloadKeys(Query[None]):
    """Query: re-read the keys shard if another process committed to it since the last read
    (a token names a kid this process does not know: an immediate rotation elsewhere)."""


@dataclass(frozen=True, slots=True)
class ListKeys(Query[list[KeyInfo]]):
    """Query: every key with its state."""


@dataclass(frozen=True, slots=True)
class NextKeyChange(Query[float]):
    """Query: the time of the next scheduled change of the keys as last read, with no
    transaction (a KeyManager that just opened has applied the schedule and read the shard):
    a tenant's activation asks it to start its key schedule."""


def keys_address(tenant: str) -> Address:
    return Address(tenant, "keys", "")


class KeyManager(ShardActor[KeyStore]):
    loads_writing = True  # the schedule is applied when it opens: a first key is made

    def __init__(
        self,
        open_store: Callable[[], KeyStore],
        settings: KeySettings,
        clock: Clock,
        holder: KeyringHolder,
        kek: bytes | None,
    ) -> None:
        super().__init__(open_store)
        self._settings = settings
        self._clock = clock
        self._holder = holder
        self._kek = kek
        self._rows: list[KeyRow] = []
        self._signer: str | None = None  # signs access tokens
        self._signers: frozenset[str] = frozenset()  # every algorithm's signer
        self._seen_version = -1

    def loaded(self) -> None:
        rows = self.store.load_keys()
        plan = plan_schedule(self._times(rows), self._now(), self._settings)
        self._apply(plan)
        self._reload(None if plan else rows)

    def loaded_by_reading(self) -> bool:
        """A tenant's activation opens its KeyManager, and its schedule has almost never
        anything to apply then: the keys are read without the write lock. The version is read
        first, so that a commit between the two reads makes the next look read them again."""
        version = self.store.data_version()
        rows = self.store.load_keys()
        if plan_schedule(self._times(rows), self._now(), self._settings):
            return False  # a first key, a rotation, a key to retire or delete: `loaded`
        self._take(rows, version)
        return True

    # --- messages ----------------------------------------------------------------------------

    @command(Tick)
    def tick(self, _message: Tick) -> float:
        now = self._now()
        plan = plan_schedule(self._times(self.store.load_keys()), now, self._settings)
        if plan or self.store.data_version() != self._seen_version:
            self._apply(plan)
            self._reload()
        elif self._signer_changed(now):
            self._publish(now)
        return next_event_at(self._times(self._rows), now, self._settings)

    @command(RotateKeys)
    def rotate(self, message: RotateKeys) -> list[KeyInfo]:
        now = self._now()
        keys = self._times(self.store.load_keys())
        self._apply(plan_rotation(keys, now, self._settings, immediate=message.immediate))
        self._reload()
        log.info("keys rotated (immediate=%s); signer %s", message.immediate, self._signer)
        self.audit("key_rotated", immediate=message.immediate, signer=self._signer or "")
        return self._infos(now)

    @query(ReloadKeys)
    def reload_keys(self, _message: ReloadKeys) -> None:
        if self.store.data_version() != self._seen_version:
            self._reload()

    @query(ListKeys)
    def list_keys(self, _message: ListKeys) -> list[KeyInfo]:
        return self._infos(self._now())

    @query(NextKeyChange)
    def next_change(self, _message: NextKeyChange) -> float:
        return next_event_at(self._times(self._rows), self._now(), self._settings)

    # --- internals ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now()

    @staticmethod
    def _times(rows: list[KeyRow]) -> list[KeyTimes]:
        return [KeyTimes(r.kid, r.alg, r.activate_at, r.retire_at, r.remove_at) for r in rows]

    def _apply(self, plan: Plan) -> None:
        if plan.delete:
            self.store.delete_keys(list(plan.delete))
        for kid, retire_at, remove_at in plan.retire:
            self.store.update_key_times(kid, retire_at, remove_at)
        for new in plan.create:
            key = generate_key(new.alg, self._settings.rsa_bits)
            row = KeyRow(
                key.kid,
                key.alg,
                int(self._now()),
                new.activate_at,
                new.retire_at,
                new.remove_at,
                key.public_jwk,
                seal(key.private_jwk, self._kek),
            )
            self.store.insert_key(row)
            self.audit("key_created", kid=key.kid, alg=key.alg, activate_at=new.activate_at)
            log.info("key %s (%s) created, signs from %d", key.kid, key.alg, new.activate_at)

    def _reload(self, rows: list[KeyRow] | None = None) -> None:
        """Take the store's keys (`rows` when just read in this transaction) and publish."""
        self._take(self.store.load_keys() if rows is None else rows, self.store.data_version())

    def _take(self, rows: list[KeyRow], version: int) -> None:
        """Publish `rows`, the keys as of the shard's data `version`."""
        self._rows = rows
        self._seen_version = version
        self._publish(self._now())

    def _signer_changed(self, now: float) -> bool:
        signers = signers_at(self._times(self._rows), now, self._settings)
        access = signers.access.kid if signers.access else None
        return (access, signers.kids) != (self._signer, self._signers)

    def _publish(self, now: float) -> None:
        """Build the snapshot: every key not gone is in the JWKS; each line's signer signs."""
        times = self._times(self._rows)
        signers = signers_at(times, now, self._settings)
        self._signer = signers.access.kid if signers.access else None
        self._signers = signers.kids
        visible = [
            (r.kid, r.alg, r.public_jwk, r.private_jwk)
            for r, t in zip(self._rows, times, strict=True)
            if state_at(t, now) is not KeyState.GONE
        ]
        self._holder.replace(build_keyring(visible, self._signer, self._kek, self._signers))

    def _infos(self, now: float) -> list[KeyInfo]:
        return [
            KeyInfo(
                t.kid,
                t.alg,
                state_at(t, now).value,
                t.kid in self._signers,
                t.activate_at,
                t.retire_at,
                t.remove_at,
            )
            for t in self._times(self._rows)
        ]


async def run_key_schedule(
    system: ActorSystem,
    address: Address,
    clock: Clock,
    reload_interval_s: float,
    next_at: float | None = None,
) -> None:
    """Wake the KeyManager at each scheduled change, and every `reload_interval_s` to notice
    changes made by other processes. A failed tick (the shard locked by another process past
    its busy timeout) is retried; the keyring keeps its last snapshot meanwhile. `next_at`:
    the answer of a Tick just asked, to sleep from rather than tick again at once."""
    while True:
        if next_at is None:
            try:
                next_at = await system.ask(address, Tick())
            except OAuthError as exc:
                log.warning(
                    "key schedule tick failed, retrying in %s s: %s", reload_interval_s, exc
                )
                next_at = math.inf
        wait_s = min(reload_interval_s, max(next_at - clock.now(), 0.0))
        next_at = None
        await trio.sleep(wait_s if math.isfinite(wait_s) else reload_interval_s)
