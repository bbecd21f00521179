"""ClientActor handlers for the token endpoint: the authorization_code, refresh_token and
client_credentials grants, and minting tokens. Each runs in one transaction: two redemptions of
one code, or two rotations of one refresh token, or two uses of one assertion, are ordered by
the actor and the write lock, and only one wins. Client authentication is `client_auth.py`."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from oauthd.actors.client_auth import authenticated, require_grant
from oauthd.actors.context import ClientShard
from oauthd.actors.grants import CheckAccessToken, RedeemCode, RefreshTokens, TokenResponse
from oauthd.actors.shard import CommitThenRaise, command, query
from oauthd.actors.token_state import is_access_token_live, load_refresh_state
from oauthd.errors import InvalidGrant, InvalidRequest, InvalidScope
from oauthd.keys.sealing import open_sealed, seal_for
from oauthd.oauth.handles import issue_handle, parse_handle
from oauthd.oauth.oidc_id_token import id_token_claims
from oauthd.oauth.rfc6749_client_auth import ClientCredentials
from oauthd.oauth.rfc6749_client_credentials import (
    check_client_may_use_grant,
    client_credentials_audience,
    client_credentials_scope,
)
from oauthd.oauth.rfc7636_pkce import check_verifier
from oauthd.oauth.rfc8707_resources import TokenTarget, token_target
from oauthd.oauth.rfc9068_access_token import TYP, access_token_claims
from oauthd.oauth.scopes import format_scope, known_scopes, parse_scope
from oauthd.oauth.token_liveness import Liveness, has_expired
from oauthd.runtime import Command
from oauthd.settings import ID_TOKEN_ALG
from oauthd.storage import ClientRecord
from oauthd.storage.grants import (
    FamilyRow,
)

__all__ = ["IssueClientToken", "mint_tokens"]


@dataclass(frozen=True, slots=True)
class IssueClientToken(Command[TokenResponse]):
    """Command: the client_credentials grant (OAuth 2.1 §4.2)."""

    credentials: ClientCredentials
    scope: str | None
    resources: tuple[str, ...]


# --- authorization_code (OAuth 2.1 §4.1.3) ---------------------------------------------


@command(RedeemCode)
@authenticated
def redeem_code(shard: ClientShard, client: ClientRecord, message: RedeemCode) -> TokenResponse:
    require_grant(client, "authorization_code")
    if message.code is None:
        raise InvalidRequest("code is required")
    row = shard.store.load_code(message.code) if parse_handle(message.code, "ac") else None
    if row is None:
        raise InvalidGrant("the code is invalid")
    grant = row.grant
    # Checks that do not depend on the code's state come first, so a replay by someone
    # without the verifier revokes nothing (OAuth 2.1 §7.5.2, CODE-3).
    _check_redirect_uri(grant, message.redirect_uri)
    check_verifier(message.code_verifier, grant["code_challenge"])
    now = shard.now()
    if row.redeemed_at is not None:
        # OAuth 2.1 §4.1.3: a second redemption revokes what the first one issued.
        if row.family_id:
            shard.store.revoke_family(row.family_id, now)
            shard.audit("code_reuse_detected", client_id=client.client_id, family=row.family_id)
        raise CommitThenRaise(InvalidGrant("the code was already used"))
    if has_expired(row.expires_at, now):
        raise InvalidGrant("the code has expired")
    resources = tuple(grant["resources"])
    scope = tuple(grant["scope"])
    target = token_target(message.resources, resources, shard.env.settings.issuer, scope)
    family = FamilyRow(
        family_id=secrets.token_urlsafe(16),
        user_id=grant["user_id"],
        scope=format_scope(scope),
        resources=resources,
        auth_time=grant["auth_time"],
        expires_at=now + shard.env.settings.tokens.refresh_token_ttl_s,
        revoked_at=None,
    )
    shard.store.insert_family(family, now)
    shard.store.mark_code_redeemed(message.code, now, family.family_id)
    refresh = None
    if "refresh_token" in client.grant_types:
        refresh = issue_handle("rt", shard.shard_key)
        shard.store.insert_refresh(refresh, family.family_id, now)
    nonce = grant.get("nonce")
    return mint_tokens(shard, "authorization_code", client, family, target, refresh, nonce)


def _check_redirect_uri(grant: dict[str, Any], given: str | None) -> None:
    # OAuth 2.1 §10.2: PKCE binds the code to its client, so the token request may omit
    # redirect_uri (OAuth 2.0 clients still send it); a value that differs from the one
    # used at /authorize is never accepted (RFC 6749 §4.1.3).
    if given is not None and given != grant["redirect_uri"]:
        raise InvalidGrant("redirect_uri does not match the authorization request")


# --- refresh_token (OAuth 2.1 §4.3) ----------------------------------------------------


@command(RefreshTokens)
@authenticated
def refresh_tokens(
    shard: ClientShard, client: ClientRecord, message: RefreshTokens
) -> TokenResponse:
    require_grant(client, "refresh_token")
    token = message.refresh_token
    if token is None:
        raise InvalidRequest("refresh_token is required")
    now = shard.now()
    idle_s = shard.env.settings.tokens.refresh_token_idle_s
    state = (
        load_refresh_state(shard.store, token, idle_s, now) if parse_handle(token, "rt") else None
    )
    if state is None or state.liveness is Liveness.REVOKED:
        raise InvalidGrant("the refresh token is invalid")
    if state.liveness is Liveness.EXPIRED:
        # OAuth 2.1 §4.3.3: the grant's end, or unused too long (REFRESH-9).
        raise InvalidGrant("the refresh token has expired")
    row, family = state.row, state.family
    if row.rotated_at is not None:
        return _replay(shard, token, row.rotated_at, row.replay, family, now)
    granted = tuple(family.scope.split())
    requested = parse_scope(message.scope)
    # OAuth 2.1 §4.3.1: a narrower scope may be asked for, never a wider one.
    if any(s not in granted for s in requested):
        raise InvalidScope("scope exceeds what was granted")
    scope = requested or granted
    issuer = shard.env.settings.issuer
    target = token_target(message.resources, family.resources, issuer, scope)
    successor = issue_handle("rt", shard.shard_key)
    shard.store.insert_refresh(successor, family.family_id, now)
    response = mint_tokens(shard, "refresh_token", client, family, target, successor, None)
    sealed = seal_for(token, json.dumps(response.to_json()).encode())
    shard.store.mark_refresh_rotated(token, now, sealed)
    return response


def _replay(
    shard: ClientShard,
    token: str,
    rotated_at: int,
    replay: str | None,
    family: FamilyRow,
    now: int,
) -> TokenResponse:
    """A rotated token presented again: inside the grace window it is a retry after a lost
    response and gets the same pair; after it, theft is assumed and the whole family is
    revoked (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2)."""
    if replay is not None and now - rotated_at <= shard.env.settings.tokens.refresh_grace_s:
        opened = open_sealed(token, replay)
        if opened is not None:
            body = json.loads(opened)
            return TokenResponse(
                access_token=body["access_token"],
                expires_in=body["expires_in"],
                scope=body["scope"],
                refresh_token=body.get("refresh_token"),
                id_token=body.get("id_token"),
            )
    shard.store.revoke_family(family.family_id, now)
    shard.audit(
        "refresh_reuse_detected",
        client_id=shard.client().client_id,
        sub=family.user_id,
        family=family.family_id,
    )
    raise CommitThenRaise(InvalidGrant("the refresh token was already used"))


# --- client_credentials (OAuth 2.1 §4.2) -------------------------------------------------


@command(IssueClientToken)
@authenticated
def issue_client_token(
    shard: ClientShard, client: ClientRecord, message: IssueClientToken
) -> TokenResponse:
    settings = shard.env.settings
    check_client_may_use_grant(
        auth_method=client.token_endpoint_auth_method,
        self_asserted=client.self_asserted,
        allowed=settings.registration.allow_client_credentials,
    )
    require_grant(client, "client_credentials")
    scope = client_credentials_scope(message.scope, client.scope, known_scopes(settings))
    configured = tuple(r.uri for r in settings.resources)
    audience = client_credentials_audience(message.resources, configured, settings.issuer, scope)
    # RFC 9068 §2.2: with no person involved, the subject is the client itshard. No refresh
    # token (OAuth 2.1 §4.2.1) and no ID token: the client can simply ask again.
    access_token, ttl = _access_token(
        shard, "client_credentials", client, client.client_id, None, scope, audience
    )
    return TokenResponse(access_token, ttl, format_scope(scope))


# --- minting ---------------------------------------------------------------------------


def _access_token(
    shard: ClientShard,
    grant_type: str,
    client: ClientRecord,
    subject: str,
    family_id: str | None,
    scope: tuple[str, ...],
    audience: tuple[str, ...],
    auth_time: int | None = None,
) -> tuple[str, int]:
    """An RFC 9068 access token, its jti recorded in the shard and audited; (token,
    lifetime)."""
    settings = shard.env.settings
    now = shard.now()
    ttl = settings.tokens.access_token_ttl_s
    jti = secrets.token_urlsafe(16)
    claims = access_token_claims(
        issuer=settings.issuer,
        subject=subject,
        client_id=client.client_id,
        audience=audience,
        scope=format_scope(scope),
        now=now,
        ttl_s=ttl,
        jti=jti,
        auth_time=auth_time,
    )
    access_token = shard.env.keyring.current.sign(claims, typ=TYP)
    shard.store.insert_access_token(jti, family_id, now + ttl)
    shard.audit(
        "token_issued",
        grant_type=grant_type,
        client_id=client.client_id,
        sub=subject,
        jti=jti,
        scope=format_scope(scope),
    )
    if client.use_is_stale(now):  # a dynamic client in use lives on (at most a write a day)
        shard.store.touch_client(now)
        shard.forget()
    return access_token, ttl


def mint_tokens(
    shard: ClientShard,
    grant_type: str,
    client: ClientRecord,
    family: FamilyRow,
    target: TokenTarget,
    refresh_token: str | None,
    nonce: str | None,
) -> TokenResponse:
    """An access token for `target` (`token_target`), a refresh token if given, and an ID
    token when the access token's scope includes `openid`."""
    scope = target.scope
    settings = shard.env.settings
    keyring = shard.env.keyring.current
    now = shard.now()
    access_token, ttl = _access_token(
        shard,
        grant_type,
        client,
        family.user_id,
        family.family_id,
        scope,
        target.audience,
        family.auth_time,
    )
    id_token = None
    if "openid" in scope:
        # OIDC Registration §2: RS256 unless the client registered another algorithm.
        alg = json.loads(client.metadata).get("id_token_signed_response_alg") or ID_TOKEN_ALG
        id_claims = id_token_claims(
            issuer=settings.issuer,
            subject=family.user_id,
            client_id=client.client_id,
            now=now,
            ttl_s=settings.tokens.id_token_ttl_s,
            auth_time=family.auth_time,
            nonce=nonce,
            access_token=access_token,
            alg=alg,
            extra={},
        )
        id_token = keyring.sign(id_claims, typ="JWT", alg=alg)
    return TokenResponse(access_token, ttl, format_scope(scope), refresh_token, id_token)


@query(CheckAccessToken)
def check_access_token(shard: ClientShard, message: CheckAccessToken) -> bool:
    shard.client()  # raises for a deleted client, whose tokens are all inactive
    return is_access_token_live(shard.store, message.jti, shard.now())
