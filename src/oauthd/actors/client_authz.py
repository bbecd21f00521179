"""ClientActor handlers for the browser part of the code flow: pending authorization requests
(stored server-side, bound to one browser, guarded by a CSRF token) and issuing codes."""

from __future__ import annotations

import dataclasses
import hmac

from oauthd.actors.context import ClientShard
from oauthd.actors.grants import (
    ApprovePending,
    CheckPending,
    CodeIssued,
    ConsentPending,
    DenyPending,
    DeviceDecided,
    IssueCode,
    Pending,
    PreparePending,
    StartPending,
)
from oauthd.actors.shard import command, query
from oauthd.errors import Forbidden, InvalidRequest
from oauthd.oauth.handles import issue_handle, issue_secret
from oauthd.oauth.rfc6749_authorize import (
    AuthorizationRequest,
    request_from_json,
    request_to_json,
)
from oauthd.oauth.rfc8252_redirects import matches_registered
from oauthd.storage import hash_secret
from oauthd.storage.grants import (
    PendingRow,
)

__all__ = ["PENDING_TTL_S"]

PENDING_TTL_S = 600  # the person has ten minutes to log in and consent


def _check_still_registered(shard: ClientShard, request: AuthorizationRequest) -> None:
    """The registration may have changed since /authorize validated the request (an RFC
    7592 update or delete, a new metadata document): nothing, neither a code nor an
    error, goes to a redirect URI that is no longer registered (OAuth 2.1 §4.1.2.1)."""
    client = shard.client()  # invalid_client once the client is deleted
    if request.device_code_hash is None and not matches_registered(
        request.redirect_uri, client.redirect_uris
    ):
        raise InvalidRequest("the application's registration changed; start again from the app")


@command(StartPending)
def start_pending(shard: ClientShard, message: StartPending) -> str:
    request_id = issue_handle("ar", shard.shard_key)
    data = request_to_json(message.request)
    shard.store.insert_pending(request_id, message.browser, data, shard.now(), PENDING_TTL_S)
    return request_id


def _pending(shard: ClientShard, request_id: str, browser: str) -> PendingRow:
    row = shard.store.load_pending(request_id)
    # The same answer for unknown, expired and other-browser requests: nothing to probe.
    if (
        row is None
        or row.expires_at <= shard.now()
        or not hmac.compare_digest(row.browser_hash, hash_secret(browser))
    ):
        raise InvalidRequest("this sign-in request has expired; start again from the app")
    _check_still_registered(shard, request_from_json(row.request))
    return row


def _checked(shard: ClientShard, request_id: str, browser: str, csrf: str) -> AuthorizationRequest:
    row = _pending(shard, request_id, browser)
    # OAuth 2.1 §7.10: the form must carry the token minted for this request and browser.
    if not row.csrf_hash or not hmac.compare_digest(row.csrf_hash, hash_secret(csrf)):
        raise Forbidden("the form has expired; reload the page and try again")
    return request_from_json(row.request)


@command(PreparePending)
def prepare_pending(shard: ClientShard, message: PreparePending) -> Pending:
    row = _pending(shard, message.request_id, message.browser)
    csrf = issue_secret()
    shard.store.set_pending_csrf(message.request_id, csrf)
    return Pending(request_from_json(row.request), csrf)


@query(CheckPending)
def check_pending(shard: ClientShard, message: CheckPending) -> AuthorizationRequest:
    return _checked(shard, message.request_id, message.browser, message.csrf)


@command(ApprovePending)
def approve_pending(shard: ClientShard, message: ApprovePending) -> CodeIssued | DeviceDecided:
    request = _checked(shard, message.request_id, message.browser, message.csrf)
    shard.store.consume_pending(message.request_id)  # single use
    if request.device_code_hash is not None:
        return _decide_device(shard, request, message.user_id, message.auth_time)
    return _issue_code(shard, request, message.user_id, message.auth_time)


@command(ConsentPending)
def consent_pending(shard: ClientShard, message: ConsentPending) -> AuthorizationRequest:
    request = _checked(shard, message.request_id, message.browser, message.csrf)
    consented = dataclasses.replace(request, consented=True)
    shard.store.set_pending_request(message.request_id, request_to_json(consented))
    return consented


@command(DenyPending)
def deny_pending(shard: ClientShard, message: DenyPending) -> CodeIssued | DeviceDecided:
    request = _checked(shard, message.request_id, message.browser, message.csrf)
    shard.store.consume_pending(message.request_id)
    if request.device_code_hash is not None:
        return _decide_device(shard, request, None, None)
    return CodeIssued(request.redirect_uri, request.state, None)


def _decide_device(
    shard: ClientShard, request: AuthorizationRequest, user_id: str | None, auth_time: int | None
) -> DeviceDecided:
    """RFC 8628 §3.3: the person's decision is recorded on the device code, which the
    device's next poll answers; a code decided, expired or redeemed meanwhile is not."""
    code_hash = request.device_code_hash or ""
    row = shard.store.load_device_code(code_hash)
    if row is None or row.status != "pending" or row.expires_at <= shard.now():
        raise InvalidRequest("this code has expired; start again on your device")
    approved = user_id is not None
    status = "approved" if approved else "denied"
    shard.store.decide_device_code(code_hash, status, user_id, auth_time)
    return DeviceDecided(approved, request.user_code or "")


@command(IssueCode)
def issue_code(shard: ClientShard, message: IssueCode) -> CodeIssued:
    _check_still_registered(shard, message.request)
    return _issue_code(shard, message.request, message.user_id, message.auth_time)


def _issue_code(
    shard: ClientShard, request: AuthorizationRequest, user_id: str, auth_time: int
) -> CodeIssued:
    """OAuth 2.1 §4.1.2: single use, short-lived, bound to client, redirect URI, PKCE
    challenge, scope, resource and nonce."""
    code = issue_handle("ac", shard.shard_key)
    grant = {
        "user_id": user_id,
        "auth_time": auth_time,
        "redirect_uri": request.redirect_uri,
        "code_challenge": request.code_challenge,
        "scope": list(request.scope),
        "resources": list(request.resources),
        "nonce": request.nonce,
    }
    shard.store.insert_code(code, grant, shard.now() + shard.env.settings.tokens.code_ttl_s)
    return CodeIssued(request.redirect_uri, request.state, code)
