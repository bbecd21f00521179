"""The messages a ClientActor handles for the authorization-code and refresh-token grants,
and the values it answers with. Handlers live in `client_authz.py` and `client_tokens.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oauthd.oauth.rfc6749_authorize import AuthorizationRequest
from oauthd.oauth.rfc6749_client_auth import ClientCredentials
from oauthd.runtime import Command, Query

__all__ = [
    "ApprovePending",
    "CheckAccessToken",
    "CheckPending",
    "CodeIssued",
    "ConsentPending",
    "DenyPending",
    "DeviceDecided",
    "IssueCode",
    "Pending",
    "PreparePending",
    "RedeemCode",
    "RefreshTokens",
    "StartPending",
    "TokenResponse",
]


@dataclass(frozen=True, slots=True)
class Pending:
    request: AuthorizationRequest
    csrf: str


@dataclass(frozen=True, slots=True)
class CodeIssued:
    redirect_uri: str
    state: str | None
    code: str | None  # None when the person denied


@dataclass(frozen=True, slots=True)
class DeviceDecided:
    """The answer to ApprovePending / DenyPending for a device request (RFC 8628 §3.3):
    the device code is now approved or denied; nothing goes to any redirect URI."""

    approved: bool
    user_code: str


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """OAuth 2.1 §3.2.3."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        if self.id_token is not None:
            body["id_token"] = self.id_token
        return body


@dataclass(frozen=True, slots=True)
class StartPending(Command[str]):
    """Command: keep an authorization request server-side while the person logs in and
    consents; replies with its opaque id. `browser` binds it to one browser."""

    request: AuthorizationRequest
    browser: str


@dataclass(frozen=True, slots=True)
class PreparePending(Command[Pending]):
    """Command: load a pending request for a form and mint its CSRF token; replies Pending."""

    request_id: str
    browser: str


@dataclass(frozen=True, slots=True)
class CheckPending(Query[AuthorizationRequest]):
    """Query: the pending request, if `browser` and `csrf` are the ones it is bound to."""

    request_id: str
    browser: str
    csrf: str


@dataclass(frozen=True, slots=True)
class ApprovePending(Command[CodeIssued | DeviceDecided]):
    """Command: the person approved: consume the request and issue a code (or, for a device
    request, mark its device code approved and reply DeviceDecided)."""

    request_id: str
    browser: str
    csrf: str
    user_id: str
    auth_time: int


@dataclass(frozen=True, slots=True)
class ConsentPending(Command[AuthorizationRequest]):
    """Command: the person allowed the request before logging in at the upstream identity
    provider (federation); the request is marked consented and its CSRF token spent."""

    request_id: str
    browser: str
    csrf: str


@dataclass(frozen=True, slots=True)
class DenyPending(Command[CodeIssued | DeviceDecided]):
    """Command: the person denied: consume the request; replies CodeIssued without a code
    (or DeviceDecided for a device request)."""

    request_id: str
    browser: str
    csrf: str


@dataclass(frozen=True, slots=True)
class IssueCode(Command[CodeIssued]):
    """Command: issue a code straight away (session and consent already in place)."""

    request: AuthorizationRequest
    user_id: str
    auth_time: int


@dataclass(frozen=True, slots=True)
class RedeemCode(Command[TokenResponse]):
    """Command: the authorization_code grant (OAuth 2.1 §4.1.3)."""

    credentials: ClientCredentials
    code: str | None
    code_verifier: str | None
    redirect_uri: str | None
    resources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RefreshTokens(Command[TokenResponse]):
    """Command: the refresh_token grant with rotation (OAuth 2.1 §4.3)."""

    credentials: ClientCredentials
    refresh_token: str | None
    scope: str | None
    resources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckAccessToken(Query[bool]):
    """Query: whether the access token with this jti is still active (not revoked)."""

    jti: str
