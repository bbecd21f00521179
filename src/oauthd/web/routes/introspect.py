"""POST /introspect (RFC 7662): authenticate the caller at its own shard (a read for a client
secret, a write only to spend an RFC 7523 assertion), then ask the token's shard, which decides
whether this caller may see it. A JWT is routed by its verified `client_id`; a refresh token to
the caller's own shard, the only one that may introspect it (the shard checks that the handle's
shard key is its own). Anything that cannot be routed is inactive without asking an actor, so
garbage never spawns one.

Each calling client may introspect `limits.introspect_per_client` times per window (RFC 7662 §4:
token scanning), and failed authentications per client IP and client_id are limited as at
/token."""

from __future__ import annotations

from oauthd.actors import client_address
from oauthd.actors.client_lifecycle import IntrospectToken, caller_check, read_access_token
from oauthd.errors import InvalidClient, NotFound
from oauthd.oauth.handles import parse_handle
from oauthd.oauth.rfc6749_client_auth import read_credentials
from oauthd.oauth.rfc7009_revocation import parse_token_request
from oauthd.oauth.rfc7662_introspection import (
    INACTIVE,
    Introspection,
    caller_auth_methods,
    check_caller_authenticates,
)
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.oauth.rfc9068_access_token import AccessTokenClaims
from oauthd.runtime import Address
from oauthd.web.asks import ask, ask_as_client, keyring_for
from oauthd.web.fast import ApiRequest, ApiResponse
from oauthd.web.responses import API_CORS, NO_STORE, json_bytes
from oauthd.web.routes.token import AUTH_METHODS
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState
from oauthd.web.throttle import ClientAuthFailures, ip_key_of, limiter, throttle

__all__ = ["register"]

PATH = "/introspect"


def register(app: RouteTable, state: AppState) -> Contribution:
    issuer = state.settings.issuer
    per_client = limiter(state, state.settings.limits.introspect_per_client)
    auth_failures = ClientAuthFailures.shared(app, state)

    def route(caller_id: str, token: str, access: AccessTokenClaims | None) -> Address | None:
        if access is not None:
            return client_address(state.tenant, access.client_id)
        if parse_handle(token, "rt") is None:
            return None
        # Only its own client may introspect a refresh token, so it goes to the caller's shard,
        # which answers inactive unless the handle names that shard.
        return client_address(state.tenant, caller_id)

    async def look_up(caller_id: str, token: str) -> Introspection:
        now = state.clock.now()
        access = read_access_token(await keyring_for(state, token), token, issuer=issuer, now=now)
        address = route(caller_id, token, access)
        if address is None:
            return INACTIVE
        try:
            reply = await ask(state, address, IntrospectToken(caller_id, token, access))
        except (NotFound, InvalidClient):
            return INACTIVE  # the token's client no longer exists
        return reply

    async def introspect(request: ApiRequest) -> ApiResponse:
        params = request.form()
        parsed = parse_token_request(params, [name for name, _ in request.query.pairs])
        credentials = read_credentials(request.headers.get("authorization"), params)
        check_caller_authenticates(credentials)
        caller_id: str = await auth_failures.attempt(
            ip_key_of(state, request.peer, request.forwarded_for),
            credentials.client_id,
            lambda: ask_as_client(state, credentials, caller_check),
        )
        # Counted once authenticated: naming a client must not spend its budget (RATE-6).
        throttle(per_client, f"client:{caller_id}", what="too many introspections")
        reply = await look_up(caller_id, parsed.token)
        return ApiResponse(200, json_bytes(reply.to_json()), NO_STORE)

    app.fast.add(state.path(PATH), ("POST",), introspect, API_CORS)
    return Contribution(
        members={
            "introspection_endpoint": state.url(PATH),
            # RFC 8414 §2: callers authenticate as clients do at the token endpoint, except
            # that a public client cannot (RFC 7662 §2.1).
            "introspection_endpoint_auth_methods_supported": caller_auth_methods(AUTH_METHODS),
        }
    )
