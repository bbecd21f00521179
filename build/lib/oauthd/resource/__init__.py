"""Protect your own API with oauthd tokens: a resource-server helper for Quart and ASGI apps.

    config = ResourceConfig(issuer="https://auth.example.com",
                            resource="https://api.example.com/mcp",
                            scopes={"/mcp": ("mcp:tools",)})
    guard = ResourceGuard(config)
    app = BearerMiddleware(app, guard)       # or, in Quart: @require_token(guard, "scope")

Tokens are checked locally (`mode="local"`: signature against the issuer's JWKS, typ at+jwt,
iss, aud, exp, scope; RFC 9068 §4) or by asking oauthd (`mode="introspection"`, RFC 7662).
The middleware serves the RFC 9728 metadata document and answers failures with RFC 6750
challenges that point to it:

    no token                           401  Bearer resource_metadata="..."  (no error)
    invalid, expired, revoked, foreign 401  error="invalid_token"
    token in header and query          400  error="invalid_request"
    missing scope                      403  error="insufficient_scope", scope="..."
    oauthd unreachable                 503  temporarily_unavailable, Retry-After
"""

from oauthd.oauth.rfc9068_access_token import AccessTokenClaims
from oauthd.resource._asgi import ASGIApp, BearerMiddleware
from oauthd.resource._config import Mode, ResourceConfig
from oauthd.resource._guard import SCOPE_KEY, Reply, ResourceGuard
from oauthd.resource._quart import require_token

__all__ = [
    "SCOPE_KEY",
    "ASGIApp",
    "AccessTokenClaims",
    "BearerMiddleware",
    "Mode",
    "Reply",
    "ResourceConfig",
    "ResourceGuard",
    "require_token",
]
