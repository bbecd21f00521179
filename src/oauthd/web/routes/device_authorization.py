"""POST /device_authorization (RFC 8628 §3.1, §3.2): the client authenticates exactly as at
/token, its actor records a device code, the directory draws a user code for it, and the
answer tells the device what to show the person."""

from __future__ import annotations

from functools import partial
from urllib.parse import urlencode

from quart import Response, request

from oauthd.actors.client_device import DeviceStarted, StartDeviceAuthorization
from oauthd.actors.directory import IndexUserCode
from oauthd.errors import InvalidRequest
from oauthd.oauth.rfc6749_client_auth import read_credentials
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.oauth.rfc8628_device import display_user_code, parse_device_code
from oauthd.web.asks import ask_as_client, ask_directory
from oauthd.web.browser import form_params
from oauthd.web.responses import NO_STORE, json_bytes, json_response
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState
from oauthd.web.throttle import ClientAuthFailures, request_ip

__all__ = ["register"]

PATH = "/device_authorization"
VERIFICATION_PATH = "/device"
NOT_IN_QUERY = ("client_secret", "client_assertion")
SINGLE_VALUED = (
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
)


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    return Contribution(members={"device_authorization_endpoint": state.url(PATH)})


def views(app: RouteTable, state: AppState) -> None:
    verification_uri = state.url(VERIFICATION_PATH)
    auth_failures = ClientAuthFailures.shared(app, state)

    async def device_authorization() -> Response:
        params = await form_params()
        if any(name in request.args for name in NOT_IN_QUERY):
            raise InvalidRequest("credentials must not be sent in the URI")
        credentials = read_credentials(request.headers.get("Authorization"), params)
        repeated = params.repeated(SINGLE_VALUED)
        if repeated is not None:
            raise InvalidRequest(f"parameter {repeated} is repeated")
        scope, resources = params.get("scope"), params.get_all("resource")
        started: DeviceStarted = await auth_failures.attempt(
            request_ip(state),
            credentials.client_id,
            lambda: ask_as_client(
                state, credentials, lambda creds: StartDeviceAuthorization(creds, scope, resources)
            ),
        )
        shard_key = parse_device_code(started.device_code) or ""
        user_code = await ask_directory(
            state, IndexUserCode(shard_key, started.code_hash, started.expires_at)
        )
        shown = display_user_code(user_code)
        body = {
            "device_code": started.device_code,
            "user_code": shown,
            "verification_uri": verification_uri,
            "verification_uri_complete": verification_uri + "?" + urlencode({"user_code": shown}),
            "expires_in": started.expires_in,
            "interval": started.interval,
        }
        return json_response(json_bytes(body), 200, NO_STORE)

    app.add_url_rule(
        state.path(PATH), "device_authorization", device_authorization, methods=["POST"]
    )
