"""RFC 7592: the client configuration endpoint, GET/PUT/DELETE registration_client_uri with
the registration access token (REG-17..REG-22)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ISSUER, Server
from tests.flow import (
    LOOPBACK,
    Authorization,
    authorize_code,
    form_field,
    login,
    register,
    tokens_for,
)

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

SERVER_MANAGED = (
    "registration_access_token",
    "registration_client_uri",
    "client_id_issued_at",
    "client_secret_expires_at",
)
NEW_REDIRECT = "https://app.example/new-cb"
BEARER_INVALID_TOKEN = re.compile(r'^Bearer .*error="invalid_token"')


def path_of(uri: str) -> str:
    return urlsplit(uri).path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def update_of(registered: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The registration as a client sends it back in a PUT: without the server's fields."""
    body = {k: v for k, v in registered.items() if k not in SERVER_MANAGED}
    return {**body, **changes}


async def config(
    server: Server, registered: dict[str, Any], method: str = "GET", **kwargs: Any
) -> httpx.Response:
    headers = kwargs.pop("headers", bearer(registered["registration_access_token"]))
    return await server.http.request(
        method, path_of(registered["registration_client_uri"]), headers=headers, **kwargs
    )


def assert_invalid_token(response: httpx.Response) -> None:
    """RFC 7592 §2.1, RFC 6750 §3.1: 401 with a Bearer invalid_token challenge."""
    assert response.status_code == 401, response.text
    assert BEARER_INVALID_TOKEN.match(response.headers["www-authenticate"])
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "invalid_token"
    assert "client_id" not in response.json()


def assert_error(response: httpx.Response, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == code


def assert_no_client_redirect(response: httpx.Response) -> None:
    """An error page from the AS itself: no Location pointing at the client (AUTHZ-1/2)."""
    assert response.status_code == 400, response.text
    assert "location" not in response.headers


# --- §3: the registration response --------------------------------------------------------------


async def test_s3_registration_has_access_token_and_client_uri(server: Server) -> None:
    """REG-17: 201 carries registration_access_token (>= 128 bits) and an absolute
    registration_client_uri on the issuer's origin naming the client_id."""
    registered = await register(server.http)
    token = registered["registration_access_token"]
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", token)
    assert len(token) >= 22
    uri = registered["registration_client_uri"]
    assert uri.startswith(ISSUER + "/")
    assert registered["client_id"] in uri


async def test_s3_access_tokens_distinct_per_client(server: Server) -> None:
    """REG-17, TOKEN-17: registration access tokens are never repeated."""
    tokens = {(await register(server.http))["registration_access_token"] for _ in range(8)}
    assert len(tokens) == 8


# --- §2.1: read ---------------------------------------------------------------------------------


async def test_s2_1_get_with_token_returns_current_metadata(server: Server) -> None:
    """REG-18: GET with the RAT -> 200 JSON no-store, the metadata as registered."""
    registered = await register(server.http, client_name="reader", scope="openid email")
    response = await config(server, registered)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    current = response.json()
    for name, value in registered.items():
        if name != "registration_access_token":
            assert current[name] == value, name


async def test_s2_1_get_of_confidential_client_states_secret_expiry(server: Server) -> None:
    """REG-18: a confidential client's configuration keeps client_secret_expires_at."""
    registered = await register(server.http, token_endpoint_auth_method="client_secret_basic")
    current = (await config(server, registered)).json()
    assert current["token_endpoint_auth_method"] == "client_secret_basic"
    assert current["client_secret_expires_at"] == 0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer garbage",
        "Bearer a b",
        "Bearer rat_0000000000000000000f_" + "A" * 43,
        "Basic Zm9vOmJhcg==",
        "bearer",
    ],
)
async def test_s2_1_missing_or_invalid_token_is_401(
    server: Server, method: str, authorization: str | None
) -> None:
    """REG-19: no or invalid RAT -> 401 WWW-Authenticate: Bearer error="invalid_token"."""
    registered = await register(server.http)
    headers = {"Authorization": authorization} if authorization else {}
    body = update_of(registered) if method == "PUT" else None
    response = await config(server, registered, method, headers=headers, json=body)
    assert_invalid_token(response)
    assert (await config(server, registered)).status_code == 200  # nothing changed


async def test_s2_1_token_of_another_client_is_401(server: Server) -> None:
    """REG-19: client A's RAT on client B's URI -> 401, never B's data."""
    a = await register(server.http)
    b = await register(server.http, redirect_uris=["https://b.example/cb"])
    headers = bearer(a["registration_access_token"])
    for method in ("GET", "PUT", "DELETE"):
        body = update_of(b, redirect_uris=["https://a.example/cb"]) if method == "PUT" else None
        response = await config(server, b, method, headers=headers, json=body)
        assert_invalid_token(response)
    assert (await config(server, b)).json()["redirect_uris"] == ["https://b.example/cb"]


async def test_s2_1_unknown_client_uri_is_401(server: Server) -> None:
    """REG-19: a URI naming no client -> 401 (it does not reveal which client ids exist)."""
    registered = await register(server.http)
    response = await server.http.get(
        "/register/no-such-client", headers=bearer(registered["registration_access_token"])
    )
    assert_invalid_token(response)


async def test_s2_1_registration_token_is_not_an_access_token(server: Server) -> None:
    """REG-19: the RAT works only at registration_client_uri: at /userinfo it is 401."""
    registered = await register(server.http)
    response = await server.http.get(
        "/userinfo", headers=bearer(registered["registration_access_token"])
    )
    assert response.status_code == 401
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_s2_1_access_token_is_not_a_registration_token(server: Server) -> None:
    """REG-19: an access token of the client at its registration_client_uri -> 401."""
    registered = await register(server.http)
    tokens = await tokens_for(server.http, Authorization(registered["client_id"]))
    response = await config(server, registered, headers=bearer(tokens["access_token"]))
    assert_invalid_token(response)


async def test_s2_1_forged_token_is_401(server: Server) -> None:
    """REG-19: a RAT differing from the issued one in its last character -> 401."""
    registered = await register(server.http)
    token = registered["registration_access_token"]
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert_invalid_token(await config(server, registered, headers=bearer(forged)))


# --- §2.2: update -------------------------------------------------------------------------------


async def test_s2_2_put_replaces_redirect_uris_enforced_at_authorize(server: Server) -> None:
    """REG-20: PUT with a changed redirect_uris -> 200 new metadata; the old redirect is
    refused at /authorize at once, with an error page and no redirect."""
    http = server.http
    registered = await register(http)
    response = await config(
        server, registered, "PUT", json=update_of(registered, redirect_uris=[NEW_REDIRECT])
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["redirect_uris"] == [NEW_REDIRECT]
    assert (await config(server, registered)).json()["redirect_uris"] == [NEW_REDIRECT]
    old = Authorization(registered["client_id"], redirect_uri=LOOPBACK)
    assert_no_client_redirect(await http.get("/authorize", params=old.params))
    new = Authorization(registered["client_id"], redirect_uri=NEW_REDIRECT)
    result = await authorize_code(http, new)
    assert "code" in result


async def test_s2_2_put_omitted_fields_are_removed(server: Server) -> None:
    """REG-20: members left out of the PUT are removed or defaulted."""
    registered = await register(server.http, client_name="named", client_uri="https://a.example/")
    body = {
        "client_id": registered["client_id"],
        "redirect_uris": [NEW_REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
    }
    response = await config(server, registered, "PUT", json=body)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert "client_name" not in updated
    assert "client_uri" not in updated
    assert updated["grant_types"] == ["authorization_code"]
    assert updated["client_id"] == registered["client_id"]
    assert updated["registration_client_uri"] == registered["registration_client_uri"]


async def test_s2_2_put_with_matching_client_secret_accepted(server: Server) -> None:
    """REG-20: a confidential client may send its current client_secret in the PUT."""
    registered = await register(server.http, token_endpoint_auth_method="client_secret_post")
    body = update_of(registered, client_name="renamed")
    assert body["client_secret"] == registered["client_secret"]
    response = await config(server, registered, "PUT", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["client_name"] == "renamed"
    assert "client_secret" not in response.json() or (
        response.json()["client_secret"] == registered["client_secret"]
    )


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "someone-else"},
        {"client_id": None},
        {"client_secret": "not-the-secret"},
        {"registration_access_token": "x"},
        {"registration_client_uri": "https://evil.example/"},
        {"client_id_issued_at": 1},
        {"client_secret_expires_at": 1},
        {"token_endpoint_auth_method": "none"},
        {"grant_types": ["implicit"]},
        {"scope": "openid bogus"},
        {"client_name": 5},
    ],
)
async def test_s2_2_put_bad_metadata_is_400_and_changes_nothing(
    server: Server, change: dict[str, Any]
) -> None:
    """REG-21: mismatched client_id or secret, server-managed fields, bad metadata -> 400
    invalid_client_metadata, and the registration is unchanged."""
    registered = await register(server.http, token_endpoint_auth_method="client_secret_basic")
    body = update_of(registered, redirect_uris=[NEW_REDIRECT], **change)
    if change.get("client_id", "") is None:
        del body["client_id"]
    response = await config(server, registered, "PUT", json=body)
    assert_error(response, "invalid_client_metadata")
    assert (await config(server, registered)).json()["redirect_uris"] == [LOOPBACK]


@pytest.mark.parametrize("uri", ["http://evil.example/cb", "javascript:alert(1)", "https://a/#f"])
async def test_s2_2_put_bad_redirect_is_invalid_redirect_uri(server: Server, uri: str) -> None:
    """REG-21: PUT with an invalid redirect -> 400 invalid_redirect_uri, metadata unchanged."""
    registered = await register(server.http)
    response = await config(
        server, registered, "PUT", json=update_of(registered, redirect_uris=[uri])
    )
    assert_error(response, "invalid_redirect_uri")
    assert (await config(server, registered)).json()["redirect_uris"] == [LOOPBACK]


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"\xff", b"[" * 30_000])
async def test_s2_2_put_malformed_body_is_400(server: Server, raw: bytes) -> None:
    """REG-21, ERR-2: a malformed PUT body -> 400 invalid_client_metadata, never 500."""
    registered = await register(server.http)
    response = await config(
        server,
        registered,
        "PUT",
        content=raw,
        headers={
            **bearer(registered["registration_access_token"]),
            "Content-Type": "application/json",
        },
    )
    assert_error(response, "invalid_client_metadata")


async def test_s2_2_put_with_bad_token_is_401_before_the_body(server: Server) -> None:
    """REG-19: a PUT with an invalid RAT is 401 whatever its body (authentication first)."""
    registered = await register(server.http)
    response = await config(
        server, registered, "PUT", headers=bearer("garbage"), json={"client_id": "other"}
    )
    assert_invalid_token(response)


async def consent_form(server: Server, registered: dict[str, Any]) -> dict[str, str]:
    """Start an authorization request, log in and open the consent page: the page's form
    fields, with the request pending server-side."""
    response = await server.http.get(
        "/authorize", params=Authorization(registered["client_id"]).params
    )
    response = await login(server.http, response.headers["location"])
    page = await server.http.get(response.headers["location"])
    assert page.status_code == 200, page.text
    return {"request": form_field(page.text, "request"), "csrf": form_field(page.text, "csrf")}


@pytest.mark.parametrize("decision", ["allow", "deny"])
async def test_s2_2_removed_redirect_uri_gets_nothing_for_a_pending_request(
    server: Server, decision: str
) -> None:
    """REG-20: a redirect URI removed by PUT while a request was pending receives neither a
    code nor an error: the consent answers with an error page (OAuth 2.1 §4.1.2.1)."""
    registered = await register(server.http)
    form = await consent_form(server, registered)
    body = update_of(registered, redirect_uris=[NEW_REDIRECT])
    assert (await config(server, registered, "PUT", json=body)).status_code == 200
    response = await server.http.post("/consent", data={**form, "decision": decision})
    assert_no_client_redirect(response)
    assert "invalid_request" in response.text


# --- §2.3: delete -------------------------------------------------------------------------------


async def test_s2_3_delete_ends_the_client(server: Server) -> None:
    """REG-22: DELETE -> 204 without a body; then /authorize shows an error page, /token and
    its refresh tokens answer invalid_client, and the RAT is 401."""
    http = server.http
    registered = await register(http)
    auth = Authorization(registered["client_id"])
    tokens = await tokens_for(http, auth)
    pending = await authorize_code(http, auth)
    response = await config(server, registered, "DELETE")
    assert response.status_code == 204
    assert response.content == b""
    assert_no_client_redirect(await http.get("/authorize", params=auth.params))
    refreshed = await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": registered["client_id"],
        },
    )
    assert_error(refreshed, "invalid_client", 401)
    redeemed = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": pending["code"],
            "code_verifier": auth.verifier,
            "redirect_uri": auth.redirect_uri,
            "client_id": registered["client_id"],
        },
    )
    assert_error(redeemed, "invalid_client", 401)
    for method in ("GET", "PUT", "DELETE"):
        body = update_of(registered) if method == "PUT" else None
        assert_invalid_token(await config(server, registered, method, json=body))
    info = await http.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert info.status_code == 401


async def test_s2_3_deleted_client_gets_no_code_for_a_pending_request(server: Server) -> None:
    """REG-22: a client deleted while a request was pending gets no code from it: the
    consent answers with an error page."""
    registered = await register(server.http)
    form = await consent_form(server, registered)
    assert (await config(server, registered, "DELETE")).status_code == 204
    response = await server.http.post("/consent", data={**form, "decision": "allow"})
    assert_no_client_redirect(response)


async def test_s2_3_delete_leaves_other_clients_alone(server: Server) -> None:
    """REG-22: deleting one client does not touch another."""
    a = await register(server.http)
    b = await register(server.http)
    assert (await config(server, a, "DELETE")).status_code == 204
    assert (await config(server, b)).status_code == 200
    tokens = await tokens_for(server.http, Authorization(b["client_id"]))
    assert tokens["token_type"] == "Bearer"


async def test_s2_3_post_to_client_uri_is_405(server: Server) -> None:
    """ERR-4: POST registration_client_uri -> 405 with Allow."""
    registered = await register(server.http)
    response = await config(server, registered, "POST", json={})
    assert response.status_code == 405
    assert {"GET", "PUT", "DELETE"} <= {m.strip() for m in response.headers["allow"].split(",")}
