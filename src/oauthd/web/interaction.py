"""What login, consent and /authorize share: whether consent is needed, and delivering the
outcome to the client's redirect URI."""

from __future__ import annotations

from quart import Response

from oauthd.actors.grants import CodeIssued
from oauthd.actors.people import HasConsent
from oauthd.errors import AccessDenied
from oauthd.oauth.rfc6749_authorize import AuthorizationRequest
from oauthd.storage import ClientRecord
from oauthd.web.asks import ask_directory
from oauthd.web.browser import redirect_to_client
from oauthd.web.state import AppState

__all__ = ["consent_needed", "deliver_code"]


async def consent_needed(
    state: AppState, client: ClientRecord, user_id: str, req: AuthorizationRequest
) -> bool:
    """First-party clients skip consent; others need it once per user, client, scopes and
    resources, and again for anything wider (HTML-5). `prompt=consent` always asks."""
    if "consent" in req.prompt:
        return True
    if client.first_party:
        return False
    allowed: bool = await ask_directory(
        state,
        HasConsent(user_id, client.client_id, req.scope, req.resources, req.redirect_uri),
    )
    return not allowed


def deliver_code(state: AppState, issued: CodeIssued) -> Response:
    if issued.code is None:
        error = AccessDenied("the user denied the request")
        return redirect_to_client(state, issued.redirect_uri, {"state": issued.state}, error)
    return redirect_to_client(
        state, issued.redirect_uri, {"code": issued.code, "state": issued.state}
    )
