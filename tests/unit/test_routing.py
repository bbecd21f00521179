"""The app of a tenant (web/app.py, web/routing.py): the fast endpoints answer without the Quart
app, which is built on the first request that needs it, so a tenant that is only asked for
tokens and its metadata never pays for one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from oauthd.server import app_state
from oauthd.settings import Settings
from oauthd.web import create_app
from oauthd.web.routes import register
from oauthd.web.routing import DeferredApp, RouteTable
from tests.conftest import ISSUER, open_test_runtime


def deferred_of(app: Any) -> DeferredApp:
    """The Quart app behind the middleware chain (each layer keeps the next as `app`)."""
    while not isinstance(app, DeferredApp):
        app = app.app
    return app


async def test_the_quart_app_is_built_on_the_first_request_past_the_fast_path(
    make_settings: Callable[..., Settings],
) -> None:
    """Metadata, JWKS and /token (even refused) answer from the fast path; a page builds the app."""
    async with open_test_runtime(make_settings()) as runtime:
        app = create_app(app_state(runtime, runtime.env, ""))
        quart = deferred_of(app)
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            for path in (
                "/.well-known/oauth-authorization-server",
                "/.well-known/openid-configuration",
                "/.well-known/oauth-protected-resource",
                "/.well-known/jwks.json",
            ):
                assert (await http.get(path)).status_code == 200, path
            refused = await http.post("/token", data={"grant_type": "client_credentials"})
            assert refused.status_code == 401  # no client credentials: invalid_client
            assert not quart.built
            page = await http.get("/device")
            assert page.status_code == 200
            assert quart.built


async def test_views_are_made_only_with_the_quart_app(
    make_settings: Callable[..., Settings],
) -> None:
    """An endpoint's Quart views (closures, limiters) are made when the Quart app is built."""
    async with open_test_runtime(make_settings()) as runtime:
        state = app_state(runtime, runtime.env, "")
        table = RouteTable()
        contribution = register.register(table, state)
        assert contribution.members["registration_endpoint"] == f"{ISSUER}/register"
        assert table.rules == []
        assert {rule.endpoint for rule in table.quart_rules()} == {
            "register",
            "client_configuration",
        }
        assert table.views == []
        assert len(table.quart_rules()) == 2  # made once
