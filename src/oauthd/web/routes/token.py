"""POST /token (OAuth 2.1 §3.2): parse the form, read the client's credentials, and hand the
grant to the client's actor. `GRANTS` is the grant registry: the metadata advertises exactly
its keys. Requests are limited per client IP, and failed client authentications per client IP
and client_id (`[limits]`, RATE-3, RATE-6).

A client that registered a `jwks_uri` (RFC 7523) is answered `JwksNeeded` by its actor; the
route then has the Fetcher get the key set, outside the shard's transaction, and asks again
with it. The actor alone decides what the keys are needed for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oauthd.actors.client_auth import TOKEN_PATH
from oauthd.actors.client_device import PollDeviceCode
from oauthd.actors.client_tokens import IssueClientToken
from oauthd.actors.grants import RedeemCode, RefreshTokens, TokenResponse
from oauthd.errors import InvalidRequest, UnsupportedGrantType
from oauthd.oauth.params import Params
from oauthd.oauth.rfc6749_client_auth import ClientCredentials, read_credentials
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.oauth.rfc8628_device import DEVICE_GRANT
from oauthd.web.asks import ask_as_client
from oauthd.web.fast import ApiRequest, ApiResponse
from oauthd.web.responses import API_CORS, NO_STORE, json_bytes
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState
from oauthd.web.throttle import ClientAuthFailures, ip_key_of, limiter, throttle

__all__ = ["GRANTS", "register"]

PATH = TOKEN_PATH
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]
# OAuth 2.1 §2.4.1, §3.2: credentials and grant parameters never travel in the URI.
NOT_IN_QUERY = (
    "client_secret",
    "code",
    "code_verifier",
    "refresh_token",
    "client_assertion",
    "device_code",
)
# OAuth 2.1 §3.2: a defined parameter is sent at most once; unknown ones are ignored, and
# resource may repeat (RFC 8707 §2).
SINGLE_VALUED = (
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "code",
    "code_verifier",
    "redirect_uri",
    "refresh_token",
    "scope",
    "device_code",
)


def authorization_code(params: Params, credentials: ClientCredentials) -> RedeemCode:
    return RedeemCode(
        credentials=credentials,
        code=params.get("code"),
        code_verifier=params.get("code_verifier"),
        redirect_uri=params.get("redirect_uri"),
        resources=params.get_all("resource"),
    )


def refresh_token(params: Params, credentials: ClientCredentials) -> RefreshTokens:
    return RefreshTokens(
        credentials=credentials,
        refresh_token=params.get("refresh_token"),
        scope=params.get("scope"),
        resources=params.get_all("resource"),
    )


def client_credentials(params: Params, credentials: ClientCredentials) -> IssueClientToken:
    return IssueClientToken(
        credentials=credentials,
        scope=params.get("scope"),
        resources=params.get_all("resource"),
    )


def device_code(params: Params, credentials: ClientCredentials) -> PollDeviceCode:
    return PollDeviceCode(
        credentials=credentials,
        device_code=params.get("device_code"),
        resources=params.get_all("resource"),
    )


GRANTS: dict[str, Callable[[Params, ClientCredentials], Any]] = {
    "authorization_code": authorization_code,
    "client_credentials": client_credentials,
    "refresh_token": refresh_token,
    DEVICE_GRANT: device_code,  # RFC 8628 §3.4
}


def register(app: RouteTable, state: AppState) -> Contribution:
    per_ip = limiter(state, state.settings.limits.token_per_ip)
    auth_failures = ClientAuthFailures.shared(app, state)

    async def token(request: ApiRequest) -> ApiResponse:
        params = request.form()
        source = ip_key_of(state, request.peer, request.forwarded_for)
        throttle(per_ip, source)
        if any(name in NOT_IN_QUERY for name, _ in request.query.pairs):
            raise InvalidRequest("credentials must not be sent in the URI")
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise InvalidRequest("grant_type is required")
        make = GRANTS.get(grant_type)
        if make is None:
            raise UnsupportedGrantType("unsupported grant_type")
        credentials = read_credentials(request.headers.get("authorization"), params)
        repeated = params.repeated(SINGLE_VALUED)
        if repeated is not None:
            raise InvalidRequest(f"parameter {repeated} is repeated")
        reply: TokenResponse = await auth_failures.attempt(
            source,
            credentials.client_id,
            lambda: ask_as_client(state, credentials, lambda creds: make(params, creds)),
        )
        return ApiResponse(200, json_bytes(reply.to_json()), NO_STORE)

    app.fast.add(state.path(PATH), ("POST",), token, API_CORS)
    return Contribution(
        members={
            "token_endpoint": state.url(PATH),
            "grant_types_supported": sorted(GRANTS),
            # RFC 8414 §2, DISC-7: the signing algorithms private_key_jwt needs are added to
            # every endpoint's methods by build_metadata.
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
        },
        # OIDC Discovery §3: RS256 MUST be listed; a client may register the configured
        # algorithm instead (id_token_signed_response_alg).
        oidc={
            "id_token_signing_alg_values_supported": list(state.settings.keys.signing_algorithms)
        },
    )
