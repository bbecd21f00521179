"""The one ASGI layer in front of an app's routes (a tenant's, web/app.py; the admin API,
web/admin.py): every request to the app crosses it, and everything that every request pays is
paid here, in one call and one wrapper of `send` (issue 17: it was three layers, each wrapping
`send`).

It applies rules that live in their own modules:
- the request line and header limits, 414 and 431 (`request_size.oversized`, ERR-3), and
  `Connection: close` on a response sent before the request's body was read
  (`request_size.UNREAD`);
- the headers every response carries (`security_headers.with_every_response`);
- the access-log line and the request metrics, from one timing of the request
  (`access_log.RequestLog`).
"""

from __future__ import annotations

from oauthd.web.access_log import ASGIApp, Message, Receive, RequestLog, Scope, Send
from oauthd.web.request_size import UNREAD, has_body, oversized, refuse
from oauthd.web.security_headers import with_every_response

__all__ = ["Front"]


class Front:
    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = self.log.begin(scope)
        status = 0
        unread = has_body(scope)

        async def read_on() -> Message:
            nonlocal unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread = False
            return message

        async def send_on(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = with_every_response(message.get("headers", ()))
                if unread:
                    headers.append(UNREAD)
                message = {**message, "headers": headers}
            await send(message)

        try:
            refusal = oversized(scope)
            if refusal is not None:
                await refuse(send_on, *refusal)
            else:
                await self.app(scope, read_on if unread else receive, send_on)
        finally:
            self.log.done(scope, status, start)
