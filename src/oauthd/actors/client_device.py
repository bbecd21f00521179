"""ClientActor handlers for the device authorization grant (RFC 8628): starting a device
authorization, the person's side looking a device code up, and the token endpoint's polls.

The person's decision is recorded by `ApprovePending` / `DenyPending` (client_authz.py),
since a device request goes through the same login and consent pages as a code request."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from oauthd.actors.client_auth import authenticated, require_grant
from oauthd.actors.client_tokens import mint_tokens
from oauthd.actors.context import ClientShard
from oauthd.actors.grants import TokenResponse
from oauthd.actors.shard import CommitThenRaise, command, query
from oauthd.errors import (
    AccessDenied,
    AuthorizationPending,
    ExpiredToken,
    InvalidGrant,
    InvalidRequest,
    SlowDown,
)
from oauthd.oauth.handles import issue_handle
from oauthd.oauth.rfc6749_authorize import AuthorizationRequest
from oauthd.oauth.rfc6749_client_auth import ClientCredentials
from oauthd.oauth.rfc8628_device import (
    DEFAULT_INTERVAL_S,
    DEVICE_GRANT,
    device_scope,
    issue_device_code,
    next_poll,
    parse_device_code,
)
from oauthd.oauth.rfc8707_resources import resolve_resources, token_target
from oauthd.oauth.scopes import format_scope, known_scopes
from oauthd.oauth.token_liveness import has_expired
from oauthd.runtime import Command, Query
from oauthd.storage import ClientRecord, hash_secret
from oauthd.storage.grants import (
    FamilyRow,
)

__all__ = [
    "DeviceStarted",
    "GetDeviceRequest",
    "PollDeviceCode",
    "StartDeviceAuthorization",
]


@dataclass(frozen=True, slots=True)
class DeviceStarted:
    device_code: str
    code_hash: str
    expires_at: int
    expires_in: int
    interval: int


@dataclass(frozen=True, slots=True)
class StartDeviceAuthorization(Command[DeviceStarted]):
    """Command: the device authorization request (RFC 8628 §3.1); replies DeviceStarted."""

    credentials: ClientCredentials
    scope: str | None
    resources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GetDeviceRequest(Query[AuthorizationRequest | None]):
    """Query: the request a pending, unexpired device code stands for, as an authorization
    request to put before the person (RFC 8628 §3.3), or None."""

    code_hash: str
    user_code: str


@dataclass(frozen=True, slots=True)
class PollDeviceCode(Command[TokenResponse]):
    """Command: the device_code grant (RFC 8628 §3.4)."""

    credentials: ClientCredentials
    device_code: str | None
    resources: tuple[str, ...]


@command(StartDeviceAuthorization)
@authenticated
def start_device_authorization(
    shard: ClientShard, client: ClientRecord, message: StartDeviceAuthorization
) -> DeviceStarted:
    require_grant(client, DEVICE_GRANT)
    settings = shard.env.settings
    scope = device_scope(message.scope, client.scope, known_scopes(settings))
    configured = tuple(r.uri for r in settings.resources)
    resources = resolve_resources(message.resources, configured, settings.issuer, scope)
    now = shard.now()
    ttl = settings.tokens.device_code_ttl_s
    device_code = issue_device_code(shard.shard_key)
    request = {"scope": list(scope), "resources": list(resources)}
    code_hash = shard.store.insert_device_code(
        device_code, request, now, now + ttl, DEFAULT_INTERVAL_S
    )
    return DeviceStarted(device_code, code_hash, now + ttl, ttl, DEFAULT_INTERVAL_S)


@query(GetDeviceRequest)
def get_device_request(
    shard: ClientShard, message: GetDeviceRequest
) -> AuthorizationRequest | None:
    client = shard.client()
    row = shard.store.load_device_code(message.code_hash)
    if row is None or row.status != "pending" or has_expired(row.expires_at, shard.now()):
        return None
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri="",
        state=None,
        scope=tuple(row.request["scope"]),
        resources=tuple(row.request["resources"]),
        code_challenge="",
        nonce=None,
        prompt=frozenset({"consent"}),  # RFC 8628 §5.4: always ask (DEVICE-9)
        max_age=None,
        login_hint=None,
        device_code_hash=row.code_hash,
        user_code=message.user_code,
    )


@command(PollDeviceCode)
@authenticated
def poll_device_code(
    shard: ClientShard, client: ClientRecord, message: PollDeviceCode
) -> TokenResponse:
    require_grant(client, DEVICE_GRANT)
    if message.device_code is None:
        raise InvalidRequest("device_code is required")
    # A code of another client's shard never reaches this one; here it is unknown.
    known = parse_device_code(message.device_code) == shard.shard_key
    row = shard.store.load_device_code(hash_secret(message.device_code)) if known else None
    now = shard.now()
    if row is None or row.status == "redeemed":
        raise InvalidGrant("the device code is invalid")  # DEVICE-5, DEVICE-6
    if has_expired(row.expires_at, now):
        raise ExpiredToken("the device code has expired")
    if row.status == "denied":
        raise AccessDenied("the user denied the request")
    if row.status == "pending":
        poll = next_poll(now, row.next_poll_at, row.interval)
        shard.store.set_device_poll(row.code_hash, poll.interval, poll.next_poll_at)
        if poll.too_soon:
            raise CommitThenRaise(SlowDown(f"poll at most every {poll.interval} seconds"))
        raise CommitThenRaise(AuthorizationPending("the user has not yet decided"))
    if row.status != "approved" or row.user_id is None or row.auth_time is None:
        raise InvalidGrant("the device code is invalid")
    # RFC 8628 §3.5 / DEVICE-6: tokens as the code flow issues them, and only once.
    resources = tuple(row.request["resources"])
    scope = tuple(row.request["scope"])
    target = token_target(message.resources, resources, shard.env.settings.issuer, scope)
    family = FamilyRow(
        family_id=secrets.token_urlsafe(16),
        user_id=row.user_id,
        scope=format_scope(scope),
        resources=resources,
        auth_time=row.auth_time,
        expires_at=now + shard.env.settings.tokens.refresh_token_ttl_s,
        revoked_at=None,
    )
    shard.store.insert_family(family, now)
    shard.store.mark_device_redeemed(row.code_hash, family.family_id)
    refresh = None
    if "refresh_token" in client.grant_types:
        refresh = issue_handle("rt", shard.shard_key)
        shard.store.insert_refresh(refresh, family.family_id, now)
    return mint_tokens(shard, DEVICE_GRANT, client, family, target, refresh, None)
