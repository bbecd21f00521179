"""Every error oauthd answers with, one class per OAuth error code.

Hierarchy::

    OAuthdError                      anything oauthd raises on purpose
    ├── ConfigError                  a bad configuration file or environment (startup only)
    └── OAuthError                   an error the client sees: code, status, description
        ├── InvalidRequest           RFC 6749 §4.1.2.1, §5.2
        ├── InvalidClient            RFC 6749 §5.2 (401)
        ├── InvalidGrant             RFC 6749 §5.2
        ├── UnauthorizedClient       RFC 6749 §4.1.2.1, §5.2
        ├── UnsupportedGrantType     RFC 6749 §5.2
        ├── UnsupportedResponseType  RFC 6749 §4.1.2.1
        ├── InvalidScope             RFC 6749 §4.1.2.1, §5.2
        ├── InvalidTarget            RFC 8707 §2
        ├── InvalidRedirectUri       RFC 7591 §3.2.2
        ├── InvalidClientMetadata    RFC 7591 §3.2.2
        ├── LoginRequired            OIDC Core §3.1.2.6
        ├── ConsentRequired          OIDC Core §3.1.2.6
        ├── RequestNotSupported      OIDC Core §6.1 (and RequestUri-, RegistrationNotSupported)
        ├── BearerError              RFC 6750 §3.1, at protected resources
        │   ├── InvalidToken         (401)
        │   └── InsufficientScope    (403, with the scope needed)
        ├── AccessDenied             RFC 6749 §4.1.2.1
        ├── AuthorizationPending     RFC 8628 §3.5
        ├── SlowDown                 RFC 8628 §3.5
        ├── ExpiredToken             RFC 8628 §3.5
        ├── ServerError              RFC 6749 §4.1.2.1 (500)
        ├── TemporarilyUnavailable   RFC 6749 §4.1.2.1 (503, Retry-After)
        │   └── TooManyRequests      RFC 6585 §4 (429, Retry-After)
        ├── NotFound                 no such resource (404, HTTP only)
        ├── MethodNotAllowed         wrong method (405, HTTP only)
        ├── Conflict                 invalid_request: it exists already (409, the admin API)
        └── UnsupportedMediaType     invalid_request: not JSON (415, the admin API)

`description` is public and goes to the client; `detail` is private and only the log sees it
(node-oidc-provider's split). Descriptions are restricted to the characters RFC 6749 §5.2 allows.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDenied",
    "AuthorizationPending",
    "BearerError",
    "ConfigError",
    "Conflict",
    "ConsentRequired",
    "ExpiredToken",
    "Forbidden",
    "InsufficientScope",
    "InvalidClient",
    "InvalidClientMetadata",
    "InvalidGrant",
    "InvalidRedirectUri",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "LoginRequired",
    "MethodNotAllowed",
    "NotFound",
    "OAuthError",
    "OAuthdError",
    "RegistrationNotSupported",
    "RequestNotSupported",
    "RequestTooLarge",
    "RequestUriNotSupported",
    "ServerError",
    "SlowDown",
    "TemporarilyUnavailable",
    "TooManyRequests",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UnsupportedMediaType",
    "UnsupportedResponseType",
    "safe_description",
]


def safe_description(text: str) -> str:
    """Keep only %x20-21 / %x23-5B / %x5D-7E (RFC 6749 §5.2), so no input is echoed raw."""
    return "".join(ch for ch in text if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')


class OAuthdError(Exception):
    """Base of everything oauthd raises on purpose."""


class ConfigError(OAuthdError):
    """The configuration cannot be used: names the file and the key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


class OAuthError(OAuthdError):
    """An error answered to the client with `code` and HTTP `status`."""

    code: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400
    redirectable: ClassVar[bool] = True
    section: ClassVar[str] = "RFC 6749 §5.2"

    def __init__(self, description: str = "", *, detail: str = "") -> None:
        self.description = safe_description(description)
        self.detail = detail
        super().__init__(f"{self.code}: {self.description}" + (f" ({detail})" if detail else ""))

    def headers(self) -> dict[str, str]:
        """Extra response headers this error requires."""
        return {}


class InvalidRequest(OAuthError):
    code = "invalid_request"
    section = "RFC 6749 §4.1.2.1, §5.2"


class InvalidClient(OAuthError):
    code = "invalid_client"
    status = 401
    redirectable = False
    section = "RFC 6749 §5.2"

    def __init__(self, description: str = "", *, detail: str = "", scheme: str = "Basic") -> None:
        super().__init__(description, detail=detail)
        self.scheme = scheme

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'{self.scheme} realm="oauthd"'}


class InvalidGrant(OAuthError):
    code = "invalid_grant"
    section = "RFC 6749 §5.2"


class UnauthorizedClient(OAuthError):
    code = "unauthorized_client"
    section = "RFC 6749 §4.1.2.1, §5.2"


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"
    section = "RFC 6749 §5.2"


class UnsupportedResponseType(OAuthError):
    code = "unsupported_response_type"
    section = "RFC 6749 §4.1.2.1"


class InvalidScope(OAuthError):
    code = "invalid_scope"
    section = "RFC 6749 §4.1.2.1, §5.2"


class InvalidTarget(OAuthError):
    code = "invalid_target"
    section = "RFC 8707 §2"


class AccessDenied(OAuthError):
    code = "access_denied"
    section = "RFC 6749 §4.1.2.1"


class AuthorizationPending(OAuthError):
    code = "authorization_pending"
    redirectable = False
    section = "RFC 8628 §3.5"


class SlowDown(OAuthError):
    code = "slow_down"
    redirectable = False
    section = "RFC 8628 §3.5"


class ExpiredToken(OAuthError):
    code = "expired_token"
    redirectable = False
    section = "RFC 8628 §3.5"


class ServerError(OAuthError):
    code = "server_error"
    status = 500
    section = "RFC 6749 §4.1.2.1"


class TemporarilyUnavailable(OAuthError):
    code = "temporarily_unavailable"
    status = 503
    section = "RFC 6749 §4.1.2.1"

    def __init__(self, description: str = "", *, detail: str = "", retry_after_s: int = 1) -> None:
        super().__init__(description, detail=detail)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class TooManyRequests(TemporarilyUnavailable):
    """Too many attempts from one browser or address (RFC 8628 §5.1 user-code guessing)."""

    status = 429
    section = "RFC 6585 §4"


class NotFound(OAuthError):
    code = "not_found"
    status = 404
    redirectable = False
    section = "RFC 9110 §15.5.5"


class MethodNotAllowed(OAuthError):
    code = "method_not_allowed"
    status = 405
    redirectable = False
    section = "RFC 9110 §15.5.6"

    def __init__(self, allowed: list[str], description: str = "") -> None:
        super().__init__(description or "method not allowed")
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class RequestTooLarge(InvalidRequest):
    status = 413
    redirectable = False
    section = "RFC 9110 §15.5.14"


class Conflict(InvalidRequest):
    """What the request would create exists already (a tenant id, an issuer)."""

    status = 409
    redirectable = False
    section = "RFC 9110 §15.5.10"


class UnsupportedMediaType(InvalidRequest):
    status = 415
    redirectable = False
    section = "RFC 9110 §15.5.16"


class Forbidden(OAuthError):
    """A browser form without its valid, session-bound CSRF token (OAuth 2.1 §7.10)."""

    code = "forbidden"
    status = 403
    redirectable = False
    section = "OAuth 2.1 §7.10"


class InvalidRedirectUri(OAuthError):
    code = "invalid_redirect_uri"
    redirectable = False
    section = "RFC 7591 §3.2.2"


class InvalidClientMetadata(OAuthError):
    code = "invalid_client_metadata"
    redirectable = False
    section = "RFC 7591 §3.2.2"


class LoginRequired(OAuthError):
    code = "login_required"
    section = "OIDC Core §3.1.2.6"


class ConsentRequired(OAuthError):
    code = "consent_required"
    section = "OIDC Core §3.1.2.6"


class RequestNotSupported(OAuthError):
    code = "request_not_supported"
    section = "OIDC Core §6.1"


class RequestUriNotSupported(OAuthError):
    code = "request_uri_not_supported"
    section = "OIDC Core §6.2"


class RegistrationNotSupported(OAuthError):
    code = "registration_not_supported"
    section = "OIDC Core §7.2.1"


class BearerError(OAuthError):
    """An error at a protected resource; its challenge goes in WWW-Authenticate."""

    status = 401
    redirectable = False
    section = "RFC 6750 §3.1"


class InvalidToken(BearerError):
    code = "invalid_token"


class InsufficientScope(BearerError):
    code = "insufficient_scope"
    status = 403

    def __init__(self, scope: str, description: str = "") -> None:
        super().__init__(description or "the token lacks a required scope")
        self.scope = scope
