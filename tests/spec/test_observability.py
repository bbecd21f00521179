"""Issue 8: /metrics moves as requests flow, audit events are written for what committed (and
only that), and /healthz makes actor round trips."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from oauthd.actors import Env
from oauthd.actors.directory import Directory
from oauthd.actors.shard import CommitThenRaise, command
from oauthd.errors import InvalidGrant
from oauthd.keys import KeyringHolder
from oauthd.logs import LineFormat
from oauthd.runtime import SystemClock
from oauthd.settings import LimitSettings, MetricsSettings, Rate, Settings
from tests.conftest import ManualClock, Server, running_server
from tests.flow import Authorization, register, tokens_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: httpx.AsyncClient, **headers: str) -> Samples:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def machine(http: httpx.AsyncClient) -> dict[str, Any]:
    return await register(
        http,
        redirect_uris=[],
        grant_types=["client_credentials"],
        token_endpoint_auth_method="client_secret_basic",
        scope="mcp:tools",
    )


async def client_token(http: httpx.AsyncClient, client: dict[str, Any]) -> httpx.Response:
    return await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )


# --- /metrics ----------------------------------------------------------------------------------


async def test_metrics_count_a_token_request_between_two_scrapes(server: Server) -> None:
    """A token request moves tokens_issued{grant_type}, the /token request counter and its
    latency histogram; actor and key gauges are read at scrape time."""
    client = await machine(server.http)
    before = await scrape(server.http)
    assert (await client_token(server.http, client)).status_code == 200
    after = await scrape(server.http)
    grant = {"grant_type": "client_credentials", "tenant": "default"}
    assert value(after, "oauthd_tokens_issued_total", **grant) == (
        value(before, "oauthd_tokens_issued_total", **grant) + 1
    )
    ok = {"endpoint": "/token", "status": "200", "tenant": "default"}
    assert value(after, "oauthd_http_requests_total", **ok) == (
        value(before, "oauthd_http_requests_total", **ok) + 1
    )
    assert (
        value(
            after, "oauthd_http_request_duration_seconds_count", endpoint="/token", tenant="default"
        )
        >= 1
    )
    assert value(after, "oauthd_actors_live") >= 2  # the client's shard, keys, directory
    assert value(after, "oauthd_actor_activations_total") >= value(after, "oauthd_actors_live")
    assert value(after, "oauthd_signing_keys", state="active") == 2  # ES256 and RS256 (ID)
    assert value(after, "oauthd_signing_keys", state="retired") == 0


async def test_metrics_label_routes_by_template_and_garbage_as_other(server: Server) -> None:
    """Endpoint labels are route templates; unmatched paths share `other` (no label explosion)."""
    client = await register(server.http)
    headers = {"Authorization": f"Bearer {client['registration_access_token']}"}
    await server.http.get(f"/register/{client['client_id']}", headers=headers)
    for i in range(5):
        await server.http.get(f"/garbage-{i}")
    samples = await scrape(server.http)
    endpoints = {dict(labels).get("endpoint") for (_name, labels) in samples}
    assert "/register/<client_id>" in endpoints
    assert (
        value(
            samples, "oauthd_http_requests_total", endpoint="other", status="404", tenant="default"
        )
        == 5
    )
    assert not any(e and "garbage" in e for e in endpoints)
    assert not any(e and client["client_id"] in e for e in endpoints)


async def test_metrics_count_refresh_reuse(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """A rotated refresh token replayed after the grace window counts one reuse detection."""
    async with running_server(make_settings(), clock) as server:
        client = await register(server.http)
        tokens = await tokens_for(server.http, Authorization(client["client_id"]))
        form = {"grant_type": "refresh_token", "client_id": client["client_id"]}
        rotated = await server.http.post(
            "/token", data={**form, "refresh_token": tokens["refresh_token"]}
        )
        assert rotated.status_code == 200
        clock.advance(server.settings.tokens.refresh_grace_s + 1)
        replay = await server.http.post(
            "/token", data={**form, "refresh_token": tokens["refresh_token"]}
        )
        assert replay.json()["error"] == "invalid_grant"
        samples = await scrape(server.http)
    assert value(samples, "oauthd_refresh_token_reuse_total") == 1
    assert (
        value(samples, "oauthd_tokens_issued_total", grant_type="refresh_token", tenant="default")
        == 1
    )


async def test_metrics_count_device_code_throttling(server: Server) -> None:
    """The /device throttle's refusals are counted as rate_limited{endpoint="/device"}."""
    for _ in range(10):
        assert (
            await server.http.get("/device", params={"user_code": "BBBB-BBBB"})
        ).status_code == 400
    assert (await server.http.get("/device", params={"user_code": "BBBB-BBBB"})).status_code == 429
    samples = await scrape(server.http)
    assert value(samples, "oauthd_rate_limited_total", endpoint="/device", tenant="default") == 1


async def test_metrics_with_a_token_refuse_a_scraper_without_it(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With metrics.bearer_token_env set, /metrics answers 401 without the token, 200 with it."""
    monkeypatch.setenv("METRICS_TOKEN_FOR_TEST", "scrape-me-please")
    settings = make_settings(metrics=MetricsSettings(bearer_token_env="METRICS_TOKEN_FOR_TEST"))
    async with running_server(settings) as server:
        refused = await server.http.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = await server.http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        await scrape(server.http, Authorization="Bearer scrape-me-please")


async def test_metrics_disabled_is_404(make_settings: Callable[..., Settings]) -> None:
    """metrics.enabled = false removes the endpoint."""
    async with running_server(make_settings(metrics=MetricsSettings(enabled=False))) as server:
        assert (await server.http.get("/metrics")).status_code == 404


# --- /healthz ----------------------------------------------------------------------------------


async def test_healthz_is_503_when_the_data_dir_is_not_writable(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readiness: a data dir the process cannot write turns /healthz 503, problem named."""
    assert (await server.http.get("/healthz")).json()["problems"] == []
    monkeypatch.setattr(os, "access", lambda *_args, **_kw: False)  # root ignores chmod
    response = await server.http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["data_dir is not writable"]


# --- audit events ------------------------------------------------------------------------------


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> Callable[[str], list[dict[str, Any]]]:
    """The fields of each captured audit event of a kind."""
    caplog.set_level(logging.INFO, logger="oauthd.audit")

    def events(kind: str) -> list[dict[str, Any]]:
        return [
            dict(r.audit)  # type: ignore[attr-defined]  # set through logging's extra
            for r in caplog.records
            if r.name == "oauthd.audit" and r.getMessage() == kind
        ]

    return events


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def test_audit_token_issued_names_grant_client_subject_and_jti(
    server: Server, audit_log: Callable[[str], list[dict[str, Any]]]
) -> None:
    """token_issued carries grant_type, client_id, sub and the jti, never the token."""
    client = await machine(server.http)
    token = (await client_token(server.http, client)).json()["access_token"]
    (event,) = audit_log("token_issued")
    claims = jwt_claims(token)
    assert event["grant_type"] == "client_credentials"
    assert event["client_id"] == client["client_id"] == event["sub"]
    assert event["jti"] == claims["jti"]
    assert token not in json.dumps(event)
    assert audit_log("client_registered")[0]["client_id"] == client["client_id"]


async def test_audit_login_consent_revocation_and_deletion(
    server: Server, audit_log: Callable[[str], list[dict[str, Any]]]
) -> None:
    """A failed and a good dev login, consent, revocation and RFC 7592 deletion are audited."""
    client = await register(server.http)
    auth = Authorization(client["client_id"])
    first = await server.http.get("/authorize", params=auth.params)
    from tests.flow import login

    wrong = await login(server.http, first.headers["location"], ("alice@example.com", "nope"))
    assert wrong.status_code == 401
    tokens = await tokens_for(server.http, auth)
    revoked = await server.http.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": client["client_id"]}
    )
    assert revoked.status_code == 200
    deleted = await server.http.delete(
        f"/register/{client['client_id']}",
        headers={"Authorization": f"Bearer {client['registration_access_token']}"},
    )
    assert deleted.status_code == 204
    assert audit_log("login_failed") == [{"method": "dev", "email": "alice@example.com"}]
    (login_ok,) = audit_log("login_succeeded")
    assert login_ok["method"] == "dev"
    (consent,) = audit_log("consent_granted")
    assert consent["client_id"] == client["client_id"] == audit_log("token_revoked")[0]["client_id"]
    assert consent["sub"] == login_ok["sub"]
    assert audit_log("client_deleted") == [{"client_id": client["client_id"], "by": "rfc7592"}]


async def test_audit_refresh_reuse_names_the_revoked_family(
    make_settings: Callable[..., Settings],
    clock: ManualClock,
    audit_log: Callable[[str], list[dict[str, Any]]],
) -> None:
    """refresh_reuse_detected is written, after COMMIT, although the request fails."""
    async with running_server(make_settings(), clock) as server:
        client = await register(server.http)
        tokens = await tokens_for(server.http, Authorization(client["client_id"]))
        form = {"grant_type": "refresh_token", "client_id": client["client_id"]}
        await server.http.post("/token", data={**form, "refresh_token": tokens["refresh_token"]})
        clock.advance(server.settings.tokens.refresh_grace_s + 1)
        await server.http.post("/token", data={**form, "refresh_token": tokens["refresh_token"]})
    (event,) = audit_log("refresh_reuse_detected")
    assert event["client_id"] == client["client_id"]
    assert event["family"]


class Boom:
    """A message whose handler audits, then fails."""


class Replayed:
    """A message whose handler audits, then commits and answers an error."""


class FailingDirectory(Directory):
    @command(Boom)
    def boom(self, _message: Boom) -> None:
        self.audit("client_registered", client_id="never")
        raise ValueError("rolled back")

    @command(Replayed)
    def replayed(self, _message: Replayed) -> None:
        self.audit("refresh_reuse_detected", client_id="kept")
        raise CommitThenRaise(InvalidGrant("replayed"))


async def test_audit_events_of_a_rolled_back_message_are_not_written(
    make_settings: Callable[..., Settings], audit_log: Callable[[str], list[dict[str, Any]]]
) -> None:
    """Events are written after COMMIT: a handler that raised writes none; CommitThenRaise
    commits and writes them."""
    env = Env(make_settings(), SystemClock(), KeyringHolder(), None)
    env.tenant_dir("default").mkdir(parents=True)
    actor = FailingDirectory(env, "default")
    await actor.open()
    with pytest.raises(ValueError, match="rolled back"):
        await actor.receive(Boom())
    with pytest.raises(InvalidGrant):
        await actor.receive(Replayed())
    await actor.close()
    assert audit_log("client_registered") == []
    assert audit_log("refresh_reuse_detected") == [{"client_id": "kept"}]


def test_audit_fields_that_name_a_credential_are_refused() -> None:
    """A field called like a secret (token, code, password ...) never reaches the log."""
    from oauthd.audit import audit

    with pytest.raises(ValueError, match="refresh_token"):
        audit("token_issued", refresh_token="rt_x")


def test_audit_line_formats_json_members_and_escaped_text() -> None:
    """JSON: event and fields are members; text: key=value, odd values JSON-quoted so a
    newline cannot forge a line."""
    fields: dict[str, str | int | bool] = {"email": "a@b.c\nFORGED", "immediate": True}
    line = LineFormat(as_json=True).line(0.0, "INFO", "oauthd.audit", "key_rotated", "", fields)
    entry = json.loads(line)
    assert entry["event"] == "key_rotated"
    assert entry["email"] == "a@b.c\nFORGED"
    text = LineFormat(as_json=False).line(0.0, "INFO", "oauthd.audit", "login_failed", "", fields)
    assert text.count("\n") == 1
    assert 'email="a@b.c\\nFORGED" immediate=true' in text


def test_settings_name_metrics_token_env_is_not_an_unknown_override(tmp_path: Path) -> None:
    """An OAUTHD_-named metrics token variable is a named secret, not a typo'd override."""
    from oauthd.settings import load_settings

    path = tmp_path / "m.toml"
    path.write_text('issuer = "https://a.example"\n[metrics]\nbearer_token_env = "OAUTHD_SCRAPE"\n')
    settings = load_settings(path, {"OAUTHD_SCRAPE": "x"})
    assert settings.metrics.bearer_token_env == "OAUTHD_SCRAPE"


async def test_metrics_count_every_rate_limit_refusal_by_route(
    make_settings: Callable[..., Settings],
) -> None:
    """A 429 from any limit counts as rate_limited{endpoint}, fast-path routes included."""
    limits = LimitSettings(token_per_ip=Rate(2, 60))
    async with running_server(make_settings(limits=limits)) as server:
        statuses = [
            (
                await server.http.post("/token", data={"grant_type": "client_credentials"})
            ).status_code
            for _ in range(3)
        ]
        assert statuses[-1] == 429
        samples = await scrape(server.http)
    assert value(samples, "oauthd_rate_limited_total", endpoint="/token", tenant="default") == 1
    assert (
        value(
            samples, "oauthd_http_requests_total", endpoint="/token", status="429", tenant="default"
        )
        == 1
    )
