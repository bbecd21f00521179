"""GET /device (RFC 8628 §3.3): the person types the user code the device shows, or arrives
with it from `verification_uri_complete`. A valid code becomes a pending request in the
client's shard, exactly as /authorize makes one, and goes through the same login and consent
pages; consent is always asked for a device and shows the user code to compare (§5.4), and a
GET never approves anything (DEVICE-9).

Wrong, expired and used codes get one generic message, never saying which (RATE-4), and
failures are throttled per browser cookie and per client IP (`limits.device_code_failures`),
after which the page answers 429 with Retry-After (RFC 8628 §5.1)."""

from __future__ import annotations

from functools import partial

from quart import Response, request

from oauthd.actors.client_device import GetDeviceRequest
from oauthd.actors.directory import FindUserCode
from oauthd.errors import OAuthError, TooManyRequests
from oauthd.oauth.rfc6749_authorize import AuthorizationRequest
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.oauth.rfc8628_device import normalise_user_code
from oauthd.runtime import Address
from oauthd.web.asks import ask, ask_directory
from oauthd.web.browser import Cookies, current_session
from oauthd.web.errors import shows_error_page
from oauthd.web.interaction import begin_interaction
from oauthd.web.pages import page
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState
from oauthd.web.throttle import limiter, request_ip

__all__ = ["register"]

PATH = "/device"
NOT_VALID = "That code is not valid. Check the code on your device and try again."


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    return Contribution()


def views(app: RouteTable, state: AppState) -> None:
    cookies = Cookies.of(state)
    failures = limiter(state, state.settings.limits.device_code_failures)

    def render(error: str = "", status: int = 200, typed: str = "") -> Response:
        # A wrong code stays in the field, so a typo can be fixed rather than retyped.
        return page("device.html", status, action=state.path(PATH), error=error, typed=typed)

    async def device_request(typed: str) -> tuple[str, AuthorizationRequest] | None:
        """(shard key, the request) for an outstanding, pending user code, else None."""
        user_code = normalise_user_code(typed)
        if user_code is None:
            return None
        found = await ask_directory(state, FindUserCode(user_code))
        if found is None:
            return None
        shard_key, code_hash = found
        try:
            req = await ask(
                state,
                Address(state.tenant, "client", shard_key),
                GetDeviceRequest(code_hash, user_code),
            )
        except OAuthError:  # the client is gone (NotFound, InvalidClient): so is its code
            return None
        return (shard_key, req) if req is not None else None

    @shows_error_page()
    async def device() -> Response:
        typed = request.args.get("user_code")
        if typed is None:
            return render()
        keys: tuple[str, ...] = (request_ip(state),)
        browser_cookie = cookies.read("browser")
        if browser_cookie is not None:
            keys = (*keys, f"browser:{browser_cookie}")
        attempt = await failures.reserve(*keys)  # before the lookup: codes in flight count too
        if isinstance(attempt, int):
            raise TooManyRequests("too many wrong codes; wait and try again", retry_after_s=attempt)
        with attempt:
            found = await device_request(typed)
            if found is not None:
                attempt.succeeded()
        if found is None:
            return render(NOT_VALID, 400, typed[:32])
        shard_key, req = found
        session = await current_session(state, cookies)
        address = Address(state.tenant, "client", shard_key)
        return await begin_interaction(state, cookies, address, req, session is None)

    app.add_url_rule(state.path(PATH), "device", device, methods=["GET"])
