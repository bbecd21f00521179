"""GET/POST /userinfo (OIDC Core §5.3) behind bearer authentication (RFC 6750), with the
protected-resource metadata that its challenges point to (RFC 9728)."""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qsl, urlsplit

from oauthd.actors.grants import CheckAccessToken
from oauthd.actors.people import GetUser
from oauthd.errors import OAuthError
from oauthd.keys import TokenInvalid
from oauthd.oauth.oidc_id_token import user_claims
from oauthd.oauth.rfc6750_bearer import (
    InsufficientScope,
    InvalidToken,
    bearer_challenge,
    read_bearer,
)
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.oauth.rfc8707_resources import USERINFO_PATH, userinfo_audience, userinfo_resources
from oauthd.oauth.rfc9068_access_token import AccessTokenClaims, check_access_token
from oauthd.web.asks import ask_client, ask_directory, keyring_for
from oauthd.web.fast import ApiRequest, ApiResponse, document_handler
from oauthd.web.forms import FORM
from oauthd.web.responses import API_CORS, CORS, NO_STORE, error_body, json_bytes
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState

__all__ = ["register"]

PATH = USERINFO_PATH  # the userinfo URL is also a resource identifier (rfc8707_resources)
PRM_PATH = "/.well-known/oauth-protected-resource"


def register(app: RouteTable, state: AppState) -> Contribution:
    issuer = state.settings.issuer
    own_audience = userinfo_audience(issuer)
    # RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
    parts = urlsplit(issuer)
    metadata_url = f"{parts.scheme}://{parts.netloc}{PRM_PATH}{state.settings.issuer_path}"

    def challenge(error: OAuthError | None) -> ApiResponse:
        status = error.status if error is not None else 401
        body = error_body(error) if error else b"{}"
        headers = {
            **NO_STORE,
            "WWW-Authenticate": bearer_challenge(issuer, metadata_url, error),
        }
        return ApiResponse(status, body, headers)

    async def verified(token: str) -> AccessTokenClaims:
        try:
            header, claims = (await keyring_for(state, token)).verify(token)
        except TokenInvalid:
            raise InvalidToken("the access token is invalid") from None
        # The userinfo endpoint is the issuer's own resource: tokens for other audiences are
        # refused (USERINFO-6, RFC 9700 §2.3); which tokens name it is token_target's rule.
        at = check_access_token(
            header, claims, issuer=issuer, audience=own_audience, now=state.clock.now()
        )
        try:
            active = await ask_client(state, at.client_id, CheckAccessToken(at.jti))
        except OAuthError:
            active = False
        if not active:
            raise InvalidToken("the access token is no longer active")
        return at

    def body_token(request: ApiRequest) -> str | None:
        """The form body's access_token, read from the raw bytes: the form parser drops a
        whole body that is not UTF-8, which must not hide a second token (RFC 6750 §2)."""
        if request.method != "POST" or request.mimetype != FORM:
            return None
        # latin-1 maps every byte to one character, so nothing in the body can fail to decode.
        raw = request.body.decode("latin-1")
        pairs = parse_qsl(raw, keep_blank_values=True, encoding="latin-1")
        return next((value for name, value in pairs if name == "access_token"), None)

    async def userinfo(request: ApiRequest) -> ApiResponse:
        try:
            query_tokens = request.query.get_all("access_token")
            token = read_bearer(
                request.headers.get("authorization"),
                body_token(request),
                query_tokens[0] if query_tokens else None,
            )
        except OAuthError as exc:
            return challenge(exc)
        if token is None:
            return challenge(None)
        try:
            at = await verified(token)
            if "openid" not in at.scope:
                raise InsufficientScope("openid")
        except OAuthError as exc:
            return challenge(exc)
        user = await ask_directory(state, GetUser(at.sub))
        if user is None:
            return challenge(InvalidToken("the user no longer exists"))
        claims = {
            "sub": user.user_id,
            **user_claims(at.scope, user.email, user.name, user.email_verified),
        }
        return ApiResponse(200, json_bytes(claims), NO_STORE)

    app.fast.add(state.path(PATH), ("GET", "POST"), userinfo, API_CORS)
    # RFC 9728 §3.1, §3.3: a document for each resource identifier, at the well-known URL
    # derived from it, naming it exactly: the issuer (the audience of /userinfo tokens) and
    # the userinfo endpoint's own URL, which clients derive from the URL they were refused at.
    # Both are accepted as `resource` with openid (RFC 9728 §3.3): the same rule, rfc8707_resources.
    for resource in userinfo_resources(issuer):
        add_protected_resource(app, state, resource)
    return Contribution(members={"userinfo_endpoint": state.url(PATH)})


def add_protected_resource(app: RouteTable, state: AppState, resource: str) -> None:
    document = {
        "resource": resource,
        "authorization_servers": [state.settings.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["openid", "profile", "email"],
    }
    protected_resource = document_handler(
        partial(json_bytes, document), {"Cache-Control": "public, max-age=300"}
    )
    path = PRM_PATH + urlsplit(resource).path  # RFC 9728 §3.1: inserted before the path
    app.fast.add(path, ("GET",), protected_resource, CORS)
