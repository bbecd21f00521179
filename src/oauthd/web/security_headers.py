"""Headers every response carries, whoever answers it: a Quart route, the fast path, an error
handler or the request limits. Added once, at the outermost ASGI layer, so no route can forget
them.

`X-Content-Type-Options: nosniff` (Fetch §3.5, HTML-6): a browser never guesses a type other
than the declared one, so a JSON error that reflects input is never run as HTML or script.
"""

from __future__ import annotations

from oauthd.web.access_log import ASGIApp, Message, Receive, Scope, Send

__all__ = ["EVERY_RESPONSE", "SecurityHeaders"]

EVERY_RESPONSE = ((b"x-content-type-options", b"nosniff"),)
_NAMES = frozenset(name for name, _ in EVERY_RESPONSE)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() not in _NAMES
                ]
                message = {**message, "headers": [*headers, *EVERY_RESPONSE]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
