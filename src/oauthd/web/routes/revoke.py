"""POST /revoke (RFC 7009): parse the form, read the client's credentials as /token does, and
hand the token to the authenticating client's own actor: a client can revoke only its own
tokens, so no other shard is ever asked. What revoking does is in oauth/rfc7009_revocation.py."""

from __future__ import annotations

from functools import partial

from quart import Response, request

from oauthd.actors.client_lifecycle import RevokeToken, read_access_token
from oauthd.oauth.rfc6749_client_auth import read_credentials
from oauthd.oauth.rfc7009_revocation import parse_token_request
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.web.asks import ask_as_client, keyring_for
from oauthd.web.browser import form_params
from oauthd.web.responses import NO_STORE
from oauthd.web.routes.token import AUTH_METHODS
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState
from oauthd.web.throttle import ClientAuthFailures, request_ip

__all__ = ["register"]

PATH = "/revoke"


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    return Contribution(
        members={
            "revocation_endpoint": state.url(PATH),
            # RFC 8414 §2: the same client authentication as the token endpoint (RFC 7009 §2.1).
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        }
    )


def views(app: RouteTable, state: AppState) -> None:
    issuer = state.settings.issuer
    auth_failures = ClientAuthFailures.shared(app, state)

    async def revoke() -> Response:
        params = await form_params()
        parsed = parse_token_request(params, request.args.keys())
        credentials = read_credentials(request.headers.get("Authorization"), params)
        keyring = await keyring_for(state, parsed.token)
        access = read_access_token(keyring, parsed.token, issuer=issuer, now=state.clock.now())
        await auth_failures.attempt(
            request_ip(state),
            credentials.client_id,
            lambda: ask_as_client(
                state, credentials, lambda creds: RevokeToken(creds, parsed.token, access)
            ),
        )
        # RFC 7009 §2.2: 200 whether or not there was anything to revoke; the body is empty.
        return Response(b"", status=200, headers=NO_STORE)

    app.add_url_rule(state.path(PATH), "revoke", revoke, methods=["POST"])
