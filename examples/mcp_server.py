"""An MCP server protected by oauthd: the `mcp` Python SDK serves the tools, `oauthd.resource`
guards them (RFC 9728 metadata, RFC 6750 401 challenges, the token's audience and scope).

Run it next to `make run` (oauthd on http://127.0.0.1:8787, whose config/dev.toml lists
http://127.0.0.1:8000/mcp as a resource with the scope mcp:tools):

    .venv/bin/python examples/mcp_server.py

then point an MCP client at http://127.0.0.1:8000/mcp. It answers 401 with
`WWW-Authenticate: Bearer resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"`;
the client reads that document, finds oauthd in `authorization_servers`, registers (or
uses its Client ID Metadata Document), and runs the code flow with `resource` set to this
server. Tokens are checked locally against oauthd's JWKS; with `--introspect CLIENT_ID`
(its secret in $OAUTHD_EXAMPLE_SECRET) each request asks oauthd instead, so a revoked token
is refused at once. Tokens with no person behind them (client_credentials) are refused. The
middleware puts the token's claims in the ASGI scope under
`oauthd.resource.SCOPE_KEY`, for tools that need to know who is calling.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from oauthd.resource import BearerMiddleware, ResourceConfig, ResourceGuard

__all__ = ["build_app", "main"]

SCOPE = "mcp:tools"


def build_app(
    issuer: str,
    resource: str,
    *,
    client_id: str = "",
    client_secret: str = "",
) -> tuple[Any, ResourceGuard]:
    """The MCP app at the path of `resource`, behind oauthd's bearer middleware; and the guard,
    for the caller to close. With `client_id`, tokens are introspected (RFC 7662)."""
    mcp = MCPServer("oauthd-example", instructions="Adds numbers for signed-in people.")

    @mcp.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool()
    def echo(text: str) -> str:
        """Say the text back."""
        return text

    config = ResourceConfig(
        issuer=issuer,
        resource=resource,
        mode="introspection" if client_id else "local",
        scopes={"/": (SCOPE,)},
        client_id=client_id,
        client_secret=client_secret,
        require_user=True,  # the tools act for a person: no client_credentials tokens
    )
    guard = ResourceGuard(config)
    path = config.metadata_path.removeprefix("/.well-known/oauth-protected-resource") or "/mcp"
    host = resource.split("://", 1)[1].split("/", 1)[0]
    security = TransportSecuritySettings(allowed_hosts=[host], allowed_origins=[])
    app = mcp.streamable_http_app(streamable_http_path=path, transport_security=security)
    return BearerMiddleware(app, guard), guard


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", default="http://127.0.0.1:8787")
    parser.add_argument("--resource", default="http://127.0.0.1:8000/mcp")
    parser.add_argument("--listen", default="127.0.0.1:8000")
    parser.add_argument("--introspect", metavar="CLIENT_ID", default="")
    args = parser.parse_args()
    secret = os.environ.get("OAUTHD_EXAMPLE_SECRET", "") if args.introspect else ""
    app, guard = build_app(
        args.issuer, args.resource, client_id=args.introspect, client_secret=secret
    )
    config = Config()
    config.bind = [args.listen]
    async with guard:
        print(f"MCP server on http://{args.listen}, tokens from {args.issuer}")
        await serve(app, config)


if __name__ == "__main__":
    trio.run(main)
