"""Dynamic client registration: POST /register (RFC 7591) and the client configuration
endpoint GET/PUT/DELETE /register/<client_id> (RFC 7592).

Registration is open (MCP clients expect it) unless initial access tokens are configured
(RFC 7591 §3, `[registration]`); it is limited per client IP (`limits.register_per_ip`,
RATE-1), and the Directory refuses clients past `registration.max_clients`."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from quart import Response, request

from oauthd.actors import RegisterClient
from oauthd.actors.client_registration import (
    DeleteRegistration,
    GetRegistration,
    UpdateRegistration,
)
from oauthd.actors.directory import UnindexClient
from oauthd.actors.enrol import enrol
from oauthd.errors import OAuthError
from oauthd.oauth.rfc6749_client_credentials import check_self_registered_grants
from oauthd.oauth.rfc6750_bearer import InvalidToken, bearer_challenge, read_bearer
from oauthd.oauth.rfc7591_registration import (
    SERVER_MANAGED,
    ClientMetadata,
    InvalidClientMetadata,
    check_initial_access_token,
    parse_metadata,
)
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.oauth.scopes import known_scopes
from oauthd.storage import ClientRecord
from oauthd.web.asks import ask_client, ask_directory
from oauthd.web.responses import NO_STORE, json_bytes, json_response
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState
from oauthd.web.throttle import limiter, request_ip, throttle

__all__ = ["register"]

PATH = "/register"
JSON = "application/json"


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    return Contribution(members={"registration_endpoint": state.url(PATH)})


def views(app: RouteTable, state: AppState) -> None:
    scopes = known_scopes(state.settings)
    per_ip = limiter(state, state.settings.limits.register_per_ip)

    def allowed(scope: tuple[str, ...]) -> bool:
        return all(s in scopes for s in scope)

    id_token_algorithms = state.settings.keys.signing_algorithms

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
        await request.get_data(as_text=False)  # read in full before any refusal (form_params)
        throttle(per_ip, request_ip(state), what="too many registrations from this address")
        if state.initial_access_tokens:
            presented = read_bearer(request.headers.get("Authorization"), None, None)
            try:
                check_initial_access_token(presented, state.initial_access_tokens)
            except InvalidToken as exc:
                # RFC 6750 §3.1: no error attribute in the challenge when nothing was sent.
                return unauthorized(exc, challenge=presented is not None)
        meta = checked(await read_body())
        new = enrol(meta, int(state.clock.now()), source="dynamic")
        await ask_directory(state, RegisterClient(new.record))
        extra: dict[str, Any] = {"registration_access_token": new.registration_access_token}
        if new.client_secret is not None:
            extra["client_secret"] = new.client_secret
        return render(new.record, 201, extra)

    def rat() -> str:
        token = read_bearer(request.headers.get("Authorization"), None, None)
        if token is None:
            raise InvalidToken("a registration access token is required")
        return token

    async def configuration(client_id: str) -> Response:
        try:
            token = rat()
            if request.method == "GET":
                client = await ask_client(state, client_id, GetRegistration(token))
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
        return checked(body)

    def checked(body: Any) -> ClientMetadata:
        meta = parse_metadata(body, allowed, id_token_algorithms)
        machines = state.settings.registration.allow_client_credentials
        check_self_registered_grants(meta.grant_types, allowed=machines)
        return meta

    def unauthorized(error: OAuthError, *, challenge: bool = True) -> Response:
        challenge_text = bearer_challenge("oauthd", state.url(PATH), error if challenge else None)
        body = json_bytes({"error": error.code, "error_description": error.description})
        return json_response(body, 401, {**NO_STORE, "WWW-Authenticate": challenge_text})

    app.add_url_rule(state.path(PATH), "register", create, methods=["POST"])
    app.add_url_rule(
        state.path(PATH) + "/<client_id>",
        "client_configuration",
        configuration,
        methods=["GET", "PUT", "DELETE"],
    )
