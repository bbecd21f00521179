"""ClientActor handlers for the token endpoint: client authentication, the authorization_code
and refresh_token grants, and minting tokens. Each runs in one transaction: two redemptions
of one code, or two rotations of one refresh token, are ordered by the actor and the write
lock, and only one wins."""

from __future__ import annotations

import json
import secrets
from typing import Any

from oauthd.actors.grants import CheckAccessToken, RedeemCode, RefreshTokens, TokenResponse
from oauthd.actors.shard import CommitThenRaise, command, query
from oauthd.actors.wiring import Env
from oauthd.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    UnauthorizedClient,
)
from oauthd.keys.sealing import open_sealed, seal_for
from oauthd.oauth.handles import issue_handle, parse_handle
from oauthd.oauth.oidc_id_token import id_token_claims
from oauthd.oauth.rfc6749_client_auth import ClientCredentials, check_method
from oauthd.oauth.rfc7636_pkce import check_verifier
from oauthd.oauth.rfc8707_resources import token_audience
from oauthd.oauth.rfc9068_access_token import TYP, access_token_claims
from oauthd.oauth.scopes import format_scope, parse_scope
from oauthd.storage import ClientRecord, Store, check_secret
from oauthd.storage.grants import (
    FamilyRow,
    insert_access_token,
    insert_family,
    insert_refresh,
    is_access_token_active,
    load_code,
    load_family,
    load_refresh,
    mark_code_redeemed,
    mark_refresh_rotated,
    revoke_family,
)

__all__ = ["TokenHandlers"]


class TokenHandlers:
    """Mixed into ClientActor, which provides `store`, `env`, `shard_key` and `client()`."""

    store: Store
    env: Env
    shard_key: str

    def client(self) -> ClientRecord:
        raise NotImplementedError

    def _now(self) -> int:
        return int(self.env.clock.now())

    # --- client authentication (OAuth 2.1 §2.4, §3.2.1) ------------------------------------

    def authenticate(self, credentials: ClientCredentials) -> ClientRecord:
        client = self.client()
        if client.client_id != credentials.client_id:
            raise InvalidClient("unknown client")
        check_method(credentials, client.token_endpoint_auth_method)
        if credentials.method in ("client_secret_basic", "client_secret_post") and not (
            credentials.secret and check_secret(credentials.secret, client.secret_hash)
        ):
            raise InvalidClient("client authentication failed")
        return client

    @staticmethod
    def require_grant(client: ClientRecord, grant_type: str) -> None:
        # OAuth 2.1 §3.2.4 unauthorized_client.
        if grant_type not in client.grant_types:
            raise UnauthorizedClient(f"the client is not registered for {grant_type}")

    # --- authorization_code (OAuth 2.1 §4.1.3) ---------------------------------------------

    @command(RedeemCode)
    def redeem_code(self, message: RedeemCode) -> TokenResponse:
        client = self.authenticate(message.credentials)
        self.require_grant(client, "authorization_code")
        if message.code is None:
            raise InvalidRequest("code is required")
        row = load_code(self.store, message.code) if parse_handle(message.code, "ac") else None
        if row is None:
            raise InvalidGrant("the code is invalid")
        grant = row.grant
        # Checks that do not depend on the code's state come first, so a replay by someone
        # without the verifier revokes nothing (OAuth 2.1 §7.5.2, CODE-3).
        self._check_redirect_uri(grant, message.redirect_uri)
        check_verifier(message.code_verifier, grant["code_challenge"])
        now = self._now()
        if row.redeemed_at is not None:
            # OAuth 2.1 §4.1.3: a second redemption revokes what the first one issued.
            if row.family_id:
                revoke_family(self.store, row.family_id, now)
            raise CommitThenRaise(InvalidGrant("the code was already used"))
        if row.expires_at <= now:
            raise InvalidGrant("the code has expired")
        resources = tuple(grant["resources"])
        audience = token_audience(message.resources, resources, self.env.settings.issuer)
        scope = tuple(grant["scope"])
        family = FamilyRow(
            family_id=secrets.token_urlsafe(16),
            user_id=grant["user_id"],
            scope=format_scope(scope),
            resources=resources,
            auth_time=grant["auth_time"],
            expires_at=now + self.env.settings.tokens.refresh_token_ttl_s,
            revoked_at=None,
        )
        insert_family(self.store, family, now)
        mark_code_redeemed(self.store, message.code, now, family.family_id)
        refresh = None
        if "refresh_token" in client.grant_types:
            refresh = issue_handle("rt", self.shard_key)
            insert_refresh(self.store, refresh, family.family_id, now)
        return self._mint(client, family, scope, audience, refresh, grant.get("nonce"))

    @staticmethod
    def _check_redirect_uri(grant: dict[str, Any], given: str | None) -> None:
        # OAuth 2.1 §10.2: PKCE binds the code to its client, so the token request may omit
        # redirect_uri (OAuth 2.0 clients still send it); a value that differs from the one
        # used at /authorize is never accepted (RFC 6749 §4.1.3).
        if given is not None and given != grant["redirect_uri"]:
            raise InvalidGrant("redirect_uri does not match the authorization request")

    # --- refresh_token (OAuth 2.1 §4.3) ----------------------------------------------------

    @command(RefreshTokens)
    def refresh_tokens(self, message: RefreshTokens) -> TokenResponse:
        client = self.authenticate(message.credentials)
        self.require_grant(client, "refresh_token")
        token = message.refresh_token
        if token is None:
            raise InvalidRequest("refresh_token is required")
        row = load_refresh(self.store, token) if parse_handle(token, "rt") else None
        family = load_family(self.store, row.family_id) if row else None
        now = self._now()
        if row is None or family is None or family.revoked_at is not None:
            raise InvalidGrant("the refresh token is invalid")
        if family.expires_at <= now:
            raise InvalidGrant("the refresh token has expired")
        if (
            row.rotated_at is None
            and now - row.issued_at > self.env.settings.tokens.refresh_token_idle_s
        ):
            # OAuth 2.1 §4.3.3: refresh tokens expire when unused (REFRESH-9).
            raise InvalidGrant("the refresh token has expired")
        if row.rotated_at is not None:
            return self._replay(token, row.rotated_at, row.replay, family.family_id, now)
        granted = tuple(family.scope.split())
        requested = parse_scope(message.scope)
        # OAuth 2.1 §4.3.1: a narrower scope may be asked for, never a wider one.
        if any(s not in granted for s in requested):
            raise InvalidScope("scope exceeds what was granted")
        audience = token_audience(message.resources, family.resources, self.env.settings.issuer)
        successor = issue_handle("rt", self.shard_key)
        insert_refresh(self.store, successor, family.family_id, now)
        response = self._mint(client, family, requested or granted, audience, successor, None)
        sealed = seal_for(token, json.dumps(response.to_json()).encode())
        mark_refresh_rotated(self.store, token, now, sealed)
        return response

    def _replay(
        self, token: str, rotated_at: int, replay: str | None, family_id: str, now: int
    ) -> TokenResponse:
        """A rotated token presented again: inside the grace window it is a retry after a lost
        response and gets the same pair; after it, theft is assumed and the whole family is
        revoked (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2)."""
        if replay is not None and now - rotated_at <= self.env.settings.tokens.refresh_grace_s:
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
        revoke_family(self.store, family_id, now)
        raise CommitThenRaise(InvalidGrant("the refresh token was already used"))

    # --- minting ---------------------------------------------------------------------------

    def _mint(
        self,
        client: ClientRecord,
        family: FamilyRow,
        scope: tuple[str, ...],
        audience: tuple[str, ...],
        refresh_token: str | None,
        nonce: str | None,
    ) -> TokenResponse:
        settings = self.env.settings
        keyring = self.env.keyring.current
        now = self._now()
        ttl = settings.tokens.access_token_ttl_s
        jti = secrets.token_urlsafe(16)
        claims = access_token_claims(
            issuer=settings.issuer,
            subject=family.user_id,
            client_id=client.client_id,
            audience=audience,
            scope=format_scope(scope),
            now=now,
            ttl_s=ttl,
            jti=jti,
            auth_time=family.auth_time,
        )
        access_token = keyring.sign(claims, typ=TYP)
        insert_access_token(self.store, jti, family.family_id, now + ttl)
        id_token = None
        if "openid" in scope:
            id_claims = id_token_claims(
                issuer=settings.issuer,
                subject=family.user_id,
                client_id=client.client_id,
                now=now,
                ttl_s=settings.tokens.id_token_ttl_s,
                auth_time=family.auth_time,
                nonce=nonce,
                access_token=access_token,
                alg=keyring.signing_alg,
                extra={},
            )
            id_token = keyring.sign(id_claims, typ="JWT")
        return TokenResponse(access_token, ttl, format_scope(scope), refresh_token, id_token)

    @query(CheckAccessToken)
    def check_access_token(self, message: CheckAccessToken) -> bool:
        self.client()  # raises for a deleted client, whose tokens are all inactive
        return is_access_token_active(self.store, message.jti, self._now())
