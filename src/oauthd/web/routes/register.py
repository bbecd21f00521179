"""Dynamic client registration: POST /register (RFC 7591) and the client configuration
endpoint GET/PUT/DELETE /register/<client_id> (RFC 7592)."""

from __future__ import annotations

import json
from typing import Any

from quart import Quart, Response, request

from oauthd.actors import RegisterClient
from oauthd.actors.client_registration import (
    DeleteRegistration,
    GetRegistration,
    UpdateRegistration,
)
from oauthd.actors.directory import UnindexClient
from oauthd.errors import OAuthError
from oauthd.oauth.handles import issue_client_id, issue_handle, issue_secret
from oauthd.oauth.rfc6750_bearer import InvalidToken, bearer_challenge, read_bearer
from oauthd.oauth.rfc7591_registration import (
    SERVER_MANAGED,
    ClientMetadata,
    InvalidClientMetadata,
    parse_metadata,
)
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.oauth.scopes import OIDC_SCOPES
from oauthd.storage import ClientRecord, hash_secret, shard_key_for
from oauthd.web.asks import ask_client, ask_directory
from oauthd.web.responses import NO_STORE, json_bytes, json_errors, json_response
from oauthd.web.state import AppState

__all__ = ["register"]

PATH = "/register"
JSON = "application/json"


def register(app: Quart, state: AppState) -> Contribution:
    known_scopes = set(OIDC_SCOPES)
    for resource in state.settings.resources:
        known_scopes.update(resource.scopes)

    def allowed(scope: tuple[str, ...]) -> bool:
        return all(s in known_scopes for s in scope)

    async def read_body() -> Any:
        # Read before refusing: see form_params on answering before the body is in.
        raw = await request.get_data(as_text=False)
        if request.mimetype != JSON:
            raise InvalidClientMetadata("the body must be application/json")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: nesting deeper than the parser's stack (ERR-2), not a fault.
            raise InvalidClientMetadata("the body is not valid JSON") from None

    def render(client: ClientRecord, status: int, extra: dict[str, Any]) -> Response:
        body: dict[str, Any] = {
            "client_id": client.client_id,
            "client_id_issued_at": client.created_at,
            **json.loads(client.metadata),
            "registration_client_uri": state.url(f"{PATH}/{client.client_id}"),
            **extra,
        }
        if client.secret_hash:
            body["client_secret_expires_at"] = 0
        return json_response(json_bytes(body), status, NO_STORE)

    async def create() -> Response:
        meta = parse_metadata(await read_body(), allowed)
        client_id = issue_client_id()
        token = issue_handle("rat", shard_key_for(client_id))
        public = meta.token_endpoint_auth_method == "none"  # noqa: S105 (a method name)
        secret = None if public else issue_secret()
        record = record_for(client_id, meta, secret, token, int(state.clock.now()))
        await ask_directory(state, RegisterClient(record))
        extra: dict[str, Any] = {"registration_access_token": token}
        if secret is not None:
            extra["client_secret"] = secret
        return render(record, 201, extra)

    def rat() -> str:
        token = read_bearer(request.headers.get("Authorization"), None, None)
        if token is None:
            raise InvalidToken("a registration access token is required")
        return token

    async def configuration(client_id: str) -> Response:
        try:
            token = rat()
            if request.method == "GET":
                client: ClientRecord = await ask_client(state, client_id, GetRegistration(token))
                return render(client, 200, {})
            if request.method == "DELETE":
                await ask_client(state, client_id, DeleteRegistration(token))
                await ask_directory(state, UnindexClient(client_id))
                return Response("", status=204, headers=NO_STORE)
            # RFC 7592 §2.2: authenticate first, so a bad token never learns about the body.
            await ask_client(state, client_id, GetRegistration(token))
            body = await read_body()
            meta = update_metadata(client_id, body)
            secret = body.get("client_secret")
            if secret is not None and not isinstance(secret, str):
                raise InvalidClientMetadata("client_secret must be a string")
            update = UpdateRegistration(token, meta, secret)
            client = await ask_client(state, client_id, update)
            return render(client, 200, {})
        except InvalidToken as exc:
            return unauthorized(exc)
        except OAuthError as exc:
            if exc.code == "invalid_client":
                return unauthorized(InvalidToken("the registration access token is invalid"))
            raise

    def update_metadata(client_id: str, body: Any) -> ClientMetadata:
        # RFC 7592 §2.2: the body carries the same client_id and none of the server's fields.
        if not isinstance(body, dict) or body.get("client_id") != client_id:
            raise InvalidClientMetadata("client_id must match the registration")
        if any(name in body for name in SERVER_MANAGED):
            raise InvalidClientMetadata("server-managed fields cannot be set")
        return parse_metadata(body, allowed)

    def unauthorized(error: OAuthError) -> Response:
        challenge = bearer_challenge("oauthd", state.url(PATH), error)
        body = json_bytes({"error": error.code, "error_description": error.description})
        return json_response(body, 401, {**NO_STORE, "WWW-Authenticate": challenge})

    app.add_url_rule(state.path(PATH), "register", json_errors(create), methods=["POST"])
    app.add_url_rule(
        state.path(PATH) + "/<client_id>",
        "client_configuration",
        json_errors(configuration),
        methods=["GET", "PUT", "DELETE"],
    )
    return Contribution(members={"registration_endpoint": state.url(PATH)})


def record_for(
    client_id: str, meta: ClientMetadata, secret: str | None, token: str, now: int
) -> ClientRecord:
    return ClientRecord(
        client_id=client_id,
        client_name=meta.client_name,
        redirect_uris=meta.redirect_uris,
        grant_types=meta.grant_types,
        response_types=meta.response_types,
        token_endpoint_auth_method=meta.token_endpoint_auth_method,
        scope=meta.scope,
        first_party=False,
        secret_hash=hash_secret(secret) if secret else "",
        source="dynamic",
        created_at=now,
        metadata=json.dumps(meta.public_members()),
        registration_token_hash=hash_secret(token),
    )
