"""The hot JSON endpoints as bare ASGI, in front of Quart (issue 9).

Quart-Trio spends some 300 us of framework work on every request before a route runs: a
request context, werkzeug structures, hooks, response finalisation. The machine-facing JSON
endpoints (/token, /introspect, /userinfo, the JWKS) need none of it: no session, cookie,
template or redirect. Their routes are written against `ApiRequest` and `ApiResponse` and
registered here; `FastPath` answers them and hands every other request to Quart.

The HTTP rules these endpoints obey are the app's, kept here once for them: every failure
through `errors.public_error` (the app's funnel: private details and tracebacks to the log,
anything unexpected as `server_error`) and out as JSON through `error_body` (the same bytes
`responses.error_response` sends), CORS on every response of the
JSON API, 413 over `limits.max_body_bytes`, 405 with `Allow`, HEAD for GET, and an OPTIONS
preflight answer.

A path can also be shared with a Quart route (`FastRoutes.share`): the fast handler answers
the common case of a body-less request and passes anything else on (returns None) before it
has changed anything, and the Quart route then answers the request from the start, with its
pages, forms and error pages. Every other method, and any request with a body, goes to Quart
unread. /authorize is one: its redirect with a code for a live session (issue 17).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from oauthd.errors import MethodNotAllowed, OAuthError, RequestTooLarge
from oauthd.oauth.params import Params
from oauthd.web.access_log import ROUTE, ASGIApp, Receive, Scope, Send
from oauthd.web.errors import public_error
from oauthd.web.forms import parse_form, parse_query
from oauthd.web.responses import JSON, asgi_headers, error_body, error_headers

__all__ = ["ApiRequest", "ApiResponse", "FastPath", "FastRoutes", "document_handler"]


class ApiRequest:
    """What a JSON endpoint reads: method, path, query, headers (lower-case names, the first
    value of each), the raw body and its media type, the peer's address and every
    X-Forwarded-For value (for the client IP, web/throttle.py). Each is read from the ASGI
    scope when first asked for: a document's handler asks for none."""

    __slots__ = ("_forwarded", "_headers", "_query", "_scope", "body", "method", "path")

    def __init__(self, scope: Scope, body: bytes) -> None:
        self._scope = scope
        self._headers: dict[str, str] | None = None
        self._query: Params | None = None
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.body = body
        self._forwarded = ""

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers if self._headers is not None else self._read_headers()

    @property
    def forwarded_for(self) -> str:
        if self._headers is None:
            self._read_headers()
        return self._forwarded

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        forwarded: list[str] = []
        for name, value in self._scope["headers"]:
            key = name.decode("latin-1").lower()
            headers.setdefault(key, value.decode("latin-1"))
            if key == "x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
        self._headers, self._forwarded = headers, ",".join(forwarded)
        return headers

    @property
    def query(self) -> Params:
        if self._query is None:
            self._query = parse_query(self._scope.get("query_string", b""))
        return self._query

    @property
    def mimetype(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    @property
    def peer(self) -> str | None:
        client = self._scope.get("client")
        return str(client[0]) if client else None

    def form(self) -> Params:
        """The body as an OAuth form (OAuth 2.1 App. B): form-encoded UTF-8 only."""
        return parse_form(self.mimetype, self.body)


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON


Handler = Callable[[ApiRequest], Awaitable[ApiResponse]]
# A shared path's handler: None passes the request on to the Quart route, unanswered.
SharedHandler = Callable[[ApiRequest], Awaitable[ApiResponse | None]]


@dataclass(slots=True)
class _Path:
    handlers: dict[str, SharedHandler]
    cors_headers: tuple[tuple[bytes, bytes], ...]  # sent with every response of the path
    allowed: list[str] = field(default_factory=list)  # for Allow on OPTIONS and 405
    shared: bool = False  # a Quart route answers what the handlers do not


def document_handler(render: Callable[[], bytes], headers: Mapping[str, str]) -> Handler:
    """A GET handler for a document whose bytes never change for its route table: rendered
    on the first request for it, then served as they are. A cold tenant's first request is
    usually not for its metadata documents, so its activation does not pay for them."""
    body: list[bytes] = []

    async def serve(_request: ApiRequest) -> ApiResponse:
        if not body:
            body.append(render())
        return ApiResponse(200, body[0], headers)

    return serve


@lru_cache(maxsize=16)
def _encoded(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[bytes, bytes], ...]:
    """`asgi_headers` of a route's CORS headers, once: every tenant's routes pass the same
    few (web/responses.py), nine paths on each cold tenant's activation."""
    return tuple(asgi_headers(dict(headers)))


@dataclass(slots=True)
class FastRoutes:
    """The table of fast endpoints (`RouteTable.fast`); routes add themselves in `register`."""

    paths: dict[str, _Path] = field(default_factory=dict)

    def add(
        self, path: str, methods: tuple[str, ...], handler: Handler, cors: Mapping[str, str]
    ) -> None:
        entry = self.paths.setdefault(path, _Path({}, _encoded(tuple(cors.items()))))
        for method in methods:
            entry.handlers[method] = handler
        head = ("HEAD",) if "GET" in entry.handlers else ()
        entry.allowed = sorted({*entry.handlers, "OPTIONS", *head})

    def share(self, path: str, method: str, handler: SharedHandler) -> None:
        """`handler` answers body-less `method` requests at `path` that it can, and returns
        None for the others; those, and every other request at `path`, go to the Quart route
        there (which keeps its own CORS, OPTIONS and error pages)."""
        entry = self.paths.setdefault(path, _Path({}, (), shared=True))
        entry.handlers[method] = handler


class FastPath:
    """ASGI middleware: the fast endpoints here, everything else to `app` (Quart)."""

    def __init__(self, app: ASGIApp, routes: FastRoutes, max_body_bytes: int) -> None:
        self.app = app
        self.paths = routes.paths
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self.paths.get(scope["path"]) if scope["type"] == "http" else None
        if entry is None or (entry.shared and not _takes(entry, scope)):
            await self.app(scope, receive, send)
            return
        scope[ROUTE] = scope["path"]  # the metrics label: a fast path is its own template
        try:
            response = await self._respond(entry, scope, receive)
        except ClientGone:
            return  # nothing to answer, and a partial body is never acted on
        if response is None:  # passed on by a shared path's handler, its body unread
            await self.app(scope, receive, send)
            return
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
        ]
        headers += asgi_headers(response.headers)
        headers += entry.cors_headers
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})

    async def _respond(self, entry: _Path, scope: Scope, receive: Receive) -> ApiResponse | None:
        method = scope["method"]
        handler = entry.handlers.get("GET" if method == "HEAD" else method)
        if not entry.shared:  # a shared path's handler sees only what `_takes` lets through
            if method == "OPTIONS":  # a CORS preflight (CORS-1): the path's CORS headers
                return ApiResponse(200, b"", {"Allow": ", ".join(entry.allowed)}, "text/plain")
            if _declared_length(scope) > self.max_body:
                return _error(RequestTooLarge("request body too large"))  # ERR-3, unread
            if handler is None:
                return _error(MethodNotAllowed(entry.allowed))
        assert handler is not None
        try:
            body = b"" if entry.shared else await self._body(receive)
            return await handler(ApiRequest(scope, body))
        except ClientGone:
            raise
        except Exception as exc:  # the funnel the Quart routes share (web/errors.py)
            return _error(public_error(exc, method, scope["path"]))

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Any = await receive()
            if message["type"] != "http.request":
                raise ClientGone  # the client went away, or the engine ended its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise RequestTooLarge("request body too large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


class ClientGone(Exception):
    """`http.disconnect` before the body ended: the request is abandoned, unanswered."""


def _error(exc: OAuthError) -> ApiResponse:
    return ApiResponse(exc.status, error_body(exc), error_headers(exc))


def _takes(entry: _Path, scope: Scope) -> bool:
    """Whether a shared path's handler sees the request: a method it takes, and no body
    (which Quart, answering instead, could not read once the fast path had)."""
    method = scope["method"]
    if ("GET" if method == "HEAD" else method) not in entry.handlers:
        return False
    return not any(
        (name == b"content-length" and value != b"0") or name == b"transfer-encoding"
        for name, value in scope["headers"]
    )


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0
