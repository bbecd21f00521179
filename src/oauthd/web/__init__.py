"""The only importer of quart, hypercorn, httptools and jinja2: the HTTP front door.

A route parses the request, asks one actor (or reads a prepared snapshot), renders the reply.
"""

from oauthd.web.admin import AdminState, create_admin_app, token_digest
from oauthd.web.app import AppState, create_app
from oauthd.web.serving import serve_http
from oauthd.web.tenants import TenantRouter

__all__ = [
    "AdminState",
    "AppState",
    "TenantRouter",
    "create_admin_app",
    "create_app",
    "serve_http",
    "token_digest",
]
