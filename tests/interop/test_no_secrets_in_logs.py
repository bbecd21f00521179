"""No secret reaches the log: every flow runs against `oauthd serve` logging everything it can
(debug level, access log, audit), and every line is searched for every secret, token, code,
password and registration access token the flows issued or used."""

from __future__ import annotations

import secrets
import signal
from pathlib import Path
from typing import Any

import httpx

from tests.flow import Authorization, consent, follow, login, query_of, redeem, register
from tests.interop.test_cli import EXIT_S, Config, serving, write_config
from tests.spec.test_rfc8628_device import DEVICE, local, to_consent

PASSWORD = secrets.token_urlsafe(15)


def config_logging_everything(tmp_path: Path) -> Config:
    return write_config(
        tmp_path,
        '[[resources]]\nuri = "https://mcp.example.com/mcp"\nscopes = ["mcp:tools"]\n'
        f'[dev]\nusers = [{{ email = "alice@example.com", password = "{PASSWORD}" }}]\n'
        '[log]\nlevel = "debug"\nformat = "text"\naccess_log = true\n'
        "[registration]\nallow_client_credentials = true\n",  # the flows register a machine
    )


class Secrets:
    """Everything a log must never contain, as the flows meet it."""

    def __init__(self) -> None:
        self.values: set[str] = {PASSWORD}

    def add(self, *values: Any) -> None:
        for value in values:
            if isinstance(value, str) and value:
                self.values.add(value)

    def add_response(self, body: dict[str, Any]) -> None:
        for key in (
            "access_token",
            "refresh_token",
            "id_token",
            "client_secret",
            "registration_access_token",
            "device_code",
            "user_code",
        ):
            self.add(body.get(key))


async def run_every_flow(http: httpx.AsyncClient, found: Secrets) -> None:
    # Code flow with a wrong password first, then the right one; refresh; revocation.
    public = await register(http)
    found.add_response(public)
    auth = Authorization(public["client_id"])
    found.add(auth.verifier)
    first = await http.get("/authorize", params=auth.params)
    wrong_password = "wrong-" + secrets.token_urlsafe(12)
    found.add(wrong_password)
    refused = await login(http, first.headers["location"], ("alice@example.com", wrong_password))
    assert refused.status_code == 401
    signed_in = await login(http, first.headers["location"], ("alice@example.com", PASSWORD))
    result = query_of(await follow(http, signed_in))
    found.add(result["code"])
    tokens = (await redeem(http, auth, result["code"])).json()
    found.add_response(tokens)
    refreshed = await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": public["client_id"],
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    found.add_response(refreshed.json())
    revoked = await http.post(
        "/revoke",
        data={"token": refreshed.json()["refresh_token"], "client_id": public["client_id"]},
    )
    assert revoked.status_code == 200
    # RFC 7592 read with the registration access token.
    read = await http.get(
        f"/register/{public['client_id']}",
        headers={"Authorization": f"Bearer {public['registration_access_token']}"},
    )
    assert read.status_code == 200
    # client_credentials with a secret, and introspection by that client.
    machine = await register(
        http,
        redirect_uris=[],
        grant_types=["client_credentials"],
        token_endpoint_auth_method="client_secret_basic",
        scope="mcp:tools",
    )
    found.add_response(machine)
    basic = (machine["client_id"], machine["client_secret"])
    issued = await http.post("/token", data={"grant_type": "client_credentials"}, auth=basic)
    assert issued.status_code == 200, issued.text
    found.add_response(issued.json())
    introspected = await http.post(
        "/introspect", data={"token": issued.json()["access_token"]}, auth=basic
    )
    assert introspected.json()["active"] is True
    # Device flow, approved in the browser that is signed in.
    device_client = await register(
        http, redirect_uris=[], grant_types=[DEVICE, "refresh_token"], response_types=[]
    )
    found.add_response(device_client)
    started = await http.post(
        "/device_authorization", data={"client_id": device_client["client_id"], "scope": "openid"}
    )
    device = started.json()
    found.add_response(device)
    found.add(device["user_code"].replace("-", ""))
    approved = await consent(http, await to_consent(http, device["user_code"]))
    assert approved.status_code == 200, approved.text
    polled = await http.post(
        "/token",
        data={
            "grant_type": DEVICE,
            "device_code": device["device_code"],
            "client_id": device_client["client_id"],
        },
    )
    assert polled.status_code == 200, polled.text
    found.add_response(polled.json())
    assert local(device["verification_uri"]) == "/device"
    # Cookies: the browser id, the session, CSRF-bound state.
    found.add(*(cookie.value for cookie in http.cookies.jar))


def leaks(log: str, found: Secrets) -> list[str]:
    """(secret, line) pairs: the whole value, or its last 16 characters (its random part)."""
    hits = []
    for line in log.splitlines():
        for value in found.values:
            if value in line or (len(value) >= 24 and value[-16:] in line):
                hits.append(f"{value[:6]}... in: {line[:200]}")
    return hits


async def test_no_secret_token_code_or_password_in_any_log_line(tmp_path: Path) -> None:
    """docs/architecture.md "Logs, audit and metrics": nothing secret is ever logged, at debug
    level, with access log and audit."""
    config = config_logging_everything(tmp_path)
    found = Secrets()
    with serving(config, tmp_path / "serve.err") as server:
        async with httpx.AsyncClient(base_url=config.url, timeout=10) as http:
            await run_every_flow(http, found)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=EXIT_S) == 0
    log = server.log()
    for event in ("login_failed", "login_succeeded", "token_issued", "token_revoked"):
        assert f"oauthd.audit {event} " in log  # the log did see the flows
    assert " oauthd.access POST /token 200 " in log
    assert len(found.values) > 20
    assert leaks(log, found) == []
