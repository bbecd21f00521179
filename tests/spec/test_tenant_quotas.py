"""Per-tenant quotas over HTTP against a real running oauthd (README "Quotas"): dynamic clients,
users and requests, each enforced at the tenant whose settings set it and nowhere else; and the
bounded `tenant` label of /metrics (TENANT-1..3)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
import trio

from oauthd.actors.registry import AddTenant
from oauthd.settings import LimitSettings, MetricsSettings, Rate, Settings
from tests.conftest import ManualClock, Server, running_server
from tests.flow import Authorization, form_field
from tests.spec.test_cimd_client_metadata import auth_for, stack
from tests.spec.test_observability import scrape, value
from tests.spec.test_tenants import SETTINGS, registry

BOB = ("bob@example.com", "password-of-bob")
DEV_USERS = (
    "[dev]\nusers = [\n"
    '  { email = "alice@example.com", password = "password", name = "Alice" },\n'
    f'  {{ email = "{BOB[0]}", password = "{BOB[1]}", name = "Bob" }},\n]\n'
)
ALICE = ("alice@example.com", "password")
JWKS = "/.well-known/jwks.json"


@asynccontextmanager
async def tenants(
    settings: Settings, clock: ManualClock | None = None, **own: str
) -> AsyncIterator[Server]:
    """A running server whose registry has the tenants named in `own`, each with the
    per-tenant tables given (over the resources every tenant test uses)."""
    async with running_server(settings, clock) as server, registry(settings) as ask:
        for tenant, tables in own.items():
            await ask(AddTenant(tenant, "", SETTINGS + tables))
        yield server


async def register_at(http: httpx.AsyncClient, tenant: str) -> httpx.Response:
    body = {"redirect_uris": ["http://127.0.0.1:5555/cb"], "token_endpoint_auth_method": "none"}
    return await http.post(f"/t/{tenant}/register", json=body)


async def sign_in(server: Server, tenant: str, who: tuple[str, str]) -> httpx.Response:
    """A new browser at the tenant's /authorize, through its login form as `who`: the
    response to the login POST."""
    async with httpx.AsyncClient(base_url=server.base_url) as browser:
        client = (await register_at(browser, tenant)).json()
        auth = Authorization(client["client_id"])
        start = await browser.get(f"/t/{tenant}/authorize", params=auth.params)
        assert start.status_code in (302, 303), start.text
        location = start.headers["location"]
        assert urlsplit(location).path == f"/t/{tenant}/login"
        page = await browser.get(location)
        form = {
            "request": form_field(page.text, "request"),
            "csrf": form_field(page.text, "csrf"),
            "email": who[0],
            "password": who[1],
        }
        return await browser.post(f"/t/{tenant}/login", data=form, headers={"Accept": "text/html"})


# --- dynamic clients (registration.max_clients) --------------------------------------------------


async def test_tenant2_max_clients_counts_each_tenants_own_registrations(
    make_settings: Callable[..., Settings],
) -> None:
    """TENANT-2: tenant A's `registration.max_clients` counts A's clients only: A full answers
    503 temporarily_unavailable while B (and the root) still register."""
    full = "[registration]\nmax_clients = 2\nallow_client_credentials = true\n"
    async with tenants(make_settings(), a=full, b="") as server:
        http = server.http
        for _ in range(2):
            assert (await register_at(http, "a")).status_code == 201
        refused = await register_at(http, "a")
        assert refused.status_code == 503
        assert refused.json()["error"] == "temporarily_unavailable"
        assert "Retry-After" in refused.headers
        for _ in range(3):
            assert (await register_at(http, "b")).status_code == 201
        root = await http.post("/register", json={"redirect_uris": ["http://127.0.0.1/cb"]})
        assert root.status_code == 201


async def test_tenant2_document_clients_are_capped_per_tenant(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """TENANT-2: tenant A's `client_metadata.max_clients` counts A's document clients only: a
    second new document client at A is a 503 page, the same document is welcome at B."""
    own = '[client_metadata]\nallow_networks = ["127.0.0.1/32"]\n'
    async with stack(make_settings, clock) as s, registry(s.oauthd.settings) as ask:
        await ask(AddTenant("a", "", SETTINGS + own + "max_clients = 1\n"))
        await ask(AddTenant("b", "", SETTINGS + own))
        first, second = s.publish("/one.json"), s.publish("/two.json")

        async def authorize_at(tenant: str, client_id: str) -> httpx.Response:
            params = auth_for(client_id).params
            return await s.http.get(f"/t/{tenant}/authorize", params=params)

        started = await authorize_at("a", first)
        assert urlsplit(started.headers["location"]).path == "/t/a/login"
        refused = await authorize_at("a", second)
        assert refused.status_code == 503
        assert "temporarily_unavailable" in refused.text
        welcome = await authorize_at("b", second)
        assert urlsplit(welcome.headers["location"]).path == "/t/b/login"


# --- users (limits.max_users) --------------------------------------------------------------------


async def test_tenant2_max_users_refuses_a_new_user_at_one_tenant_only(
    make_settings: Callable[..., Settings],
) -> None:
    """TENANT-2: past tenant A's `limits.max_users` a new person's first login is an error page
    (503 temporarily_unavailable), never a 500; A's existing user still signs in, and the same
    new person signs in at B."""
    capped = f"[limits]\nmax_users = 1\n{DEV_USERS}"
    async with tenants(make_settings(), a=capped, b=DEV_USERS) as server:
        first = await sign_in(server, "a", ALICE)
        assert first.status_code in (302, 303), first.text
        refused = await sign_in(server, "a", BOB)
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith("text/html")
        assert "not accepting new accounts" in refused.text
        again = await sign_in(server, "a", ALICE)
        assert again.status_code in (302, 303), again.text
        elsewhere = await sign_in(server, "b", BOB)
        assert elsewhere.status_code in (302, 303), elsewhere.text


# --- requests (limits.tenant_requests) -----------------------------------------------------------


async def test_tenant1_request_quota_answers_429_at_one_tenant_only(
    make_settings: Callable[..., Settings],
    clock: ManualClock,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """TENANT-1: past tenant A's `limits.tenant_requests` every request to A is 429 with
    Retry-After, no-store and the JSON error body the other rate limits use; B is not
    affected, and A's budget comes back with time."""
    quota = "[limits]\ntenant_requests = { requests = 3, window_s = 60 }\n"
    async with tenants(make_settings(), clock, a=quota, b="") as server:
        http = server.http
        for _ in range(3):
            assert (await http.get(f"/t/a{JWKS}")).status_code == 200
        refused = await http.post("/t/a/token", data={"grant_type": "client_credentials"})
        assert refused.status_code == 429
        assert refused.json() == {
            "error": "temporarily_unavailable",
            "error_description": "this service is receiving too many requests; try again later",
        }
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["cache-control"] == "no-store"
        assert refused.headers["content-type"] == "application/json"
        assert refused.headers["x-content-type-options"] == "nosniff"
        for _ in range(5):
            assert (await http.get(f"/t/b{JWKS}")).status_code == 200
        clock.advance(20)  # 60 s / 3 requests: one more request's worth
        assert (await http.get(f"/t/a{JWKS}")).status_code == 200
        assert (await http.get(f"/t/a{JWKS}")).status_code == 429
        scraped = await scrape(http)
        refusals = {"endpoint": "*", "tenant": "a"}
        assert value(scraped, "oauthd_rate_limited_total", **refusals) == 2
        assert value(scraped, "oauthd_http_requests_total", status="429", **refusals) == 2
        assert value(scraped, "oauthd_rate_limited_total", endpoint="*", tenant="b") == 0


async def test_tenant1_a_refusal_carries_the_paths_cors_headers(
    make_settings: Callable[..., Settings],
    clock: ManualClock,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """TENANT-1, CORS-1: a browser client refused by the quota can read the 429 and its
    Retry-After (the API's CORS headers, the documents' on metadata); a page gets none."""
    quota = "[limits]\ntenant_requests = { requests = 1, window_s = 60 }\n"
    async with tenants(make_settings(), clock, a=quota) as server:
        http = server.http
        origin = {"Origin": "https://app.example"}
        assert (await http.get(f"/t/a{JWKS}")).status_code == 200
        api = await http.post(
            "/t/a/token", data={"grant_type": "client_credentials"}, headers=origin
        )
        assert api.status_code == 429
        assert api.headers["access-control-allow-origin"] == "*"
        assert "POST" in api.headers["access-control-allow-methods"]
        document = await http.get("/.well-known/oauth-authorization-server/t/a", headers=origin)
        assert document.status_code == 429
        assert document.headers["access-control-allow-origin"] == "*"
        page = await http.get("/t/a/login", headers=origin)
        assert page.status_code == 429
        assert "access-control-allow-origin" not in page.headers


async def test_tenant1_a_request_past_the_burst_waits_for_its_turn_within_tenant_queue_s(
    make_settings: Callable[..., Settings],
) -> None:
    """TENANT-1: past the burst a request whose turn comes within `limits.tenant_queue_s` is
    served late rather than refused: 60 requests at once against a burst of 50 (then one per
    20 ms) are all answered 200; with `tenant_queue_s = 0` a request past the burst is not."""
    queued = "[limits]\ntenant_requests = { requests = 50, window_s = 1 }\ntenant_queue_s = 5\n"
    at_once = "[limits]\ntenant_requests = { requests = 50, window_s = 3600 }\ntenant_queue_s = 0\n"
    async with tenants(make_settings(), a=queued, b=at_once) as server:
        statuses: dict[str, list[int]] = {"a": [], "b": []}

        async def get(tenant: str) -> None:
            statuses[tenant].append((await server.http.get(f"/t/{tenant}{JWKS}")).status_code)

        for tenant in ("a", "b"):
            async with trio.open_nursery() as nursery:
                for _ in range(60):
                    nursery.start_soon(get, tenant)
        assert statuses["a"] == [200] * 60
        assert sorted(statuses["b"]) == [200] * 50 + [429] * 10


async def test_tenant1_a_refusal_is_answered_once_tenant_queue_s_has_passed(
    make_settings: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """TENANT-1: a request whose turn is beyond `tenant_queue_s` is refused when that time has
    passed, not at once: a flooding client that waits for each answer is slowed to one request
    per `tenant_queue_s` per connection instead of costing the server its parsing nonstop."""
    quota = "[limits]\ntenant_requests = { requests = 1, window_s = 3600 }\ntenant_queue_s = 2\n"
    async with tenants(make_settings(), a=quota) as server:
        assert (await server.http.get(f"/t/a{JWKS}")).status_code == 200
        started = trio.current_time()
        assert (await server.http.get(f"/t/a{JWKS}")).status_code == 429
        assert trio.current_time() - started >= 2


async def test_tenant1_the_files_request_quota_spares_healthz_and_metrics(
    make_settings: Callable[..., Settings], autojump_clock: trio.testing.MockClock
) -> None:
    """TENANT-1: the default tenant's quota (from the file) refuses its own endpoints but never
    /healthz or /metrics, the whole server's; a path tenant is not counted in it."""
    limits = LimitSettings(tenant_requests=Rate(2, 60.0))
    async with tenants(make_settings(limits=limits), b="") as server:
        http = server.http
        statuses = [(await http.get(JWKS)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        for _ in range(3):
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get(f"/t/b{JWKS}")).status_code == 200
        scraped = await scrape(http)
        assert value(scraped, "oauthd_rate_limited_total", endpoint="*", tenant="default") == 1


# --- /metrics ------------------------------------------------------------------------------------


async def test_tenant3_tenant_label_is_bounded_by_max_tenant_labels(
    make_settings: Callable[..., Settings],
) -> None:
    """TENANT-3: with `metrics.max_tenant_labels = 1` the first tenant served keeps its own
    label, every later one is counted under `_other`, the root under `default`."""
    settings = make_settings(metrics=MetricsSettings(max_tenant_labels=1))
    async with tenants(settings, a="", b="", c="") as server:
        http = server.http
        for tenant in ("a", "b", "c"):
            assert (await http.get(f"/t/{tenant}{JWKS}")).status_code == 200
        assert (await http.get(JWKS)).status_code == 200
        scraped = await scrape(http)
        labels = {dict(labels).get("tenant") for (_name, labels) in scraped}
        assert labels - {None} == {"default", "a", "_other"}
        ok = {"endpoint": "/t/{tenant}" + JWKS, "status": "200"}
        assert value(scraped, "oauthd_http_requests_total", tenant="a", **ok) == 1
        assert value(scraped, "oauthd_http_requests_total", tenant="_other", **ok) == 2
        root = {"endpoint": JWKS, "status": "200", "tenant": "default"}
        assert value(scraped, "oauthd_http_requests_total", **root) == 1


async def test_tenant3_tokens_issued_carry_the_tenant_label(
    make_settings: Callable[..., Settings],
) -> None:
    """TENANT-3: oauthd_tokens_issued_total counts a tenant's token under its own label."""
    machine = "[registration]\nallow_client_credentials = true\n"
    async with tenants(make_settings(), a=machine) as server:
        http = server.http
        body = {
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "mcp:tools",
        }
        client = (await http.post("/t/a/register", json=body)).json()
        token = await http.post(
            "/t/a/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert token.status_code == 200, token.text
        scraped = await scrape(http)
        grant = {"grant_type": "client_credentials"}
        assert value(scraped, "oauthd_tokens_issued_total", tenant="a", **grant) == 1
        assert value(scraped, "oauthd_tokens_issued_total", tenant="default", **grant) == 0


async def test_tenant3_a_path_tenant_has_no_metrics_endpoint(
    make_settings: Callable[..., Settings],
) -> None:
    """TENANT-3: /metrics is the server's (every tenant's numbers): a tenant's /metrics is 404,
    so its callers never read another tenant's traffic."""
    async with tenants(make_settings(), a="") as server:
        assert (await server.http.get(f"/t/a{JWKS}")).status_code == 200
        response = await server.http.get("/t/a/metrics")
        assert response.status_code == 404
        assert "oauthd_http_requests_total" not in response.text
        assert (await server.http.get("/metrics")).status_code == 200
