"""The MCP Python SDK against a real oauthd and the example MCP server (examples/mcp_server.py),
both on loopback ports in this trio run, the way a new user's MCP client meets them: a 401
from the MCP server, RFC 9728 metadata, oauthd's metadata, dynamic registration, the code
flow with PKCE and `resource` (the redirect handler walks the dev login and consent pages
over HTTP), tools listed, the token refreshed by the SDK, and a revoked token refused.

The SDK runs on anyio, so it runs under trio as it is: no thread, no second event loop."""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import httpx2
import jwt
import pytest
import trio
import trustme
from examples.mcp_server import build_app
from hypercorn.config import Config
from hypercorn.trio import serve
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.utils import build_oauth_authorization_server_metadata_discovery_urls
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from oauthd.actors.outbound import pinned_transport
from oauthd.settings import ClientMetadataSettings, ClientSettings, ResourceSettings, Settings
from tests.conftest import ManualClock, running_server
from tests.document_host import resolver_for, start_document_host
from tests.flow import ALICE, query_of
from tests.interop.test_cli import ENV, free_port, run, serving, write_config

RS_CLIENT_ID = "example-mcp-server"
RS_SECRET_ENV = "OAUTHD_TEST_MCP_SERVER_SECRET"
RS_SECRET = "example-mcp-server-secret-0123456789"
TENANT_SECRET_ENV = "MCP_SERVER_SECRET_FOR_TEST"  # for `oauthd serve`, which refuses stray OAUTHD_*
CALLBACK = "http://127.0.0.1:33418/callback"


@dataclass
class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    tokens: OAuthToken | None = None
    client: OAuthClientInformationFull | None = None
    history: list[OAuthToken] = field(default_factory=list)

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@dataclass
class Browser:
    """A person at a browser: follows oauthd's redirects, signs in as Alice, allows."""

    http: httpx.AsyncClient
    results: list[AuthorizationCodeResult] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)

    async def open(self, url: str) -> None:
        response = await self.http.get(url)
        for _ in range(6):
            assert response.status_code in (302, 303), response.text
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(CALLBACK):
                query = query_of(location)
                self.results.append(
                    AuthorizationCodeResult(
                        code=query["code"], state=query.get("state"), iss=query.get("iss")
                    )
                )
                return
            page = await self.http.get(location)
            assert page.status_code == 200, page.text
            self.pages.append(page.text)
            response = await self.http.post(
                urljoin(location, action(page.text)), data=fields(page.text)
            )
        raise AssertionError("the authorization did not reach the callback")

    async def callback(self) -> AuthorizationCodeResult:
        return self.results[-1]


def action(html: str) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', html)
    assert match, html
    return match.group(1)


def fields(html: str) -> dict[str, str]:
    values = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    if 'name="password"' in html:
        values.update(email=ALICE[0], password=ALICE[1])
    else:
        values["decision"] = "allow"
    return values


def oauthd_settings(
    make_settings: Callable[..., Settings], port: int, path: str, mcp: str, **extra: Any
) -> Settings:
    return make_settings(
        **extra,
        issuer=f"http://127.0.0.1:{port}{path}",
        listen=f"127.0.0.1:{port}",
        resources=(ResourceSettings(mcp, ("mcp:tools",), client_id=RS_CLIENT_ID),),
        clients=(
            ClientSettings(
                client_id=RS_CLIENT_ID,
                token_endpoint_auth_method="client_secret_basic",
                grant_types=("client_credentials",),
                client_secret_env=RS_SECRET_ENV,
            ),
        ),
    )


@asynccontextmanager
async def mcp_server(issuer: str, resource: str, port: int) -> AsyncIterator[None]:
    """The example MCP server on `port`, introspecting tokens so revocation shows at once."""
    app, guard = build_app(issuer, resource, client_id=RS_CLIENT_ID, client_secret=RS_SECRET)
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    stop = trio.Event()
    async with guard, trio.open_nursery() as nursery:
        await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        try:
            yield
        finally:
            stop.set()


async def authorize_list_and_refresh(mcp_url: str, issuer: str, storage: MemoryStorage) -> None:
    """The SDK's OAuthClientProvider meets the MCP server's 401 and does the rest itself: RFC
    9728 metadata, the issuer's metadata, registration, the code flow with PKCE through
    login and consent (the browser), tools listed; then, told its token expired, a refresh
    on its next request. Its client and tokens are left in `storage`."""
    async with httpx.AsyncClient() as browser_http:
        browser = Browser(browser_http)
        provider = OAuthClientProvider(
            server_url=mcp_url,
            client_metadata=OAuthClientMetadata(
                client_name="oauthd interop",
                redirect_uris=[CALLBACK],  # type: ignore[list-item]  # pydantic coerces
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
            ),
            storage=storage,
            redirect_handler=browser.open,
            callback_handler=browser.callback,
        )
        async with (
            httpx2.AsyncClient(auth=provider, timeout=30) as http,
            Client(streamable_http_client(mcp_url, http_client=http)) as client,
        ):
            tools = await client.list_tools()
            assert sorted(t.name for t in tools.tools) == ["add", "echo"]
            assert len(browser.results) == 1  # one authorization, through login and consent
            assert browser.results[0].iss == issuer
            assert storage.client is not None
            assert storage.tokens is not None
            first = storage.tokens
            assert first.refresh_token

            provider.context.token_expiry_time = time.time() - 1
            result = await client.call_tool("add", {"a": 2, "b": 3})
            assert not result.is_error
            assert len(browser.results) == 1  # refreshed, not authorized again
            assert storage.tokens is not first
            assert storage.tokens.refresh_token not in (None, first.refresh_token)  # rotated


@pytest.mark.parametrize("issuer_path", ["", "/tenant1"])
async def test_mcp_sdk_registers_authorizes_lists_tools_refreshes_and_is_refused_when_revoked(
    make_settings: Callable[..., Settings],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    issuer_path: str,
) -> None:
    """MCP-2511/2607 client flow (DISC-18..20, REG-1/3/13, RES-1, AUTHZ-13, REFRESH-1): the
    SDK's OAuthClientProvider completes dynamic registration and the code flow, lists tools,
    refreshes its token, and a revoked access token makes the MCP server answer 401."""
    monkeypatch.setenv(RS_SECRET_ENV, RS_SECRET)
    mcp_port = free_port()
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    settings = oauthd_settings(make_settings, free_port(), issuer_path, mcp_url)
    storage = MemoryStorage()
    async with (
        running_server(settings, clock),
        mcp_server(settings.issuer, mcp_url, mcp_port),
    ):
        await authorize_list_and_refresh(mcp_url, settings.issuer, storage)
        await revoked_token_is_refused(settings.issuer, mcp_url, storage)


async def revoked_token_is_refused(issuer: str, mcp_url: str, storage: MemoryStorage) -> None:
    """The SDK's access token revoked at the issuer (as its client): the MCP server, which
    introspects, answers 401 invalid_token with its metadata URL."""
    assert storage.client is not None
    assert storage.tokens is not None
    revoked = storage.tokens.access_token
    info = storage.client
    auth = (info.client_id, info.client_secret) if info.client_secret else None
    data = {"token": revoked} if auth else {"token": revoked, "client_id": info.client_id}
    async with httpx.AsyncClient() as raw:
        response = await raw.post(issuer + "/revoke", data=data, auth=auth)
        assert response.status_code == 200
        refused = await raw.post(
            mcp_url,
            headers={"Authorization": f"Bearer {revoked}", "Accept": "application/json"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert "resource_metadata=" in refused.headers["www-authenticate"]


async def test_mcp_sdk_completes_its_flow_against_a_path_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same flow against `<root>/t/acme` on a real `oauthd serve`, the tenant added with
    `oauthd tenants add` and its MCP server (resource, introspecting client) in the tenant's
    settings: the SDK finds the tenant's metadata at the RFC 8414 §3.1 path-inserted URL, and
    every token names the tenant's issuer."""
    monkeypatch.setitem(ENV, TENANT_SECRET_ENV, RS_SECRET)  # the servers' environment
    mcp_port = free_port()
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    config = write_config(tmp_path, '[log]\nlevel = "warning"\n')
    settings = tmp_path / "acme.toml"
    settings.write_text(
        f'[[resources]]\nuri = "{mcp_url}"\nscopes = ["mcp:tools"]\n'
        f'client_id = "{RS_CLIENT_ID}"\n'
        f'[[clients]]\nclient_id = "{RS_CLIENT_ID}"\n'
        'token_endpoint_auth_method = "client_secret_basic"\n'
        f'grant_types = ["client_credentials"]\nclient_secret_env = "{TENANT_SECRET_ENV}"\n',
        encoding="utf-8",
    )
    added = run("tenants", "add", "acme", "--config", str(config.path), "--settings", str(settings))
    assert added.returncode == 0, added.stderr
    issuer = f"{config.issuer}/t/acme"
    storage = MemoryStorage()
    with serving(config, tmp_path / "stderr.log"):
        first = build_oauth_authorization_server_metadata_discovery_urls(issuer, mcp_url)[0]
        assert first == f"{config.issuer}/.well-known/oauth-authorization-server/t/acme"
        async with httpx.AsyncClient() as raw:
            assert (await raw.get(first)).json()["issuer"] == issuer  # the SDK's first try
        async with mcp_server(issuer, mcp_url, mcp_port):
            await authorize_list_and_refresh(mcp_url, issuer, storage)
            assert storage.tokens is not None
            claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
            assert claims["iss"] == issuer
            await revoked_token_is_refused(issuer, mcp_url, storage)


async def test_mcp_sdk_identifies_itself_with_a_client_id_metadata_document(
    make_settings: Callable[..., Settings], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CIMD-1 (MCP 2025-11-25 client registration): given client_metadata_url, the SDK sees
    client_id_metadata_document_supported and uses the URL as its client_id without
    registering; oauthd fetches the document over https and the SDK lists tools."""
    monkeypatch.setenv(RS_SECRET_ENV, RS_SECRET)
    ca = trustme.CA()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    mcp_port = free_port()
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    allow = ("127.0.0.1/32",)
    settings = oauthd_settings(
        make_settings,
        free_port(),
        "",
        mcp_url,
        client_metadata=ClientMetadataSettings(allow_networks=allow),
    )
    resolver = resolver_for({"cimd.test": ["127.0.0.1"]})
    transport = pinned_transport(allow, ssl_context=context, resolver=resolver)
    storage = MemoryStorage()
    async with trio.open_nursery() as nursery:
        host = await start_document_host(nursery, ca)
        document_url = host.url("/mcp-client.json")
        host.serve_json(
            "/mcp-client.json",
            {
                "client_id": document_url,
                "client_name": "oauthd interop (CIMD)",
                "redirect_uris": [CALLBACK],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
        )
        async with (
            running_server(settings, clock, transport),
            mcp_server(settings.issuer, mcp_url, mcp_port),
            httpx.AsyncClient() as browser_http,
        ):
            browser = Browser(browser_http)
            provider = OAuthClientProvider(
                server_url=mcp_url,
                client_metadata=OAuthClientMetadata(
                    client_name="oauthd interop (CIMD)",
                    redirect_uris=[CALLBACK],  # type: ignore[list-item]  # pydantic coerces
                    grant_types=["authorization_code", "refresh_token"],
                    response_types=["code"],
                    token_endpoint_auth_method="none",
                ),
                storage=storage,
                redirect_handler=browser.open,
                callback_handler=browser.callback,
                client_metadata_url=document_url,
            )
            async with (
                httpx2.AsyncClient(auth=provider, timeout=30) as http,
                Client(streamable_http_client(mcp_url, http_client=http)) as client,
            ):
                tools = await client.list_tools()
                assert sorted(t.name for t in tools.tools) == ["add", "echo"]
        assert storage.client is not None
        assert storage.client.client_id == document_url
        assert any("describes itself at <strong>cimd.test</strong>" in p for p in browser.pages)
        assert host.requests == ["/mcp-client.json"]
        nursery.cancel_scope.cancel()
