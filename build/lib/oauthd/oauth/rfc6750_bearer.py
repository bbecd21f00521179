"""Bearer tokens at protected resources (RFC 6750): reading the credential, and the
`WWW-Authenticate` challenge with `resource_metadata` (RFC 9728 §5.1)."""

from __future__ import annotations

from oauthd.errors import BearerError, InsufficientScope, InvalidRequest, InvalidToken, OAuthError

__all__ = ["BearerError", "InsufficientScope", "InvalidToken", "bearer_challenge", "read_bearer"]


def read_bearer(
    authorization: str | None, form_token: str | None, query_token: str | None
) -> str | None:
    """The access token from the Authorization header only.

    RFC 6750 §2 allows a form body or query too, but MCP and OAuth 2.1 §5.1 forbid the query,
    and a token in two places is a malformed request (RFC 6750 §2: "MUST NOT use more than one
    method")."""
    header_token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            header_token = value.strip()
    if header_token and (form_token or query_token):
        raise InvalidRequest("the access token must be sent in one place only")
    return header_token


def bearer_challenge(realm: str, resource_metadata: str, error: OAuthError | None) -> str:
    """RFC 6750 §3: no error attribute when no credentials were sent (OAuth 2.1 §5.3.2)."""
    parts = [f'realm="{realm}"', f'resource_metadata="{resource_metadata}"']
    if error is not None:
        parts.append(f'error="{error.code}"')
        if error.description:
            parts.append(f'error_description="{error.description}"')
        if isinstance(error, InsufficientScope):
            parts.append(f'scope="{error.scope}"')
    return "Bearer " + ", ".join(parts)
