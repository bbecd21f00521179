"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25
client registration), black-box over HTTP: a client_id that is an https URL is fetched from a
local https host whose CA the test trusts, validated, cached, and then behaves like a
registered client; every refused case is an error page, and forbidden addresses are never
connected to (a listener on 127.0.0.2 records any connection)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
import trio
import trustme

from oauthd.actors.janitor import collect_once
from oauthd.actors.outbound import pinned_transport
from oauthd.server import TENANT, Runtime, open_runtime
from oauthd.settings import ClientMetadataSettings, Settings
from oauthd.storage import shard_key_for
from tests.conftest import ManualClock, Server, running_server
from tests.document_host import (
    DocumentHost,
    Recorder,
    Served,
    resolver_for,
    start_document_host,
    start_recorder,
)
from tests.flow import Authorization, follow, form_field, login, query_of, redeem
from tests.spec.test_oauth21_authorize import assert_error_page

PATH = "/client.json"
CB = "http://127.0.0.1:3000/callback"


@dataclass
class Stack:
    oauthd: Server
    host: DocumentHost
    recorder: Recorder  # 127.0.0.2: loopback, not allowed; must never see a connection
    clock: ManualClock

    @property
    def http(self) -> httpx.AsyncClient:
        return self.oauthd.http

    def document(self, path: str = PATH, **changes: Any) -> dict[str, Any]:
        return {
            "client_id": self.host.url(path),
            "client_name": "CIMD Test",
            "redirect_uris": [CB],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            **changes,
        }

    def publish(self, path: str = PATH, **changes: Any) -> str:
        self.host.serve_json(path, self.document(path, **changes))
        return self.host.url(path)


@asynccontextmanager
async def stack(
    make_settings: Callable[..., Settings], clock: ManualClock, **limits: Any
) -> AsyncIterator[Stack]:
    ca = trustme.CA()
    async with trio.open_nursery() as nursery:
        host = await start_document_host(nursery, ca)
        recorder = await start_recorder(nursery, "127.0.0.2")
        names = {
            "cimd.test": ["127.0.0.1"],
            "evil.test": ["127.0.0.2"],
            "mixed.test": ["127.0.0.1", "127.0.0.2"],
            "metadata.test": ["169.254.169.254"],
            "private.test": ["10.0.0.7"],
        }
        allow = ("127.0.0.1/32",)  # the document host only
        settings = make_settings(
            client_metadata=ClientMetadataSettings(allow_networks=allow, **limits)
        )
        ssl_context = ssl.create_default_context()
        ca.configure_trust(ssl_context)
        transport = pinned_transport(allow, ssl_context=ssl_context, resolver=resolver_for(names))
        async with running_server(settings, clock, transport) as server:
            yield Stack(server, host, recorder, clock)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def cimd(make_settings: Callable[..., Settings], clock: ManualClock) -> AsyncIterator[Stack]:
    async with stack(make_settings, clock) as s:
        yield s


def auth_for(client_id: str, redirect_uri: str = CB) -> Authorization:
    return Authorization(client_id=client_id, redirect_uri=redirect_uri, scope="openid mcp:tools")


async def authorize(s: Stack, client_id: str, redirect_uri: str = CB) -> httpx.Response:
    return await s.http.get("/authorize", params=auth_for(client_id, redirect_uri).params)


def assert_refused(response: httpx.Response, code: str = "invalid_client") -> None:
    assert_error_page(response)
    assert code in response.text, response.text


# --- CIMD-1: metadata and the whole flow ---------------------------------------------------


async def test_s5_metadata_advertises_client_id_metadata_documents(cimd: Stack) -> None:
    """DISC-8, CIMD-1: client_id_metadata_document_supported is true in both documents."""
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        assert (await cimd.http.get(path)).json()["client_id_metadata_document_supported"] is True


async def test_s4_valid_document_works_end_to_end(cimd: Stack) -> None:
    """CIMD-1: a URL client_id logs in, consents (name, document host, redirect host, marked
    unverified), gets a code, redeems it with auth none, refreshes and revokes."""
    client_id = cimd.publish()
    auth = auth_for(client_id)
    response = await cimd.http.get("/authorize", params=auth.params)
    response = await login(cimd.http, response.headers["location"])
    page = await cimd.http.get(response.headers["location"])
    assert page.status_code == 200
    assert "CIMD Test" in page.text
    assert "describes itself at <strong>cimd.test</strong>" in page.text
    assert "has not verified it" in page.text
    assert "you go to</dt><dd><strong>127.0.0.1</strong>" in page.text
    assert "runs on this computer" in page.text  # CIMD-11: loopback-only redirect URIs
    decided = await cimd.http.post(
        "/consent",
        data={
            "request": form_field(page.text, "request"),
            "csrf": form_field(page.text, "csrf"),
            "decision": "allow",
        },
    )
    result = query_of(await follow(cimd.http, decided))
    assert result["iss"] == cimd.oauthd.settings.issuer
    tokens = await redeem(cimd.http, auth, result["code"])
    assert tokens.status_code == 200, tokens.text
    refreshed = await cimd.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens.json()["refresh_token"],
            "client_id": client_id,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    revoked = await cimd.http.post(
        "/revoke", data={"token": refreshed.json()["refresh_token"], "client_id": client_id}
    )
    assert revoked.status_code == 200
    assert cimd.host.requests == [PATH]  # one fetch: the document is cached (default 300 s)


# --- CIMD-2..7: refused documents -------------------------------------------------------


@pytest.mark.parametrize(
    "named", ["/other.json", "/client.json/", "/CLIENT.json", "http://cimd.test/client.json"]
)
async def test_s4_1_document_naming_another_client_id_is_refused(cimd: Stack, named: str) -> None:
    """CIMD-2: the document's client_id must equal its URL exactly -> error page, no redirect."""
    other = named if named.startswith("http") else cimd.host.url(named)
    cimd.host.serve_json(PATH, cimd.document(client_id=other))
    assert_refused(await authorize(cimd, cimd.host.url(PATH)))


async def test_s4_5_redirect_uri_must_be_in_the_document(cimd: Stack) -> None:
    """CIMD-3: a redirect_uri the document does not list -> error page; a loopback entry
    accepts any port (RFC 8252 §7.3)."""
    client_id = cimd.publish()
    assert_refused(
        await authorize(cimd, client_id, "http://127.0.0.1:3000/other"), "invalid_request"
    )
    response = await authorize(cimd, client_id, "http://127.0.0.1:49152/callback")
    assert response.headers["location"].startswith("/login")


async def test_s6_4_errors_for_https_redirect_are_a_page(cimd: Stack) -> None:
    """AUTHZ-17: a document client vouched for by nobody gets its errors for an https
    redirect URI on a page, not at that URI (RFC 9700 §4.11.2)."""
    web = "https://app.example/cb"
    client_id = cimd.publish(redirect_uris=[web])
    params = Authorization(client_id, redirect_uri=web, scope="bogus").params
    assert_refused(await cimd.http.get("/authorize", params=params), "invalid_scope")


async def test_s6_4_errors_for_loopback_redirect_are_redirected(cimd: Stack) -> None:
    """OAuth 2.1 §4.1.2.1: a document client's loopback redirect URI gets its errors."""
    client_id = cimd.publish()
    params = Authorization(client_id, redirect_uri=CB, scope="bogus").params
    response = await cimd.http.get("/authorize", params=params)
    assert response.status_code == 303
    assert query_of(response.headers["location"])["error"] == "invalid_scope"


@pytest.mark.parametrize(
    "client_id",
    [
        "http://cimd.test:{port}/client.json",
        "https://cimd.test:{port}",
        "https://cimd.test:{port}/",
        "https://cimd.test:{port}/a/../client.json",
        "https://cimd.test:{port}/client.json#frag",
        "https://u:p@cimd.test:{port}/client.json",
        "https://cimd.test:{port}/client.json?v=1",
    ],
)
async def test_s3_invalid_identifiers_are_unknown_clients_never_fetched(
    cimd: Stack, client_id: str
) -> None:
    """CIMD-4: not an https URL with a path, or with dot segments, fragment, userinfo or
    query -> unknown client, and no request reaches the host."""
    cimd.publish()
    assert_refused(await authorize(cimd, client_id.format(port=cimd.host.port)))
    assert cimd.host.requests == []


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (404, "application/json", b"{}"),
        (500, "application/json", b"{}"),
        (200, "text/html", b"{}"),
        (200, "application/json", b"{not json"),
        (200, "application/json", b"[]"),
        (200, "application/json", b'{"client_id": "CID", "client_name": "x"}'),
    ],
)
async def test_s4_4_unusable_responses_are_refused_and_not_cached(
    cimd: Stack, status: int, content_type: str, body: bytes
) -> None:
    """CIMD-5: 404/500, non-JSON type, bad JSON, an array or no redirect_uris -> error page,
    and the failure is not cached: fixing the document makes the next attempt work."""
    client_id = cimd.host.url(PATH)
    cimd.host.routes[PATH] = Served(
        status, body.replace(b"CID", client_id.encode()), {"content-type": content_type}
    )
    assert_refused(await authorize(cimd, client_id))
    cimd.publish()
    assert (await authorize(cimd, client_id)).headers["location"].startswith("/login")
    assert cimd.host.requests == [PATH, PATH]


@pytest.mark.parametrize(
    "changes",
    [
        {"token_endpoint_auth_method": "client_secret_basic"},
        {"token_endpoint_auth_method": "client_secret_post"},
        {"token_endpoint_auth_method": "client_secret_jwt"},
        {"client_secret": "s3cret"},
        {"token_endpoint_auth_method": "private_key_jwt"},  # without keys
    ],
)
async def test_s4_1_shared_secrets_are_refused(cimd: Stack, changes: dict[str, str]) -> None:
    """CIMD-6: secret-based auth methods, a client_secret, or private_key_jwt without keys
    -> error page."""
    client_id = cimd.publish(**changes)
    assert_refused(await authorize(cimd, client_id))


async def test_s4_private_key_jwt_with_jwks_uri_is_accepted(cimd: Stack) -> None:
    """CIMD-6: private_key_jwt with a jwks_uri is a valid document (CIMD-00 §6.2)."""
    client_id = cimd.publish(
        token_endpoint_auth_method="private_key_jwt", jwks_uri=cimd.host.url("/jwks.json")
    )
    assert (await authorize(cimd, client_id)).headers["location"].startswith("/login")


async def test_s4_redirects_are_not_followed(cimd: Stack) -> None:
    """CIMD-7: a 302 to a valid document elsewhere -> error page; the target is not fetched."""
    cimd.publish("/real.json")
    cimd.host.routes[PATH] = Served(302, b"", {"location": cimd.host.url("/real.json")})
    assert_refused(await authorize(cimd, cimd.host.url(PATH)))
    assert cimd.host.requests == [PATH]


async def test_s6_6_oversized_document_is_refused(cimd: Stack) -> None:
    """CIMD-9: a document over max_bytes (5 KB) -> error page."""
    client_id = cimd.publish(client_uri="https://cimd.test/" + "a" * 6000)
    assert_refused(await authorize(cimd, client_id))


# --- CIMD-8: SSRF -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.2",
        "2130706434",  # 127.0.0.2 as one decimal number
        "[::ffff:127.0.0.2]",
        "evil.test",  # a name that resolves to loopback
        "mixed.test",  # one allowed address and one forbidden: refused as a whole
    ],
)
async def test_s6_5_loopback_addresses_are_never_connected_to(cimd: Stack, host: str) -> None:
    """CIMD-8: a client_id whose host is or resolves to a forbidden address -> error page,
    and the listener on that address sees no connection."""
    client_id = f"https://{host}:{cimd.recorder.port}{PATH}"
    assert_refused(await authorize(cimd, client_id))
    assert cimd.recorder.connections == 0


@pytest.mark.parametrize("host", ["metadata.test", "private.test", "169.254.169.254", "10.0.0.7"])
async def test_s6_5_private_and_link_local_addresses_are_refused(cimd: Stack, host: str) -> None:
    """CIMD-8: cloud metadata (169.254.169.254) and private (10/8) addresses -> error page
    before any connection (the refusal names the address rule)."""
    response = await authorize(cimd, f"https://{host}{PATH}")
    assert_refused(response)
    assert "public address" in response.text


# --- CIMD-10, RATE-5: caching and rate limits ----------------------------------------------


async def test_s4_4_max_age_is_respected_within_bounds(cimd: Stack) -> None:
    """CIMD-10: max-age=600 (not the 300 s default) -> one fetch for two authorizations and
    still cached past 300 s; after it expires, a new fetch that picks up the changed document
    (a new redirect URI)."""
    client_id = cimd.publish()
    cimd.host.serve_json(PATH, cimd.document(), **{"cache-control": "max-age=600"})
    for _ in range(2):
        assert (await authorize(cimd, client_id)).headers["location"].startswith("/login")
    assert len(cimd.host.requests) == 1
    new_cb = "https://app.example/cb"
    cimd.host.serve_json(PATH, cimd.document(redirect_uris=[CB, new_cb]))
    cimd.clock.advance(301)  # past the default lifetime, within max-age
    assert_refused(await authorize(cimd, client_id, new_cb), "invalid_request")  # still cached
    cimd.clock.advance(300)
    assert (await authorize(cimd, client_id, new_cb)).headers["location"].startswith("/login")
    assert len(cimd.host.requests) == 2


async def test_s4_4_no_store_fetches_every_time(cimd: Stack) -> None:
    """CIMD-10: Cache-Control no-store -> every authorization fetches the document."""
    client_id = cimd.host.url(PATH)
    cimd.host.serve_json(PATH, cimd.document(), **{"cache-control": "no-store"})
    for _ in range(3):
        assert (await authorize(cimd, client_id)).headers["location"].startswith("/login")
    assert len(cimd.host.requests) == 3


async def test_s4_4_huge_max_age_is_capped(cimd: Stack) -> None:
    """CIMD-10: max-age of a year is cut to cache_max_s (a day): fetched again after it."""
    client_id = cimd.host.url(PATH)
    cimd.host.serve_json(PATH, cimd.document(), **{"cache-control": "max-age=31536000"})
    for _ in range(2):  # cached, so fetched once
        assert (await authorize(cimd, client_id)).headers["location"].startswith("/login")
    assert len(cimd.host.requests) == 1
    cimd.clock.advance(86_401)
    assert (await authorize(cimd, client_id)).headers["location"].startswith("/login")
    assert len(cimd.host.requests) == 2


async def third_of_three_is_unavailable(s: Stack) -> list[str]:
    """Three new document clients: two start signing in, the third gets a 503 page."""
    ids = [s.publish(f"/c{i}.json") for i in range(3)]
    for client_id in ids[:2]:
        assert (await authorize(s, client_id)).headers["location"].startswith("/login")
    refused = await authorize(s, ids[2])
    assert refused.status_code == 503
    assert "temporarily_unavailable" in refused.text
    return ids


async def test_rate_5_fetches_per_host_are_limited(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-5: past fetches_per_host_per_minute, a new document URL on that host -> 503
    temporarily_unavailable without a request; a minute later it is fetched again."""
    async with stack(make_settings, clock, fetches_per_host_per_minute=2) as s:
        ids = await third_of_three_is_unavailable(s)
        assert len(s.host.requests) == 2
        clock.advance(61)
        assert (await authorize(s, ids[2])).headers["location"].startswith("/login")


# --- document clients are capped and expire (issue 14 item 12) ------------------------------


async def test_reg_cap_document_clients_are_capped_separately(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-5, RATE-7: past client_metadata.max_clients a new document client -> 503
    temporarily_unavailable (its shard is not made); known document clients and dynamic
    registrations are not affected."""
    async with stack(make_settings, clock, max_clients=2) as s:
        ids = await third_of_three_is_unavailable(s)
        assert (await authorize(s, ids[0])).headers["location"].startswith("/login")
        body = {"redirect_uris": [CB], "token_endpoint_auth_method": "none"}
        assert (await s.http.post("/register", json=body)).status_code == 201
        shards = list((s.oauthd.settings.data_dir / TENANT).glob("clients/??/*.sqlite"))
        assert len(shards) == 3


async def test_document_clients_never_used_expire_and_come_back(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """A document client never issued a token is deleted client_metadata.unused_ttl_s after
    it was first fetched (shard and index entry); its next use fetches it again."""
    async with stack(make_settings, clock, unused_ttl_s=3600) as s, trio.open_nursery() as n:
        runtime: Runtime = await n.start(
            partial(open_runtime, s.oauthd.settings, clock=clock, janitor=False)
        )
        client_id = s.publish()
        assert (await authorize(s, client_id)).headers["location"].startswith("/login")
        clock.advance(3590)
        assert (await collect_once(runtime.system, runtime.env, TENANT)).removed == []
        clock.advance(20)
        report = await collect_once(runtime.system, runtime.env, TENANT)
        assert report.removed == [shard_key_for(client_id)]
        assert report.counts["expired_clients"] == 1
        assert (await authorize(s, client_id)).headers["location"].startswith("/login")
        assert s.host.requests == [PATH, PATH]
        n.cancel_scope.cancel()


# --- RATE-5: made-up ids cannot starve a real client (issue 14 item 7) ----------------------


async def made_up_token_request(s: Stack, i: int) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": s.host.url(f"/a{i}")}
    return await s.http.post("/token", data=data)


async def test_rate_5_made_up_ids_do_not_spend_a_registered_clients_budget(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-5, CIMD-10: token requests naming made-up document URLs on a host use up its
    budget for new ids (401, then 503), yet a registered client of that host whose copy
    expires is fetched again and keeps working."""
    async with stack(make_settings, clock, fetches_per_host_per_minute=3) as s:
        client_id = s.host.url(PATH)
        s.host.serve_json(PATH, s.document(), **{"cache-control": "max-age=60"})
        assert (await authorize(s, client_id)).headers["location"].startswith("/login")
        clock.advance(61)
        statuses = [(await made_up_token_request(s, i)).status_code for i in range(4)]
        assert statuses == [401, 401, 401, 503]
        assert (await authorize(s, client_id)).headers["location"].startswith("/login")
        assert s.host.requests == [PATH, "/a0", "/a1", "/a2", PATH]


async def test_rate_5_fetches_per_client_id_are_limited(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """RATE-5: one client id is fetched at most fetches_per_client_per_minute times a minute,
    even when its document says no-store; a registered one is served from its stored
    registration meanwhile, a made-up one answers 503."""
    async with stack(make_settings, clock, fetches_per_client_per_minute=2) as s:
        client_id = s.host.url(PATH)
        s.host.serve_json(PATH, s.document(), **{"cache-control": "no-store"})
        for _ in range(3):
            assert (await authorize(s, client_id)).headers["location"].startswith("/login")
        assert s.host.requests == [PATH, PATH]
        statuses = [(await made_up_token_request(s, 0)).status_code for _ in range(3)]
        assert statuses == [401, 401, 503]


async def test_s4_4_stale_while_error_is_bounded(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    """CIMD-10: once its copy expires, a registered document client whose document fails
    (here 500) keeps working from its stored registration for stale_if_error_s past the
    expiry, and is refused after it."""
    async with stack(make_settings, clock, stale_if_error_s=3600) as s:
        client_id = s.publish()  # no max-age: the 300 s default
        assert (await authorize(s, client_id)).headers["location"].startswith("/login")
        s.host.routes[PATH] = Served(500, b"{}")
        clock.advance(301)
        assert (await authorize(s, client_id)).headers["location"].startswith("/login")
        clock.advance(3600)
        assert_refused(await authorize(s, client_id))
        assert s.host.requests == [PATH, PATH, PATH]


@pytest.mark.parametrize(
    "answer",
    [
        Served(404, b"{}"),
        Served(410, b"{}"),
        Served(200, b'{"client_id": "https://elsewhere.example/x"}'),
    ],
    ids=["404", "410", "invalid-document"],
)
async def test_s4_4_a_document_withdrawn_is_not_served_stale(
    make_settings: Callable[..., Settings], clock: ManualClock, answer: Served
) -> None:
    """CIMD-10: stale-while-error covers a host that cannot answer (5xx, timeouts, refused
    fetches), not one that answered: once its copy expires, a document that is gone or no
    longer valid ends the client at once."""
    async with stack(make_settings, clock, stale_if_error_s=3600) as s:
        client_id = s.publish()
        assert (await authorize(s, client_id)).headers["location"].startswith("/login")
        s.host.routes[PATH] = answer
        clock.advance(301)
        assert_refused(await authorize(s, client_id))
