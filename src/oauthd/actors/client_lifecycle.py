"""ClientActor handlers for a token's life after it is issued: revocation (RFC 7009) and
introspection (RFC 7662), and the caller authentication /introspect asks of the caller's
own shard before it asks the token's: a read for a secret (`CheckCaller`), a write only for
an RFC 7523 assertion, whose jti is spent (`AuthenticateCaller`; see `caller_check`).

The front door verifies a JWT access token's signature with the keyring before it sends it
here (`read_access_token`), and routes it by its verified `client_id`; a refresh token goes
to the shard named in its handle. The shard then answers from its own records: a jti that is
not on record, or is revoked, is inactive whatever its signature says."""

from __future__ import annotations

from dataclasses import dataclass

from oauthd.actors.client_auth import authenticate, check_credentials, spends
from oauthd.actors.context import ClientShard
from oauthd.actors.shard import command, query
from oauthd.actors.token_state import is_access_token_live, load_refresh_state
from oauthd.keys import Keyring, TokenInvalid
from oauthd.oauth.handles import parse_handle
from oauthd.oauth.rfc6749_client_auth import ClientCredentials
from oauthd.oauth.rfc6750_bearer import InvalidToken
from oauthd.oauth.rfc7009_revocation import looks_like_jwt
from oauthd.oauth.rfc7662_introspection import (
    INACTIVE,
    Introspection,
    check_issued_access_token,
    may_introspect,
)
from oauthd.oauth.rfc8707_resources import token_target
from oauthd.oauth.rfc9068_access_token import AccessTokenClaims
from oauthd.oauth.token_liveness import Liveness
from oauthd.runtime import Command, Query

__all__ = [
    "AuthenticateCaller",
    "CheckCaller",
    "IntrospectToken",
    "RevokeToken",
    "caller_check",
    "read_access_token",
]


@dataclass(frozen=True, slots=True)
class AuthenticateCaller(Command[str]):
    """Command: authenticate a client as at the token endpoint; replies with its client_id."""

    credentials: ClientCredentials


@dataclass(frozen=True, slots=True)
class CheckCaller(Query[str]):
    """Query: the same for credentials that spend nothing (a client secret), read without
    the shard's write lock; replies with its client_id."""

    credentials: ClientCredentials


def caller_check(credentials: ClientCredentials) -> AuthenticateCaller | CheckCaller:
    """The message that authenticates a caller: a write only when it spends something."""
    return AuthenticateCaller(credentials) if spends(credentials) else CheckCaller(credentials)


@dataclass(frozen=True, slots=True)
class RevokeToken(Command[None]):
    """Command: RFC 7009 §2.1, sent to the authenticating client's own shard. `access` is the
    token read as a verified JWT access token, None when it is not one."""

    credentials: ClientCredentials
    token: str
    access: AccessTokenClaims | None


@dataclass(frozen=True, slots=True)
class IntrospectToken(Query[Introspection]):
    """Query: RFC 7662 §2.1 for an authenticated `caller_id`, sent to the token's shard;
    replies Introspection."""

    caller_id: str
    token: str
    access: AccessTokenClaims | None


def read_access_token(
    keyring: Keyring, token: str, *, issuer: str, now: float
) -> AccessTokenClaims | None:
    """The claims of an unexpired JWT access token this issuer signed: the signature first,
    with the key its kid names and that key's algorithm only (RFC 8725 §3.1), then the RFC
    9068 claims. None for anything else (alg none, unknown key, tampered, expired, foreign)."""
    if not looks_like_jwt(token):
        return None
    try:
        header, claims = keyring.verify(token)
        return check_issued_access_token(header, claims, issuer=issuer, now=now)
    except (TokenInvalid, InvalidToken):
        return None


@command(AuthenticateCaller)
def authenticate_caller(shard: ClientShard, message: AuthenticateCaller) -> str:
    return authenticate(shard, message.credentials).client.client_id


@query(CheckCaller)
def check_caller(shard: ClientShard, message: CheckCaller) -> str:
    return check_credentials(shard, message.credentials).client_id


# --- RFC 7009 ------------------------------------------------------------------------------


@command(RevokeToken)
def revoke_token(shard: ClientShard, message: RevokeToken) -> None:
    """RFC 7009 §2.1: only the client's own tokens; see oauth/rfc7009_revocation.py for
    what each kind of token takes with it. Anything else changes nothing (§2.2)."""
    client = authenticate(shard, message.credentials).client
    now = shard.now()
    access = message.access
    if access is not None:
        # An access token ends alone: its refresh token stays alive (RFC 7009 §2.1 MAY).
        if access.client_id == client.client_id:
            shard.store.revoke_access_token(access.jti, now)
            shard.audit("token_revoked", client_id=client.client_id, jti=access.jti)
        return
    if parse_handle(message.token, "rt") != shard.shard_key:
        return  # not a refresh token of this client's shard: foreign or garbage
    row = shard.store.load_refresh(message.token)
    if row is not None:
        # A rotated token still names its grant; presenting it to /token after the grace
        # window would end the grant as well (OAuth 2.1 §4.3.1).
        shard.store.revoke_family(row.family_id, now)
        shard.audit("token_revoked", client_id=client.client_id, family=row.family_id)


# --- RFC 7662 ------------------------------------------------------------------------------


@query(IntrospectToken)
def introspect_token(shard: ClientShard, message: IntrospectToken) -> Introspection:
    client = shard.client()  # a deleted client's tokens are all inactive (InvalidClient)
    now = shard.now()
    settings = shard.env.settings
    at = message.access
    if at is not None:
        if (
            at.client_id != client.client_id
            or not is_access_token_live(shard.store, at.jti, now)
            or not may_introspect(message.caller_id, at.client_id, at.aud, settings.resources)
        ):
            return INACTIVE
        scope = " ".join(at.scope)
        return Introspection(
            True, scope, at.client_id, at.sub, at.aud, settings.issuer, at.exp, at.iat, "Bearer"
        )
    # A refresh token is for the authorization server and its own client only (RFC 7662
    # §4: resource servers have no business with it).
    if message.caller_id != client.client_id or parse_handle(message.token, "rt") != (
        shard.shard_key
    ):
        return INACTIVE
    idle_s = settings.tokens.refresh_token_idle_s
    state = load_refresh_state(shard.store, message.token, idle_s, now)
    if state is None or state.liveness is not Liveness.LIVE:
        return INACTIVE
    family = state.family
    granted = tuple(family.scope.split())
    audience = token_target((), family.resources, settings.issuer, granted).audience
    return Introspection(
        True,
        family.scope,
        client.client_id,
        family.user_id,
        audience,
        settings.issuer,
        state.expires_at,
        state.row.issued_at,
        "refresh_token",
    )
