"""A Quart route decorator. Quart is imported when a decorated route runs, so the rest of
`oauthd.resource` works without it."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ParamSpec, cast

from oauthd.oauth.rfc9068_access_token import AccessTokenClaims
from oauthd.resource._guard import SCOPE_KEY, Reply, ResourceGuard

__all__ = ["require_token"]

P = ParamSpec("P")


def require_token(
    guard: ResourceGuard, *scopes: str
) -> Callable[[Callable[P, Awaitable[Any]]], Callable[P, Awaitable[Any]]]:
    """Guard one Quart route, needing `scopes` on top of those `config.scopes` gives its path.

    Behind `BearerMiddleware` the token is already validated and only the scopes are checked;
    otherwise the token is validated here. The claims are in `request.scope["oauthd.token"]`."""

    def decorate(view: Callable[P, Awaitable[Any]]) -> Callable[P, Awaitable[Any]]:
        @functools.wraps(view)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            from quart import Response, request  # lazily: see the module docstring

            extras = cast("MutableMapping[str, Any]", request.scope)  # a TypedDict in Quart
            claims = extras.get(SCOPE_KEY)
            if not isinstance(claims, AccessTokenClaims):
                result = await guard.check(
                    request.headers.get("Authorization"),
                    request.args.get("access_token"),
                    request.path,
                    scopes,
                )
            else:
                result = guard.require(claims, request.path, scopes)
            if isinstance(result, Reply):
                return Response(result.body, status=result.status, headers=dict(result.headers))
            extras[SCOPE_KEY] = result
            return await view(*args, **kwargs)

        return guarded

    return decorate
