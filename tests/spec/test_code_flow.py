"""The authorization code flow end to end, as a new user would walk it (OAuth 2.1 §4.1)."""

from __future__ import annotations

import jwt
import pytest

from tests.conftest import ISSUER, Server
from tests.flow import Authorization, authorize_code, redeem, register

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)


async def test_s4_1_register_authorize_login_consent_token_userinfo_refresh(server: Server) -> None:
    """The whole flow works with state, iss, PKCE and resource, and refresh rotates."""
    http = server.http
    client = await register(http)
    auth = Authorization(client["client_id"], scope="openid email", resource=None)
    result = await authorize_code(http, auth)
    assert result["state"] == auth.state
    assert result["iss"] == ISSUER
    response = await redeem(http, auth, result["code"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["typ"] == "at+jwt"
    info = await http.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 200
    assert info.json()["email"] == "alice@example.com"
    refreshed = await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": auth.client_id,
        },
    )
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]
