"""The Federation actor: production login at the upstream OpenID Connect provider.

One per tenant. It owns `federation.sqlite` (logins in flight) and the only HTTP client that
talks to the upstream. `BeginLogin` records a login bound to the browser and answers the
upstream URL to send the browser to; `FinishLogin` takes that login back exactly once, trades
the code for tokens and verifies the ID token (OIDC Core §3.1.3.7), answering who logged in.

It is a concurrent actor: a slow upstream delays only the login waiting on it. Each database
change is one synchronous transaction, so messages interleave only at network waits. Upstream
failures reach the person as `access_denied` or `server_error` without upstream details; the
details go to the log (never a code, token or secret).
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import trio

from oauthd.actors.outbound import OutboundError, bounded_request
from oauthd.actors.wiring import Env
from oauthd.decoding import loads_bounded
from oauthd.errors import InvalidRequest
from oauthd.keys import (
    ClientKeys,
    KeySetInvalid,
    TokenInvalid,
    UnknownKey,
    parse_provider_jwks,
    verify_signed,
)
from oauthd.oauth.oidc_federation import (
    IdTokenRejected,
    MetadataRejected,
    ProviderMetadata,
    UpstreamIdentity,
    authorization_url,
    check_id_token,
    check_response_issuer,
    check_userinfo,
    derive,
    parse_provider_metadata,
    token_auth_method,
)
from oauthd.runtime import Address, Command
from oauthd.settings import is_loopback_host
from oauthd.storage import FederationStore
from oauthd.storage.federation import LoginRow

__all__ = [
    "BeginLogin",
    "CollectLogins",
    "Federation",
    "FinishLogin",
    "LoggedIn",
    "LoginFailed",
    "federation_address",
]

log = logging.getLogger("oauthd.federation")
T = TypeVar("T")

MAX_BYTES = 256_000  # discovery documents, key sets and token responses
MIN_KEY_REFETCH_S = 10.0  # an unknown kid refetches the upstream's keys at most this often
RETRY_DISCOVERY_S = 10.0  # after a failed refetch, the stale discovery document serves this long
EXPIRED = "this sign-in has expired or was already used; start again from the app"


def federation_address(tenant: str) -> Address:
    return Address(tenant, "federation", "upstream")


@dataclass(frozen=True, slots=True)
class LoggedIn:
    request_id: str
    identity: UpstreamIdentity


@dataclass(frozen=True, slots=True)
class LoginFailed:
    """The login's authorization request ends with an error to its client: `access_denied`
    when the person cancelled upstream, else `server_error`."""

    request_id: str
    denied: bool


@dataclass(frozen=True, slots=True)
class BeginLogin(Command[str]):
    """Command: start a login for the pending authorization request `request_id`, bound to
    the browser holding `binding`; replies with the upstream URL to redirect to."""

    request_id: str
    binding: str
    login_hint: str | None
    max_age: int | None
    force_login: bool


@dataclass(frozen=True, slots=True)
class FinishLogin(Command[LoggedIn | LoginFailed]):
    """Command: the browser came back to /callback. Replies LoggedIn or LoginFailed; raises
    InvalidRequest when `state` is unknown, used, expired or from another browser."""

    state: str
    binding: str
    code: str | None
    error: str | None
    error_description: str | None
    issuer: str | None = None  # RFC 9207 `iss` of the authorization response


@dataclass(frozen=True, slots=True)
class CollectLogins(Command[int]):
    """Command: delete expired logins; replies with how many (the janitor)."""


class UpstreamError(Exception):
    """The upstream did not answer usefully; the message is for the log only."""


class Federation:
    def __init__(self, env: Env, tenant: str, secret: str) -> None:
        self._env = env
        self._settings = env.settings.federation
        self._tenant = tenant
        self._secret = secret
        self._store: FederationStore | None = None
        self._http: httpx.AsyncClient | None = None
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._metadata_retry_at = 0.0  # a failed refetch: no new attempt before this
        self._keys: tuple[float, ClientKeys] | None = None
        self._metadata_lock = trio.Lock()
        self._keys_lock = trio.Lock()
        self._store_lock = trio.Lock()
        issuer_host = urlsplit(self._settings.upstream_issuer).hostname or ""
        self._allow_http = is_loopback_host(issuer_host)  # only a loopback upstream (tests)
        self._callback = env.settings.issuer + "/callback"

    @property
    def store(self) -> FederationStore:
        assert self._store is not None, "federation used before open()"
        return self._store

    async def open(self) -> None:
        self._store = self._env.backend.open_federation(self._env.settings, self._tenant)
        transport: Any = self._env.fetch_transport
        self._http = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(self._settings.timeout_s),
            headers={"Accept": "application/json", "User-Agent": "oauthd"},
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def _now(self) -> float:
        return self._env.clock.now()

    async def receive(self, message: Any) -> Any:
        if isinstance(message, BeginLogin):
            return await self._begin(message)
        if isinstance(message, FinishLogin):
            return await self._finish(message)
        if isinstance(message, CollectLogins):
            now = int(self._now())
            return await self._write(lambda: self.store.collect_logins(now))
        raise TypeError(f"unsupported message {type(message).__name__}")

    async def _write(self, change: Callable[[], T]) -> T:
        """One transaction, by the shard actors' rule (the store's `run`). Messages here run
        concurrently, so the connection is held by one transaction at a time: the lock."""
        async with self._store_lock:
            return await self.store.run(change, writes=True)

    # --- begin ---------------------------------------------------------------------------------

    async def _begin(self, message: BeginLogin) -> str:
        try:
            metadata = await self._provider()
        except UpstreamError as exc:
            log.warning("upstream discovery failed: %s", exc)
            raise InvalidRequest(
                "the sign-in service is not reachable right now; try again shortly"
            ) from None
        state = secrets.token_urlsafe(32)
        now = int(self._now())
        row = LoginRow(
            binding_hash="",
            request_id=message.request_id,
            started_at=now,
            expires_at=now + self._settings.login_ttl_s,
            max_age=message.max_age,
            force_login=message.force_login,
        )
        await self._write(lambda: self.store.insert_login(state, message.binding, row))
        return authorization_url(
            metadata,
            client_id=self._settings.client_id,
            redirect_uri=self._callback,
            scopes=self._settings.scopes,
            state=state,
            binding=message.binding,
            login_hint=message.login_hint,
            max_age=message.max_age,
            force_login=message.force_login,
        )

    # --- finish --------------------------------------------------------------------------------

    async def _finish(self, message: FinishLogin) -> LoggedIn | LoginFailed:
        now = int(self._now())
        # single use: taken before anything else can happen
        row = await self._write(lambda: self.store.take_login(message.state, message.binding))
        if row is None or row.expires_at <= now:
            raise InvalidRequest(EXPIRED)
        try:
            check_response_issuer(await self._provider(), message.issuer)
        except (UpstreamError, IdTokenRejected) as exc:
            log.warning("upstream login failed: %s", exc)
            return LoginFailed(row.request_id, denied=False)
        if message.error is not None:
            # OIDC Core §3.1.2.6: the upstream refused; its words stay in the log.
            log.warning(
                "upstream login ended with error=%s (%s)",
                _printable(message.error),
                _printable(message.error_description or ""),
            )
            return LoginFailed(row.request_id, denied=message.error == "access_denied")
        try:
            identity = await self._identify(message, row, now)
        except (UpstreamError, IdTokenRejected, MetadataRejected) as exc:
            log.warning("upstream login failed: %s", exc)
            return LoginFailed(row.request_id, denied=False)
        return LoggedIn(row.request_id, identity)

    async def _identify(self, message: FinishLogin, row: LoginRow, now: int) -> UpstreamIdentity:
        if not message.code:
            raise UpstreamError("the callback has neither code nor error")
        metadata = await self._provider()
        tokens = await self._exchange(metadata, message.state, message.binding, message.code)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamError("the token response has no id_token")
        claims = await self._verify(metadata, id_token)
        identity = check_id_token(
            claims,
            issuer=metadata.issuer,
            client_id=self._settings.client_id,
            nonce=derive(message.state, message.binding, "nonce"),
            now=now,
            started_at=row.started_at,
            max_age=row.max_age,
            force_login=row.force_login,
        )
        access_token = tokens.get("access_token")
        if (not identity.email or not identity.name) and isinstance(access_token, str):
            identity = await self._complete(metadata, identity, access_token)
        return identity

    async def _exchange(
        self, metadata: ProviderMetadata, state: str, binding: str, code: str
    ) -> dict[str, Any]:
        """OIDC Core §3.1.3.1 with the PKCE verifier (RFC 7636 §4.5)."""
        client_id = self._settings.client_id
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._callback,
            "code_verifier": derive(state, binding, "pkce"),
        }
        headers: dict[str, str] = {}
        method = token_auth_method(metadata, bool(self._secret))
        if method == "client_secret_basic":
            # RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
            pair = f"{quote(client_id, safe='')}:{quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = client_id
            if method == "client_secret_post":
                form["client_secret"] = self._secret
        status, body = await self._call("POST", metadata.token_endpoint, data=form, headers=headers)
        document = _json(body)
        if status != 200 or not isinstance(document, dict):
            error = document.get("error") if isinstance(document, dict) else None
            raise UpstreamError(f"token endpoint answered {status} error={_printable(error)}")
        return document

    async def _complete(
        self, metadata: ProviderMetadata, identity: UpstreamIdentity, access_token: str
    ) -> UpstreamIdentity:
        """OIDC Core §5.3: ask userinfo for the email or name the ID token left out."""
        if metadata.userinfo_endpoint is None:
            return identity
        headers = {"Authorization": f"Bearer {access_token}"}
        try:
            status, body = await self._call("GET", metadata.userinfo_endpoint, headers=headers)
        except UpstreamError as exc:
            log.warning("upstream userinfo failed, continuing without it: %s", exc)
            return identity
        if status != 200:
            log.warning("upstream userinfo answered %s, continuing without it", status)
            return identity
        return check_userinfo(identity, _json(body))

    # --- the upstream's metadata and keys ------------------------------------------------------

    async def _provider(self) -> ProviderMetadata:
        """The discovery document, cached for metadata_ttl_s; a stale copy serves while the
        upstream cannot be reached."""
        async with self._metadata_lock:  # one fetch at a time, whoever waits reuses it
            cached = self._metadata
            if cached is not None and (
                self._now() - cached[0] < self._settings.metadata_ttl_s
                or self._now() < self._metadata_retry_at
            ):
                return cached[1]
            issuer = self._settings.upstream_issuer
            url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                metadata = await self._discover(url, issuer)
            except (UpstreamError, MetadataRejected) as exc:
                if cached is None:
                    raise UpstreamError(f"{url}: {exc}") from None
                log.warning("upstream discovery failed, using the cached copy: %s", exc)
                # The logins queued on the lock must not each wait timeout_s for it again.
                self._metadata_retry_at = self._now() + RETRY_DISCOVERY_S
                return cached[1]
            self._metadata = (self._now(), metadata)
            return metadata

    async def _discover(self, url: str, issuer: str) -> ProviderMetadata:
        status, body = await self._call("GET", url)
        if status != 200:
            raise UpstreamError(f"discovery answered {status}")
        return parse_provider_metadata(_json(body), issuer, self._allow_http)

    async def _verify(self, metadata: ProviderMetadata, id_token: str) -> dict[str, Any]:
        keys = await self._key_set(metadata, fresh=False)
        algorithms = metadata.signing_algorithms
        try:
            return verify_signed(id_token, keys, algorithms)
        except UnknownKey:
            keys = await self._key_set(metadata, fresh=True)  # the upstream may have rotated
        except TokenInvalid as exc:
            raise IdTokenRejected(f"ID token signature: {exc}") from None
        try:
            return verify_signed(id_token, keys, algorithms)
        except TokenInvalid as exc:
            raise IdTokenRejected(f"ID token signature: {exc}") from None

    async def _key_set(self, metadata: ProviderMetadata, *, fresh: bool) -> ClientKeys:
        async with self._keys_lock:
            cached = self._keys
            if cached is not None:
                age = self._now() - cached[0]
                limit = MIN_KEY_REFETCH_S if fresh else self._settings.metadata_ttl_s
                if age < limit:
                    return cached[1]
            status, body = await self._call("GET", metadata.jwks_uri)
            if status != 200:
                raise UpstreamError(f"jwks_uri answered {status}")
            try:
                keys = parse_provider_jwks(body.decode("utf-8", "replace"))
            except KeySetInvalid as exc:
                raise UpstreamError(f"jwks_uri: {exc}") from None
            self._keys = (self._now(), keys)
            return keys

    async def _call(self, method: str, url: str, **kwargs: Any) -> tuple[int, bytes]:
        """One bounded HTTP call: timeout_s for all of it, MAX_BYTES of body, no redirects."""
        assert self._http is not None, "federation used before open()"
        try:
            answer = await bounded_request(
                self._http,
                method,
                url,
                max_bytes=MAX_BYTES,
                timeout_s=self._settings.timeout_s,
                **kwargs,
            )
        except OutboundError as exc:
            raise UpstreamError(str(exc)) from None
        return answer.status, answer.body


def _json(body: bytes) -> Any:
    try:
        return loads_bounded(body)
    except ValueError:
        return None


def _printable(value: Any) -> str:
    """Upstream text for a log line: bounded, without control characters."""
    text = value if isinstance(value, str) else repr(value)
    return "".join(c if c.isprintable() else "?" for c in text[:200])
