"""The KeyManager actor on a simulated clock (docs/architecture.md "Tokens"): keys rotate on
schedule and on demand, across algorithm changes and restarts, and a rotation never makes a valid
token unverifiable; the JWKS holds public members only; private keys can be sealed at rest."""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jwt
import pytest
import trio
import trio.testing

from oauthd.actors import KeyInfo, KeyManager, ListKeys, RotateKeys, keys_address
from oauthd.errors import ConfigError
from oauthd.keys import KeyringHolder
from oauthd.keys.jwk import unseal
from oauthd.runtime import TrioClock
from oauthd.server import TENANT, Runtime, open_runtime
from oauthd.settings import ActorSettings, KeySettings, Settings, StorageSettings, TokenSettings
from oauthd.storage import SQLITE

DAY = 86_400
HOUR = 3_600
EPOCH = 1_800_000_000.0
TTL = 12 * HOUR  # access and ID token lifetime; keys are retained exactly this long
# oauthd.keys silences this joserfc warning at import, but pytest's collection resets filters.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
KEK_ENV = "OAUTHD_TEST_KEK"


def key_settings(algorithm: str = "ES256", **changes: Any) -> KeySettings:
    values: dict[str, Any] = {
        "algorithm": algorithm,
        "active_s": 30 * DAY,
        "publish_ahead_s": DAY,
        "retain_s": TTL,
        "reload_interval_s": float(DAY),
        **changes,
    }
    return KeySettings(**values)


@pytest.fixture
def settings_with(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings for this test's data dir, with the short key schedule and `keys` changes."""

    def make(algorithm: str = "ES256", **changes: Any) -> Settings:
        return make_settings(
            tokens=TokenSettings(access_token_ttl_s=TTL, id_token_ttl_s=TTL),
            keys=key_settings(algorithm, **changes),
            actors=ActorSettings(idle_timeout_s=30.0 * DAY),  # the idle reaper wakes less often
        )

    return make


@asynccontextmanager
async def running(
    settings: Settings, clock: TrioClock, environ: Mapping[str, str] | None = None
) -> AsyncIterator[Runtime]:
    """open_runtime in a nursery, stopped (its shards closed) on exit."""
    async with trio.open_nursery() as nursery:
        runtime: Runtime = await nursery.start(
            partial(open_runtime, settings, clock=clock, environ=environ or {})
        )
        yield runtime
        nursery.cancel_scope.cancel()


def jwks(runtime: Runtime) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = json.loads(runtime.keyring.current.jwks_bytes)["keys"]
    return keys


@dataclass
class Token:
    jwt: str
    kid: str
    alg: str
    exp: float


@dataclass
class Year:
    """Signs a token every `step_s` and checks every unexpired one against the current keys."""

    clock: TrioClock
    step_s: float = 6 * HOUR
    tokens: list[Token] = field(default_factory=list)
    first_in_jwks: dict[str, float] = field(default_factory=dict)
    first_signed: dict[str, float] = field(default_factory=dict)
    verified: int = 0

    def sign(self, runtime: Runtime) -> Token:
        now = self.clock.now()
        keyring = runtime.keyring.current
        jwt = keyring.sign({"sub": "alice", "iat": int(now), "exp": now + TTL}, typ="at+jwt")
        assert keyring.signer_kid is not None
        token = Token(jwt, keyring.signer_kid, keyring.signing_alg, now + TTL)
        self.tokens.append(token)
        self.first_signed.setdefault(token.kid, now)
        return token

    def check(self, runtime: Runtime) -> None:
        """Every token not yet expired verifies with the current keyring; the JWKS holds public
        members only and names the signer."""
        now = self.clock.now()
        keys = jwks(runtime)
        for jwk in keys:
            assert not PRIVATE_MEMBERS & set(jwk), jwk
            assert jwk["use"] == "sig"
            self.first_in_jwks.setdefault(jwk["kid"], now)
        assert runtime.keyring.current.signer_kid in {k["kid"] for k in keys}
        self.tokens = [t for t in self.tokens if t.exp > now]
        for token in self.tokens:
            header, claims = runtime.keyring.current.verify(token.jwt)
            assert (header["kid"], header["alg"], claims["exp"]) == (
                token.kid,
                token.alg,
                token.exp,
            )
            self.verified += 1

    async def until(self, runtime: Runtime, day: float) -> None:
        while self.clock.now() + self.step_s <= EPOCH + day * DAY:
            await trio.sleep(self.step_s)
            self.sign(runtime)
            self.check(runtime)


def es256_only(infos: list[KeyInfo]) -> list[KeyInfo]:
    """The access-token line's keys (ES256), without the ID tokens' RS256 line."""
    return [k for k in infos if k.alg == "ES256"]


def stored_kids(settings: Settings) -> list[str]:
    return [row[0] for row in read_keys(settings, "SELECT kid FROM keys")]


def read_keys(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(settings.data_dir / TENANT / "keys.sqlite")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_a_year_of_rotations_never_makes_a_valid_token_unverifiable(
    settings_with: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """Over a simulated year of scheduled rotations, on-demand rotations (planned and
    immediate) and algorithm changes on restart (ES256 -> RS256 -> EdDSA), every token stays
    verifiable until it expires, successors are published ahead, and gone keys are deleted."""
    clock = TrioClock(epoch=EPOCH)
    year = Year(clock)
    es256 = settings_with("ES256")

    async with running(es256, clock) as runtime:
        year.check(runtime)
        year.sign(runtime)
        await year.until(runtime, 89.5)  # the successor of the day-60 key is published

        planned = es256_only(await runtime.system.ask(keys_address(TENANT), RotateKeys()))
        signer = runtime.keyring.current.signer_kid
        assert [k.kid for k in planned if k.signing] == [signer]  # still the old signer
        new = [k for k in planned if k.state == "published"]
        assert len(new) == 1  # the scheduled successor was dropped for the new key
        year.check(runtime)
        await year.until(runtime, 90.25)  # past the old signer's planned retirement
        assert runtime.keyring.current.signer_kid == signer
        await year.until(runtime, 90.75)
        assert runtime.keyring.current.signer_kid == new[0].kid

        await year.until(runtime, 130.6)
        before = runtime.keyring.current.signer_kid
        immediate = es256_only(
            await runtime.system.ask(keys_address(TENANT), RotateKeys(immediate=True))
        )
        year.check(runtime)  # the tokens of the old signer still verify
        assert runtime.keyring.current.signer_kid not in (before, None)
        assert [k.kid for k in immediate if k.signing] == [runtime.keyring.current.signer_kid]
        year.sign(runtime)
        immediate_kid = runtime.keyring.current.signer_kid
        await year.until(runtime, 150.5)

    async with running(settings_with("RS256"), clock) as runtime:
        year.check(runtime)  # ES256 tokens signed before the restart
        # The ID tokens' RS256 key, long published, signs access tokens too from now on.
        assert runtime.keyring.current.signing_alg == "RS256"
        await year.until(runtime, 200.5)
        assert runtime.keyring.current.signing_alg == "RS256"

    async with running(settings_with("EdDSA"), clock) as runtime:
        year.check(runtime)
        await year.until(runtime, 365)
        assert runtime.keyring.current.signing_alg == "EdDSA"
        listed = await runtime.system.ask(keys_address(TENANT), ListKeys())

    algs = {alg for alg in ("ES256", "RS256", "EdDSA") if any(t.alg == alg for t in year.tokens)}
    assert algs == {"EdDSA"}  # only the last weeks' tokens are still alive
    assert len(year.first_signed) >= 14  # about one key a month, plus the rotations
    exempt = {next(iter(year.first_signed)), immediate_kid}  # the first key; the compromise
    for kid, signed_at in year.first_signed.items():
        if kid not in exempt:  # published a day ahead, seen by a step at most 6 h later
            assert signed_at - year.first_in_jwks[kid] >= DAY - year.step_s, kid
    assert year.verified > 3 * len(year.first_signed)
    assert sorted(k.kid for k in listed) == sorted(stored_kids(es256))
    assert len(listed) <= 6  # gone keys are deleted (two lines: EdDSA and RS256)
    assert all(k.state != "gone" for k in listed)


async def test_restart_serves_the_same_keys_and_verifies_earlier_tokens(
    settings_with: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """Keys live on disk: a second runtime on the same data dir serves the same JWKS bytes,
    signs with the same key and verifies a token the first one signed."""
    clock = TrioClock(epoch=EPOCH)
    settings = settings_with()
    async with running(settings, clock) as first:
        jwks_bytes = first.keyring.current.jwks_bytes
        signer = first.keyring.current.signer_kid
        token = first.keyring.current.sign({"sub": "alice", "exp": clock.now() + TTL})
    await trio.sleep(HOUR)
    async with running(settings, clock) as second:
        assert second.keyring.current.jwks_bytes == jwks_bytes
        assert second.keyring.current.signer_kid == signer
        assert second.keyring.current.verify(token)[1]["sub"] == "alice"
    assert len(stored_kids(settings)) == 2  # ES256 (access tokens) and RS256 (ID tokens)


async def test_rotation_by_another_process_reaches_the_server_within_reload_interval(
    settings_with: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """A rotation committed to keys.sqlite by another process (`oauthd keys rotate`) is picked
    up by a running server within keys.reload_interval_s."""
    clock = TrioClock(epoch=EPOCH)
    settings = settings_with(reload_interval_s=60.0)
    async with running(settings, clock) as runtime:
        before = runtime.keyring.current.signer_kid
        other = KeyManager(
            partial(SQLITE.open_keys, settings, TENANT), settings.keys, clock, KeyringHolder(), None
        )
        await other.open()
        infos = await other.receive(RotateKeys(immediate=True))
        await other.close()
        rotated = next(k.kid for k in es256_only(infos) if k.signing)
        assert rotated != before
        await trio.sleep(61)
        assert runtime.keyring.current.signer_kid == rotated
        assert before in {k["kid"] for k in jwks(runtime)}  # retained for verification


# --- private keys at rest ------------------------------------------------------------------------

KEK = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
OTHER_KEK = base64.urlsafe_b64encode(bytes(range(1, 33))).decode().rstrip("=")


def leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from leaves(inner)
    else:
        yield error


async def test_private_keys_are_sealed_with_the_kek_and_a_wrong_kek_fails_clearly(
    settings_with: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """With keys.encryption_key_env set, no private key is stored in plaintext; a restart with
    the right key-encryption key works, with a wrong one (or none) it fails and says why."""
    clock = TrioClock(epoch=EPOCH)
    settings = settings_with(encryption_key_env=KEK_ENV)
    async with running(settings, clock, {KEK_ENV: KEK}) as runtime:
        token = runtime.keyring.current.sign({"sub": "alice", "exp": clock.now() + TTL})

    rows = read_keys(settings, "SELECT kid, private_jwk FROM keys")
    assert len(rows) == 2
    shard = b"".join(p.read_bytes() for p in (settings.data_dir / TENANT).glob("keys.sqlite*"))
    for _kid, sealed in rows:
        assert not sealed.startswith("{")
        private = json.loads(unseal(sealed, base64.urlsafe_b64decode(KEK + "=")))
        assert private["d"].encode() not in shard
    assert b'"d"' not in shard

    async with running(settings, clock, {KEK_ENV: KEK}) as runtime:
        assert runtime.keyring.current.verify(token)[1]["sub"] == "alice"

    with pytest.raises(BaseExceptionGroup) as wrong:
        async with running(settings, clock, {KEK_ENV: OTHER_KEK}):
            pytest.fail("started with the wrong key-encryption key")
    errors = [e for e in leaves(wrong.value) if isinstance(e, ConfigError)]
    assert errors
    assert "cannot be decrypted with this key-encryption key" in str(errors[0])

    with pytest.raises(BaseExceptionGroup) as missing:
        async with running(settings_with(), clock):
            pytest.fail("started without the key-encryption key")
    errors = [e for e in leaves(missing.value) if isinstance(e, ConfigError)]
    assert "no key-encryption key is configured" in str(errors[0])

    with pytest.raises(BaseExceptionGroup) as unset:
        async with running(settings, clock, {}):
            pytest.fail("started without $OAUTHD_TEST_KEK")
    assert [type(e) for e in leaves(unset.value)] == [ConfigError]
    assert KEK_ENV in str(next(leaves(unset.value)))


async def test_failed_tick_is_retried_and_does_not_stop_the_server(
    settings_with: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """A tick that fails (keys.sqlite locked by another process past busy_timeout_ms) is
    retried after reload_interval_s; the server keeps serving its last keys meanwhile."""
    clock = TrioClock(epoch=EPOCH)
    settings = dataclasses.replace(
        settings_with(reload_interval_s=60.0), storage=StorageSettings(busy_timeout_ms=1)
    )
    async with running(settings, clock) as runtime:
        signer = runtime.keyring.current.signer_kid
        lock = sqlite3.connect(settings.data_dir / TENANT / "keys.sqlite", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        await trio.sleep(121)  # two ticks fail
        # A write meeting another process's lock waits out the busy timeout in a thread, in
        # real time, while the autojump clock runs ahead: wait for the failure, not a time.
        for _ in range(10_000):
            if runtime.system.stats().restarts >= 1:
                break
            await trio.sleep(1)
        assert runtime.system.stats().restarts >= 1
        assert runtime.keyring.current.signer_kid == signer
        lock.execute("ROLLBACK")
        lock.close()
        await trio.sleep(61)
        listed = es256_only(await runtime.system.ask(keys_address(TENANT), ListKeys()))
        assert [k.kid for k in listed if k.signing] == [signer]


async def test_opening_with_nothing_due_reads_past_another_process_s_write_lock(
    settings_with: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """A KeyManager that opens (a tenant's activation) with no change due only reads its
    shard: another process holding the write lock (`oauthd keys rotate` mid-transaction)
    neither delays it nor fails it, even with a busy timeout too short to wait it out."""
    clock = TrioClock(epoch=EPOCH)
    settings = dataclasses.replace(settings_with(), storage=StorageSettings(busy_timeout_ms=1))
    async with running(settings, clock) as first:
        signer = first.keyring.current.signer_kid
    lock = sqlite3.connect(settings.data_dir / TENANT / "keys.sqlite", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        holder = KeyringHolder()
        manager = KeyManager(
            partial(SQLITE.open_keys, settings, TENANT), settings.keys, clock, holder, None
        )
        await manager.open()
        assert holder.current.signer_kid == signer
        await manager.close()
    finally:
        lock.execute("ROLLBACK")
        lock.close()


# --- two lines: ES256 access tokens, RS256 ID tokens -------------------------------------------


async def test_rs256_key_signs_id_tokens_beside_the_configured_key(
    settings_with: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """OIDC Discovery §3: an RS256 key is published and signs beside the ES256 one; each
    token verifies with the key its header names, and both keys rotate together."""
    clock = TrioClock(epoch=EPOCH)
    async with running(settings_with("ES256"), clock) as runtime:
        keyring = runtime.keyring.current
        access = keyring.sign({"sub": "alice", "exp": clock.now() + TTL}, typ="at+jwt")
        id_token = keyring.sign({"sub": "alice", "exp": clock.now() + TTL}, alg="RS256")
        assert jwt.get_unverified_header(access)["alg"] == "ES256"
        assert jwt.get_unverified_header(id_token)["alg"] == "RS256"
        assert {k["alg"] for k in jwks(runtime)} == {"ES256", "RS256"}
        listed = await runtime.system.ask(keys_address(TENANT), ListKeys())
        assert sorted(k.alg for k in listed if k.signing) == ["ES256", "RS256"]

        rotated = await runtime.system.ask(keys_address(TENANT), RotateKeys(immediate=True))
        signing = {k.kid for k in rotated if k.signing}
        assert len(signing) == 2
        assert not signing & {k.kid for k in listed}  # both lines moved to new keys
        keyring = runtime.keyring.current
        for token in (access, id_token):  # retained: earlier tokens still verify
            assert keyring.verify(token)[1]["sub"] == "alice"
        assert (
            jwt.get_unverified_header(keyring.sign({"sub": "bob"}, alg="RS256"))["kid"] in signing
        )
        assert jwt.get_unverified_header(keyring.sign({"sub": "bob"}))["kid"] in signing


async def test_data_dir_without_an_rs256_key_gains_one_that_signs_at_once(
    settings_with: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """A keys.sqlite from before ID tokens had their own key (ES256 only) gets an RS256 key
    on start, signing at once; the ES256 signer and the tokens it signed are kept."""
    clock = TrioClock(epoch=EPOCH)
    settings = settings_with("ES256")
    async with running(settings, clock) as runtime:
        signer = runtime.keyring.current.signer_kid
        token = runtime.keyring.current.sign({"sub": "alice", "exp": clock.now() + TTL})
    conn = sqlite3.connect(settings.data_dir / TENANT / "keys.sqlite")
    with conn:
        conn.execute("DELETE FROM keys WHERE alg = 'RS256'")
    conn.close()
    await trio.sleep(HOUR)
    async with running(settings, clock) as runtime:
        keyring = runtime.keyring.current
        assert keyring.signer_kid == signer
        assert keyring.verify(token)[1]["sub"] == "alice"
        id_token = keyring.sign({"sub": "alice"}, alg="RS256")
        assert jwt.get_unverified_header(id_token)["kid"] in {k["kid"] for k in jwks(runtime)}
        assert keyring.verify(id_token)[0]["alg"] == "RS256"
    assert len(stored_kids(settings)) == 2
