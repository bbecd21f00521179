"""The only importer of quart, hypercorn and jinja2: the HTTP front door.

A route parses the request, asks one actor (or reads a prepared snapshot), renders the reply.
"""

from oauthd.web.admin import AdminState, create_admin_app, token_digest
from oauthd.web.app import AppState, create_app
from oauthd.web.serving import hypercorn_config, serve_http
from oauthd.web.tenants import TenantRouter

__all__ = [
    "AdminState",
    "AppState",
    "TenantRouter",
    "create_admin_app",
    "create_app",
    "hypercorn_config",
    "serve_http",
    "token_digest",
]
