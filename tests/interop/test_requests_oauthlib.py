"""requests-oauthlib against a real `oauthd serve`: the code flow with PKCE S256 and a resource,
then OAuth2Session's automatic refresh of an expired access token (which names no resource),
then /userinfo with the refreshed token, as a web app using the library would."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from requests_oauthlib import OAuth2Session

from tests.flow import RESOURCE, query_of
from tests.interop.test_authlib import (
    REDIRECT_URI,
    oauthd,
    register_web_client,
    sign_in_and_consent,
)
from tests.interop.test_cli import Config

__all__ = ["oauthd"]  # the fixture, re-used from test_authlib


@pytest.fixture(autouse=True)
def plain_http_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib refuses http:// unless told; the server is on 127.0.0.1 for the test."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def test_requests_oauthlib_code_flow_auto_refresh_then_userinfo(
    oauthd: Config,
) -> None:
    """OAuth 2.1 §4.1 with PKCE, §4.3 refresh, OIDC Core §5.3: after OAuth2Session refreshes
    an expired token by itself (no `resource` in the refresh, README "Audience"), /userinfo
    accepts the new token, and the person is the same."""
    metadata = httpx.get(oauthd.url + "/.well-known/openid-configuration", timeout=5).json()
    client_id = register_web_client(metadata, "none", "requests-oauthlib interop")["client_id"]
    saved: list[dict[str, Any]] = []
    session = OAuth2Session(
        client_id,
        redirect_uri=REDIRECT_URI,
        scope=["openid", "email", "mcp:tools"],
        pkce="S256",
        auto_refresh_url=metadata["token_endpoint"],
        auto_refresh_kwargs={"client_id": client_id},
        token_updater=saved.append,
    )
    url, state = session.authorization_url(metadata["authorization_endpoint"], resource=RESOURCE)
    with httpx.Client(base_url=oauthd.url, timeout=5) as browser:
        callback = sign_in_and_consent(browser, url)
    assert query_of(callback)["state"] == state
    token = session.fetch_token(
        metadata["token_endpoint"],
        authorization_response=callback,
        include_client_id=True,
        resource=RESOURCE,
    )
    assert jwt.decode(token["access_token"], options={"verify_signature": False})["aud"] == (
        RESOURCE
    )
    # The token expired a minute ago: the next request refreshes it first.
    session.token = {**token, "expires_in": -60, "expires_at": time.time() - 60}

    response = session.get(metadata["userinfo_endpoint"], timeout=5)

    assert len(saved) == 1, "OAuth2Session did not refresh the expired token"
    assert saved[0]["refresh_token"] != token["refresh_token"]  # rotated
    assert response.status_code == 200, response.text
    first = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert response.json()["sub"] == first["sub"]
    assert response.json()["email"] == "alice@example.com"
