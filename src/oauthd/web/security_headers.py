"""Headers every response carries, whoever answers it: a Quart route, the fast path, an error
handler or the request limits. Added outside the routes, by the layer every request to an app
crosses (web/front.py) and by `SecurityHeaders` around the tenant router's refusals, so no
route can forget them.

`X-Content-Type-Options: nosniff` (Fetch §3.5, HTML-6): a browser never guesses a type other
than the declared one, so a JSON error that reflects input is never run as HTML or script.
"""

from __future__ import annotations

from collections.abc import Iterable

from oauthd.web.access_log import ASGIApp, Message, Receive, Scope, Send

__all__ = ["EVERY_RESPONSE", "SecurityHeaders", "with_every_response"]

EVERY_RESPONSE = ((b"x-content-type-options", b"nosniff"),)
_NAMES = frozenset(name for name, _ in EVERY_RESPONSE)


def with_every_response(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A response's headers with EVERY_RESPONSE's in place of any the app set itself."""
    return [(n, v) for n, v in headers if n.lower() not in _NAMES] + list(EVERY_RESPONSE)


class SecurityHeaders:
    """`with_every_response` as a layer of its own, for the tenant router's own refusals
    (`web/front.py` applies it to the apps: a tenant's, the admin API)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_every_response(message.get("headers", ()))}
            await send(message)

        await self.app(scope, receive, send_with_headers)
