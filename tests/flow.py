"""Driving the authorization-code flow over HTTP as a person and a client would: register,
authorize, log in, consent, redeem. Shared by the spec and interop tests."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

ALICE = ("alice@example.com", "password")
LOOPBACK = "http://127.0.0.1/cb"
RESOURCE = "https://mcp.example.com/mcp"


def secure_cookies_on_loopback(http: httpx.AsyncClient | httpx.Client) -> None:
    """Browsers treat http://127.0.0.1 as a secure context and send its `Secure`, `__Host-`
    cookies back (what oauthd sets outside dev mode); httpx's jar does not, so each cookie
    from 127.0.0.1 is relaxed as it arrives."""

    def relax(_response: httpx.Response) -> None:
        for cookie in http.cookies.jar:
            if cookie.domain == "127.0.0.1":
                cookie.secure = False

    async def relax_async(response: httpx.Response) -> None:
        relax(response)

    hook = relax_async if isinstance(http, httpx.AsyncClient) else relax
    http.event_hooks["response"].append(hook)


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def form_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} field in page"
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def register(http: httpx.AsyncClient, **metadata: Any) -> dict[str, Any]:
    body = {
        "redirect_uris": [LOOPBACK],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "test client",
        **metadata,
    }
    response = await http.post("/register", json=body)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


@dataclass
class Authorization:
    """One run of the code flow; `params` are the authorization request's parameters."""

    client_id: str
    redirect_uri: str = "http://127.0.0.1:5555/cb"
    scope: str = "openid email"
    resource: str | None = RESOURCE
    state: str = "st-123"
    extra: dict[str, str] = field(default_factory=dict)
    verifier: str = ""
    challenge: str = ""

    def __post_init__(self) -> None:
        if not self.verifier:
            self.verifier, self.challenge = pkce()

    @property
    def params(self) -> dict[str, str]:
        params = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            "state": self.state,
            "scope": self.scope,
        }
        if self.resource:
            params["resource"] = self.resource
        return {**params, **self.extra}


async def login(
    http: httpx.AsyncClient, location: str, who: tuple[str, str] = ALICE
) -> httpx.Response:
    """Follow a redirect to the login page and submit it."""
    page = await http.get(location)
    assert page.status_code == 200, page.text
    return await http.post(
        "/login",
        data={
            "request": form_field(page.text, "request"),
            "csrf": form_field(page.text, "csrf"),
            "email": who[0],
            "password": who[1],
        },
    )


async def consent(
    http: httpx.AsyncClient, location: str, decision: str = "allow"
) -> httpx.Response:
    page = await http.get(location)
    assert page.status_code == 200, page.text
    return await http.post(
        "/consent",
        data={
            "request": form_field(page.text, "request"),
            "csrf": form_field(page.text, "csrf"),
            "decision": decision,
        },
    )


async def follow(http: httpx.AsyncClient, response: httpx.Response) -> str:
    """Walk login and consent from an /authorize response; the Location sent to the client."""
    for _ in range(4):
        assert response.status_code in (302, 303), response.text
        location: str = response.headers["location"]
        if location.startswith("/login"):
            response = await login(http, location)
        elif location.startswith("/consent"):
            response = await consent(http, location)
        else:
            return location
    raise AssertionError("the flow did not reach the client")


async def authorize_code(http: httpx.AsyncClient, auth: Authorization) -> dict[str, str]:
    """Run /authorize through login and consent as needed; the redirect's query parameters."""
    return query_of(await follow(http, await http.get("/authorize", params=auth.params)))


async def redeem(
    http: httpx.AsyncClient, auth: Authorization, code: str, path: str = "/token", **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": auth.verifier,
        "redirect_uri": auth.redirect_uri,
        "client_id": auth.client_id,
        **extra,
    }
    if auth.resource:
        data.setdefault("resource", auth.resource)
    return await http.post(path, data=data)


async def refresh(http: httpx.AsyncClient, client_id: str, token: str) -> httpx.Response:
    """A public client's refresh_token grant (OAuth 2.1 §4.3)."""
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    return await http.post("/token", data=data)


async def tokens_for(http: httpx.AsyncClient, auth: Authorization) -> dict[str, Any]:
    """The whole flow: a token response for `auth`."""
    result = await authorize_code(http, auth)
    response = await redeem(http, auth, result["code"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def register_machine(
    http: httpx.AsyncClient, prefix: str = "", scope: str = "mcp:tools"
) -> dict[str, Any]:
    """A confidential client for client_credentials alone, registered at `prefix` (a path
    tenant's `/t/<id>`, or "" for the root)."""
    response = await http.post(
        f"{prefix}/register",
        json={
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
            "scope": scope,
        },
    )
    assert response.status_code == 201, response.text
    client: dict[str, Any] = response.json()
    return client


def basic(client: dict[str, Any]) -> dict[str, str]:
    """HTTP Basic client authentication (RFC 6749 §2.3.1) with the client's own secret."""
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
