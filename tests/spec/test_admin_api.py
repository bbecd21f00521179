"""The tenant admin API over HTTP against a real running oauthd, its admin listener on a port
of its own (README "The admin API", web/admin.py): every operation of `oauthd tenants` and
`oauthd keys` in JSON, bearer tokens from the environment (RFC 6750 §2.1, §3), and nothing of
it on the public port."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from oauthd.actors.registry import REGISTRY_POLL_S
from oauthd.audit import AUDIT
from oauthd.settings import AdminSettings, Rate, Settings
from tests.conftest import ManualClock, Server, running_server
from tests.flow import RESOURCE, basic, register_machine
from tests.interop.test_cli import free_port

VAR = "ADMIN_API_TOKENS_TEST"
TOKEN = secrets.token_urlsafe(32)
OTHER = secrets.token_urlsafe(32)
SETTINGS = (
    "[registration]\nallow_client_credentials = true\n"
    f'[[resources]]\nuri = "{RESOURCE}"\nscopes = ["mcp:tools"]\n'
)
WAIT_S = REGISTRY_POLL_S * 2.5  # every process sees a registry change within REGISTRY_POLL_S
FAILURES = AdminSettings().auth_failures
JWKS = "/t/acme/.well-known/jwks.json"


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def admin_server(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    tokens: str = TOKEN,
    clock: ManualClock | None = None,
    failures: Rate = FAILURES,
) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    """A running oauthd with the admin API on a free port; (the server, a client of the API)."""
    monkeypatch.setenv(VAR, tokens)
    port = free_port()
    admin = AdminSettings(listen=f"127.0.0.1:{port}", token_env=VAR, auth_failures=failures)
    async with (
        running_server(make_settings(admin=admin), clock) as server,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
    ):
        yield server, http


@pytest.fixture
async def api(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    async with admin_server(make_settings, monkeypatch) as pair:
        yield pair


async def add(http: httpx.AsyncClient, tenant: str = "acme", **body: str) -> dict[str, Any]:
    response = await http.post("/tenants", json={"id": tenant, **body}, headers=bearer())
    assert response.status_code == 201, response.text
    added: dict[str, Any] = response.json()
    return added


async def machine_token(http: httpx.AsyncClient, prefix: str = "") -> str:
    """An access token (a JWT of this server) from a client_credentials client at `prefix`."""
    client = await register_machine(http, prefix)
    issued = await http.post(
        f"{prefix}/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        headers=basic(client),
    )
    assert issued.status_code == 200, issued.text
    token: str = issued.json()["access_token"]
    return token


# --- the operations --------------------------------------------------------------------------


async def test_add_show_list_update_disable_enable(api: tuple[Server, httpx.AsyncClient]) -> None:
    """Each operation answers the CLI's --json shape, and the public port acts on it at once."""
    server, http = api
    assert (await http.get("/tenants", headers=bearer())).json() == []
    added = await add(http, settings=SETTINGS)
    assert added["tenant"] == "acme"
    assert added["state"] == "active"
    assert added["issuer"] == server.settings.issuer + "/t/acme"
    assert set(added) == {"tenant", "issuer", "state", "settings", "created_at", "updated_at"}
    assert (await server.http.get(JWKS)).status_code == 200
    shown = await http.get("/tenants/acme", headers=bearer())
    assert shown.status_code == 200
    assert shown.json() == added
    assert shown.headers["cache-control"] == "no-store"
    assert (await http.get("/tenants", headers=bearer())).json() == [added]
    changed = await http.patch("/tenants/acme", json={"settings": ""}, headers=bearer())
    assert changed.status_code == 200
    assert changed.json()["settings"] == ""
    disabled = await http.post("/tenants/acme/disable", headers=bearer())
    assert disabled.status_code == 200
    assert disabled.json()["state"] == "disabled"
    await trio.sleep(WAIT_S)
    assert (await server.http.get(JWKS)).status_code == 403
    enabled = await http.post("/tenants/acme/enable", headers=bearer())
    assert enabled.status_code == 200
    assert enabled.json()["state"] == "active"
    await trio.sleep(WAIT_S)
    assert (await server.http.get(JWKS)).status_code == 200


async def test_remove_stops_the_tenant_and_deletes_its_directory(
    api: tuple[Server, httpx.AsyncClient],
) -> None:
    """DELETE answers once the tenant's directory is gone; the tenant is a 404 everywhere."""
    server, http = api
    await add(http)
    assert (await server.http.get(JWKS)).status_code == 200
    directory = server.settings.data_dir / "acme"
    assert directory.is_dir()
    removed = await http.delete("/tenants/acme", headers=bearer())
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"tenant": "acme", "removed": True, "directory": str(directory)}
    assert not directory.exists()
    assert (await server.http.get(JWKS)).status_code == 404
    assert (await http.get("/tenants/acme", headers=bearer())).status_code == 404


async def test_key_rotation_publishes_a_new_key(api: tuple[Server, httpx.AsyncClient]) -> None:
    """POST /tenants/<id>/keys/rotate is `oauthd keys rotate --tenant`: the new key is listed
    and, with immediate, signs; the tenant's JWKS publishes it; `default` has its own keys."""
    server, http = api
    await add(http)
    before = (await http.get("/tenants/acme/keys", headers=bearer())).json()
    rotated = await http.post(
        "/tenants/acme/keys/rotate", json={"immediate": True}, headers=bearer()
    )
    assert rotated.status_code == 200, rotated.text
    keys = rotated.json()
    new = {k["kid"] for k in keys} - {k["kid"] for k in before}
    assert new
    assert all(k["signing"] for k in keys if k["kid"] in new)
    assert set(keys[0]) == {
        "kid",
        "alg",
        "state",
        "signing",
        "activate_at",
        "retire_at",
        "remove_at",
    }
    published = {k["kid"] for k in (await server.http.get(JWKS)).json()["keys"]}
    assert new <= published
    root = await http.get("/tenants/default/keys", headers=bearer())  # as `--tenant default`
    assert root.status_code == 200
    assert not {k["kid"] for k in root.json()} & {k["kid"] for k in keys}


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ("[tokens]\naccess_token_ttl_s = -1\n", "tokens.access_token_ttl_s"),
        ('listen = "127.0.0.1:1"\n', "listen"),
        ('[admin]\nlisten = "127.0.0.1:2"\n', "admin"),
        ("[tokens]\nnope = 1\n", "tokens.nope"),
    ],
)
async def test_bad_settings_are_invalid_request_naming_the_key(
    api: tuple[Server, httpx.AsyncClient], settings: str, key: str
) -> None:
    """Per-tenant settings are checked like the file: 400 invalid_request naming the key;
    server-wide keys ([admin], listen) are refused; nothing is created."""
    _server, http = api
    refused = await http.post(
        "/tenants", json={"id": "acme", "settings": settings}, headers=bearer()
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_request"
    assert key in refused.json()["error_description"]
    assert (await http.get("/tenants/acme", headers=bearer())).status_code == 404


async def test_existing_tenant_is_409_and_unknown_is_404(
    api: tuple[Server, httpx.AsyncClient],
) -> None:
    """RFC 9110 §15.5.10: adding an id that exists conflicts (409); every operation on an
    unknown tenant is 404 not_found."""
    _server, http = api
    await add(http)
    again = await http.post("/tenants", json={"id": "acme"}, headers=bearer())
    assert again.status_code == 409
    assert again.json()["error"] == "invalid_request"
    for method, path in [
        ("GET", "/tenants/nope"),
        ("PATCH", "/tenants/nope"),
        ("DELETE", "/tenants/nope"),
        ("POST", "/tenants/nope/disable"),
        ("POST", "/tenants/nope/enable"),
        ("GET", "/tenants/nope/keys"),
        ("POST", "/tenants/nope/keys/rotate"),
    ]:
        json_body = {} if method == "PATCH" else None
        response = await http.request(method, path, json=json_body, headers=bearer())
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"id": "acme"', "application/json", 400),  # not JSON
        (b'["acme"]', "application/json", 400),  # not an object
        (b'{"issuer": "x"}', "application/json", 400),  # id missing
        (b'{"id": "acme", "admin": true}', "application/json", 400),  # unknown member
        (b'{"id": 7}', "application/json", 400),  # not a string
        (b'{"id": "Not An Id"}', "application/json", 400),  # not a tenant id
        (b'{"id": "default"}', "application/json", 400),  # the file's tenant
        (b"id=acme", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_malformed_bodies_are_4xx(
    api: tuple[Server, httpx.AsyncClient], body: bytes, content_type: str, status: int
) -> None:
    """A body the API cannot use is a clear 4xx in JSON (RFC 9110 §15.5.1, §15.5.16), never 500."""
    _server, http = api
    headers = {**bearer(), "Content-Type": content_type}
    response = await http.post("/tenants", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == "invalid_request"


async def test_wrong_method_is_405_with_allow(api: tuple[Server, httpx.AsyncClient]) -> None:
    """RFC 9110 §15.5.6: 405 with Allow; an unknown path is 404."""
    _server, http = api
    wrong = await http.put("/tenants", headers=bearer())
    assert wrong.status_code == 405
    assert {"GET", "POST"} <= {m.strip() for m in wrong.headers["allow"].split(",")}
    assert (await http.get("/nothing-here", headers=bearer())).status_code == 404


# --- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, 'Bearer realm="oauthd-admin"'),
        (
            {"Authorization": f"Bearer {OTHER}"},
            'Bearer realm="oauthd-admin", error="invalid_token"',
        ),
        ({"Authorization": f"Basic {TOKEN}"}, 'Bearer realm="oauthd-admin", error="invalid_token"'),
        (
            {"Authorization": f"Bearer {TOKEN}x"},
            'Bearer realm="oauthd-admin", error="invalid_token"',
        ),
        (
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            'Bearer realm="oauthd-admin", error="invalid_token"',
        ),
    ],
)
async def test_missing_or_wrong_credentials_are_401(
    api: tuple[Server, httpx.AsyncClient], headers: dict[str, str], challenge: str
) -> None:
    """RFC 6750 §3: 401 with a Bearer challenge, without an error code when no credentials were
    sent (§3.1); before routing, so nothing is revealed or changed."""
    _server, http = api
    for method, path in [("GET", "/tenants"), ("POST", "/tenants"), ("GET", "/nothing-here")]:
        response = await http.request(method, path, json={"id": "acme"}, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == challenge
        assert response.json()["error"] == "invalid_token"
    assert (await http.get("/tenants", headers=bearer())).json() == []


async def test_token_only_in_the_authorization_header(
    api: tuple[Server, httpx.AsyncClient],
) -> None:
    """RFC 6750 §2: only the header method is accepted here; the token in the query or in a
    form body is not a credential."""
    _server, http = api
    query = await http.get("/tenants", params={"access_token": TOKEN})
    assert query.status_code == 401
    form = await http.post("/tenants", data={"access_token": TOKEN, "id": "acme"})
    assert form.status_code == 401


async def test_credentials_a_tenant_issued_are_refused(
    api: tuple[Server, httpx.AsyncClient],
) -> None:
    """Replayed credentials: a valid access token (a JWT this server signed, at the root or at a
    tenant) and a tenant's registration access token are 401 at the admin API."""
    server, http = api
    await add(http, settings=SETTINGS)
    registered = await server.http.post(
        "/t/acme/register",
        json={"redirect_uris": ["http://127.0.0.1:5555/cb"], "token_endpoint_auth_method": "none"},
    )
    assert registered.status_code == 201, registered.text
    for credential in (
        await machine_token(server.http),
        await machine_token(server.http, "/t/acme"),
        registered.json()["registration_access_token"],
    ):
        refused = await http.get("/tenants", headers=bearer(credential))
        assert refused.status_code == 401, refused.text
        assert "invalid_token" in refused.headers["www-authenticate"]


async def test_a_rotated_out_token_is_refused_after_restart(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rotation without downtime: with both tokens in the variable both work; once the old one
    is removed and the server restarted, it is refused (401)."""
    async with admin_server(make_settings, monkeypatch, tokens=f"{TOKEN}, {OTHER}") as (_s, http):
        for token in (TOKEN, OTHER):
            assert (await http.get("/tenants", headers=bearer(token))).status_code == 200
    async with admin_server(make_settings, monkeypatch, tokens=OTHER) as (_s, http):
        assert (await http.get("/tenants", headers=bearer(TOKEN))).status_code == 401
        assert (await http.get("/tenants", headers=bearer(OTHER))).status_code == 200


async def test_failed_authentications_are_limited_per_ip_and_audited(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past [admin] auth_failures from one IP: 429 with Retry-After (RFC 6585 §4), the right
    token included, until the window passes; each failure is an audit event without the token."""
    caplog.set_level(logging.INFO)
    async with admin_server(make_settings, monkeypatch, clock=clock, failures=Rate(3, 60.0)) as (
        _server,
        http,
    ):
        for _ in range(3):
            assert (await http.get("/tenants", headers=bearer(OTHER))).status_code == 401
        throttled = await http.get("/tenants", headers=bearer())
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) >= 1
        clock.advance(60)
        assert (await http.get("/tenants", headers=bearer())).status_code == 200
    assert (
        audited(caplog, "admin_auth_failed")
        == [{"ip": "127.0.0.1", "method": "GET", "path": "/tenants"}] * 3
    )
    assert not logged(caplog, TOKEN)
    assert not logged(caplog, OTHER)


def audited(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """The fields of each audit event `event` captured."""
    return [vars(r)["audit"] for r in caplog.records if r.name == AUDIT and r.getMessage() == event]


def logged(caplog: pytest.LogCaptureFixture, secret: str) -> bool:
    """Does any captured log record, message or fields, contain `secret`?"""
    return any(secret in r.getMessage() or secret in str(vars(r)) for r in caplog.records)


async def test_changes_are_audited_with_operation_and_tenant(
    api: tuple[Server, httpx.AsyncClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every change made through the API is one audit event naming the operation and the
    tenant, never the token."""
    caplog.set_level(logging.INFO)
    _server, http = api
    await add(http)
    await http.post("/tenants/acme/keys/rotate", headers=bearer())
    await http.post("/tenants/acme/disable", headers=bearer())
    events = audited(caplog, "admin_change")
    assert [(e["operation"], e["tenant"]) for e in events] == [
        ("add", "acme"),
        ("rotate_keys", "acme"),
        ("disable", "acme"),
    ]
    assert not logged(caplog, TOKEN)


# --- never on the public port ----------------------------------------------------------------


async def test_the_public_port_has_no_admin_routes(
    api: tuple[Server, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    """The admin paths on the public port are 404 even with the right token, change nothing,
    and the token is not logged; a tenant's routes do not reach it either."""
    caplog.set_level(logging.DEBUG)
    server, http = api
    await add(http)
    public = server.http
    for method, path in [
        ("GET", "/tenants"),
        ("POST", "/tenants"),
        ("GET", "/tenants/acme"),
        ("DELETE", "/tenants/acme"),
        ("POST", "/tenants/acme/disable"),
        ("POST", "/tenants/acme/keys/rotate"),
        ("GET", "/t/acme/tenants"),
        ("DELETE", "/t/acme/tenants/acme"),
    ]:
        response = await public.request(method, path, json={"id": "b"}, headers=bearer())
        assert response.status_code == 404, (method, path, response.status_code)
    assert (await http.get("/tenants", headers=bearer())).json()[0]["state"] == "active"
    assert not logged(caplog, TOKEN)
