"""Host tenants over HTTP against a real running oauthd (docs/architecture.md "Tenants"): a
tenant whose issuer is an origin of its own is chosen by the request's `Host` (RFC 9110 §7.2),
X-Forwarded-Host counting only from a trusted proxy. Beside it a path tenant and the root: each
is its own issuer (RFC 8414 §3.3), and nothing one issued works at another.

The test client reaches the host tenant on the server's loopback port with `Host:
login.acme.test`, through its own httpx client, so its cookie jar is that host's, as a
browser's would be."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
import trio

from oauthd.actors.registry import AddTenant, DeleteTenant, SetTenantState
from oauthd.runtime import Command
from oauthd.settings import LimitSettings, Settings
from oauthd.storage.registry import remove_tenant_dir
from tests.conftest import ISSUER, Server, running_server
from tests.flow import RESOURCE, Authorization, form_field, redeem
from tests.spec.test_rfc8628_device import NOT_VALID, decide, device_client, poll, started
from tests.spec.test_tenants import SETTINGS, WAIT_S, code_at, prefix_of, register, registry

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

ACME_HOST = "login.acme.test"
ACME = f"https://{ACME_HOST}"  # the host tenant
BETA = f"{ISSUER}/t/beta"  # the path tenant
# each tenant's settings: a resource, and machine clients may register (as the root's in tests)
TENANT = SETTINGS + "[registration]\nallow_client_credentials = true\n"


@dataclass
class Deployment:
    """The root and the path tenant `beta` on the server's host; the host tenant `acme` at its
    own host, through `acme`."""

    server: Server
    ask: Callable[[Command[Any]], Any]
    acme: httpx.AsyncClient

    @property
    def root(self) -> httpx.AsyncClient:
        return self.server.http


def at_host(server: Server, host: str, cookie: str = "") -> httpx.AsyncClient:
    """A client of the server that names `host` in every request, with its own cookie jar
    (and `cookie` sent as it is)."""
    headers = {"Host": host, **({"Cookie": cookie} if cookie else {})}
    return httpx.AsyncClient(base_url=server.base_url, headers=headers)


@asynccontextmanager
async def deployment(settings: Settings) -> AsyncIterator[Deployment]:
    async with running_server(settings) as server, registry(settings) as ask:
        await ask(AddTenant("acme", ACME, TENANT))
        await ask(AddTenant("beta", "", TENANT))
        if settings.storage.backend == "postgres":
            # another connection's change: seen within REGISTRY_POLL_S by the server's
            # watcher (a host that names no tenant yet triggers no read, unlike a path)
            await trio.sleep(WAIT_S)
        async with at_host(server, ACME_HOST) as acme:
            yield Deployment(server, ask, acme)


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def kids(http: httpx.AsyncClient, path: str) -> set[str]:
    response = await http.get(path)
    assert response.status_code == 200, path
    return {key["kid"] for key in response.json()["keys"]}


async def tokens_at(http: httpx.AsyncClient, tenant: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A public client registered at a tenant, and its tokens from a code flow with PKCE
    (no resource: the access token is for the tenant's own /userinfo)."""
    client = await register(http, tenant)
    auth = Authorization(client["client_id"], "http://127.0.0.1:5555/cb", resource=None)
    result = await code_at(http, tenant, auth)
    response = await redeem(http, auth, result["code"], f"{prefix_of(tenant)}/token")
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return client, tokens


def assert_refused(response: httpx.Response) -> None:
    """Refused as another issuer's artefact: the client or the grant is unknown there."""
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] in ("invalid_client", "invalid_grant")


async def test_root_path_tenant_and_host_tenant_have_their_own_issuer_metadata_and_jwks(
    make_settings: Callable[..., Settings],
) -> None:
    """RFC 8414 §3.3, RFC 9728 §3: every document at the host tenant's host names its
    issuer, its endpoints are on its origin, and the JWKS of root, path and host tenant share
    no key."""
    async with deployment(make_settings()) as d:
        for path in (
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ):
            document = (await d.acme.get(path)).json()
            assert document["issuer"] == ACME
            assert document["token_endpoint"] == f"{ACME}/token"
            assert document["jwks_uri"] == f"{ACME}/.well-known/jwks.json"
            assert document["authorization_endpoint"] == f"{ACME}/authorize"
        resource = (await d.acme.get("/.well-known/oauth-protected-resource")).json()
        assert resource["authorization_servers"] == [ACME]
        beta = (await d.root.get("/.well-known/oauth-authorization-server/t/beta")).json()
        root = (await d.root.get("/.well-known/oauth-authorization-server")).json()
        assert (beta["issuer"], root["issuer"]) == (BETA, ISSUER)
        acme_kids = await kids(d.acme, "/.well-known/jwks.json")
        beta_kids = await kids(d.root, "/t/beta/.well-known/jwks.json")
        root_kids = await kids(d.root, "/.well-known/jwks.json")
        assert all((acme_kids, beta_kids, root_kids))
        assert not acme_kids & beta_kids
        assert not acme_kids & root_kids
        assert not beta_kids & root_kids


async def test_a_path_tenant_and_a_host_tenant_complete_code_refresh_and_client_credentials(
    make_settings: Callable[..., Settings],
) -> None:
    """OAuth 2.1 §4.1, §4.3, RFC 7636: at each tenant a code flow with PKCE, a refresh and
    client_credentials, every token signed by that tenant's key and naming its issuer."""
    async with deployment(make_settings()) as d:
        for http, tenant, issuer, jwks in (
            (d.root, "beta", BETA, "/t/beta/.well-known/jwks.json"),
            (d.acme, "", ACME, "/.well-known/jwks.json"),
        ):
            prefix = prefix_of(tenant)
            client, tokens = await tokens_at(http, tenant)
            claims = claims_of(tokens["access_token"])
            assert claims["iss"] == issuer
            assert claims_of(tokens["id_token"])["iss"] == issuer
            header = jwt.get_unverified_header(tokens["access_token"])
            assert header["kid"] in await kids(http, jwks)
            refresh = {
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": client["client_id"],
            }
            rotated = await http.post(f"{prefix}/token", data=refresh)
            assert rotated.status_code == 200, rotated.text
            assert claims_of(rotated.json()["access_token"])["iss"] == issuer
            machine = await register(
                http,
                tenant,
                grant_types=["client_credentials"],
                redirect_uris=[],
                token_endpoint_auth_method="client_secret_basic",
            )
            granted = await http.post(
                f"{prefix}/token",
                data={"grant_type": "client_credentials", "resource": RESOURCE},
                auth=(machine["client_id"], machine["client_secret"]),
            )
            assert granted.status_code == 200, granted.text
            assert claims_of(granted.json()["access_token"])["iss"] == issuer


async def test_codes_tokens_and_clients_of_one_never_work_at_another(
    make_settings: Callable[..., Settings],
) -> None:
    """A code, access token, refresh token, registration access token or client id of the host
    tenant is refused by the path tenant and the root, and the path tenant's by the host
    tenant."""
    async with deployment(make_settings()) as d:
        acme_client, acme_tokens = await tokens_at(d.acme, "")
        beta_client, beta_tokens = await tokens_at(d.root, "beta")
        theirs = (
            (d.acme, "", acme_client, acme_tokens, ((d.root, "beta"), (d.root, ""))),
            (d.root, "beta", beta_client, beta_tokens, ((d.acme, ""),)),
        )
        for own, tenant, client, tokens, others in theirs:
            auth = Authorization(client["client_id"], redirect_uri="http://127.0.0.1:5555/cb")
            code = (await code_at(own, tenant, auth))["code"]
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            manage = {"Authorization": f"Bearer {client['registration_access_token']}"}
            refresh = {
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": client["client_id"],
            }
            for http, other in others:
                prefix = prefix_of(other)
                assert_refused(await redeem(http, auth, code, f"{prefix}/token"))
                assert (await http.get(f"{prefix}/userinfo", headers=bearer)).status_code == 401
                assert_refused(await http.post(f"{prefix}/token", data=refresh))
                path = f"{prefix}/register/{client['client_id']}"
                assert (await http.get(path, headers=manage)).status_code == 401
                unknown = await http.get(f"{prefix}/authorize", params=auth.params)
                assert unknown.status_code == 400
                assert "location" not in unknown.headers
            prefix = prefix_of(tenant)  # each still works where it was issued
            assert (await redeem(own, auth, code, f"{prefix}/token")).status_code == 200
            assert (await own.get(f"{prefix}/userinfo", headers=bearer)).status_code == 200
            assert (await own.post(f"{prefix}/token", data=refresh)).status_code == 200
            path = f"{prefix}/register/{client['client_id']}"
            assert (await own.get(path, headers=manage)).status_code == 200


async def test_session_cookies_and_csrf_tokens_of_one_never_work_at_another(
    make_settings: Callable[..., Settings],
) -> None:
    """The host tenant's session cookie is host-only (no Domain, Path=/) and signs no one in
    at the path tenant or the root, nor theirs at the host tenant; a login form's request and
    CSRF token are refused by the other tenant."""
    async with deployment(make_settings()) as d:
        acme_client, _ = await tokens_at(d.acme, "")
        sessions = [c for c in d.acme.cookies.jar if "session" in c.name]
        assert [(c.path, c.domain_specified) for c in sessions] == [("/", False)]
        acme_session = sessions[0]
        beta_client, _ = await tokens_at(d.root, "beta")
        beta_session = next(c for c in d.root.cookies.jar if c.path == "/t/beta/")
        root_client = await register(d.root, "")
        root_host = urlsplit(d.server.base_url).netloc
        for host, tenant, client, cookie in (
            (ACME_HOST, "", acme_client, beta_session),
            (ACME_HOST, "", acme_client, acme_session),
            (root_host, "beta", beta_client, acme_session),
            (root_host, "", root_client, acme_session),
        ):
            async with at_host(d.server, host, f"{cookie.name}={cookie.value}") as browser:
                auth = Authorization(client["client_id"], redirect_uri="http://127.0.0.1:5555/cb")
                start = await browser.get(f"{prefix_of(tenant)}/authorize", params=auth.params)
            assert start.status_code in (302, 303), start.text
            signed_in = cookie is acme_session and host == ACME_HOST
            to_login = urlsplit(start.headers["location"]).path == f"{prefix_of(tenant)}/login"
            assert to_login is not signed_in
        # a login form of the host tenant posted to the path tenant, and the other way round
        async with at_host(d.server, ACME_HOST) as acme, at_host(d.server, root_host) as beta:
            acme_form = await login_form(acme, "", acme_client)
            beta_form = await login_form(beta, "beta", beta_client)
            for http, tenant, form in ((beta, "beta", acme_form), (acme, "", beta_form)):
                refused = await http.post(f"{prefix_of(tenant)}/login", data=form)
                assert refused.status_code == 400, refused.text
                assert "location" not in refused.headers
            accepted = await acme.post("/login", data=acme_form)
            assert accepted.status_code == 303, accepted.text


async def login_form(
    http: httpx.AsyncClient, tenant: str, client: dict[str, Any]
) -> dict[str, str]:
    """The fields a person would post from a tenant's login page (`http` has no session)."""
    auth = Authorization(client["client_id"], redirect_uri="http://127.0.0.1:5555/cb")
    start = await http.get(f"{prefix_of(tenant)}/authorize", params=auth.params)
    page = await http.get(start.headers["location"])
    assert page.status_code == 200, page.text
    return {
        "request": form_field(page.text, "request"),
        "csrf": form_field(page.text, "csrf"),
        "email": "alice@example.com",
        "password": "password",
    }


async def test_device_flow_works_at_a_host_tenant_and_its_codes_nowhere_else(
    make_settings: Callable[..., Settings],
) -> None:
    """RFC 8628 §3.3, §3.5 at the host tenant: its verification page, login and consent
    complete the flow; its device code is refused by the path tenant and its user code is not
    valid there."""
    async with deployment(make_settings()) as d:
        client = await device_client(d.acme)
        device = await started(d.acme, client, resource=RESOURCE)
        assert device["verification_uri"] == f"{ACME}/device"
        elsewhere = {
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": device["device_code"],
            "client_id": client["client_id"],
        }
        assert_refused(await d.root.post("/t/beta/token", data=elsewhere))
        assert_refused(await d.root.post("/token", data=elsewhere))
        entered = await d.root.get("/t/beta/device", params={"user_code": device["user_code"]})
        assert NOT_VALID in entered.text
        page = await decide(d.acme, device["user_code"])
        assert "signed in on your device" in page.text
        tokens = await poll(d.acme, client, device["device_code"])
        assert tokens.status_code == 200, tokens.text
        assert claims_of(tokens.json()["access_token"])["iss"] == ACME


async def test_a_host_tenant_is_reached_at_its_own_host_only(
    make_settings: Callable[..., Settings],
) -> None:
    """No tenant is reachable through another's origin: the host tenant's path on the root
    host is a 404 that spawns nothing, and a path tenant's path on the host tenant's host a
    404."""
    settings = make_settings()
    async with deployment(settings) as d:
        for http, tenant in ((d.root, "acme"), (d.acme, "beta")):
            for path in (
                f"/t/{tenant}/.well-known/openid-configuration",
                f"/.well-known/oauth-authorization-server/t/{tenant}",
                f"/t/{tenant}/.well-known/jwks.json",
                f"/t/{tenant}/token",
            ):
                assert (await http.get(path)).status_code == 404, path
            assert not (settings.data_dir / tenant).exists()
        assert (await d.acme.get("/.well-known/jwks.json")).status_code == 200


async def test_an_unknown_host_is_served_by_the_root_app(
    make_settings: Callable[..., Settings],
) -> None:
    """A Host no tenant has (or a host tenant's with another port) reaches the root, whose
    issuer comes from the file whatever the Host says."""
    settings = make_settings()
    async with deployment(settings) as d:
        for host in ("login.other.test", f"{ACME_HOST}:8443", "", "acme"):
            async with at_host(d.server, host) as http:
                metadata = await http.get("/.well-known/oauth-authorization-server")
            assert metadata.json()["issuer"] == ISSUER, host
        assert not (settings.data_dir / "acme").exists()
        for host in (ACME_HOST.upper(), f"{ACME_HOST}:443"):  # the same host, spelt otherwise
            async with at_host(d.server, host) as http:
                metadata = await http.get("/.well-known/oauth-authorization-server")
            assert metadata.json()["issuer"] == ACME, host


@pytest.mark.parametrize(
    ("proxies", "trusted"),
    [(("10.0.0.0/8",), False), (("10.0.0.0/8", "127.0.0.1/32"), True)],
    ids=["untrusted peer", "trusted peer"],
)
async def test_x_forwarded_host_is_believed_only_from_a_trusted_proxy(
    make_settings: Callable[..., Settings], proxies: tuple[str, ...], trusted: bool
) -> None:
    """X-Forwarded-Host from a peer outside limits.trusted_proxies is ignored; from a trusted
    one its last value (the one that proxy wrote) chooses the tenant. One deployment per case:
    a second in one test would share its storage (on PostgreSQL, its database) and add its
    tenants twice."""
    cases = (
        (ACME_HOST, ISSUER, ACME),
        (f"evil.test, {ACME_HOST}", ISSUER, ACME),
        (f"{ACME_HOST}, evil.test", ISSUER, ISSUER),
    )
    settings = make_settings(limits=LimitSettings(trusted_proxies=proxies))
    async with deployment(settings) as d:
        for forwarded, untrusted_issuer, trusted_issuer in cases:
            headers = {"X-Forwarded-Host": forwarded}
            metadata = await d.root.get("/.well-known/openid-configuration", headers=headers)
            want = trusted_issuer if trusted else untrusted_issuer
            assert metadata.json()["issuer"] == want, (trusted, forwarded)
        # behind a trusted proxy, the Host it connects with does not choose the tenant
        via_proxy = await d.acme.get(
            "/.well-known/openid-configuration", headers={"X-Forwarded-Host": "other.test"}
        )
        assert via_proxy.json()["issuer"] == (ISSUER if trusted else ACME)


async def test_a_disabled_host_tenant_answers_403_and_a_removed_one_404(
    make_settings: Callable[..., Settings],
) -> None:
    """Disabled: 403 temporarily_unavailable at its host, data kept, served again once
    enabled; removing: 404 at its host; once its row is gone, the host is no tenant's and the
    root answers there."""
    settings = make_settings()
    async with deployment(settings) as d:
        client = await register(d.acme, "")
        await d.ask(SetTenantState("acme", "disabled"))
        await trio.sleep(WAIT_S)
        disabled = await d.acme.get("/.well-known/jwks.json")
        assert disabled.status_code == 403
        assert disabled.json()["error"] == "temporarily_unavailable"
        page = await d.acme.get("/authorize", headers={"Accept": "text/html"})
        assert page.status_code == 403
        assert page.headers["content-type"].startswith("text/html")
        assert (await d.root.get("/t/beta/.well-known/jwks.json")).status_code == 200
        await d.ask(SetTenantState("acme", "active"))
        await trio.sleep(WAIT_S)
        auth = Authorization(client["client_id"], redirect_uri="http://127.0.0.1:5555/cb")
        assert (await d.acme.get("/authorize", params=auth.params)).status_code in (302, 303)
        await d.ask(SetTenantState("acme", "removing"))
        await trio.sleep(WAIT_S)
        assert (await d.acme.get("/.well-known/jwks.json")).status_code == 404
        remove_tenant_dir(settings.data_dir / "acme")
        await d.ask(DeleteTenant("acme"))
        await trio.sleep(WAIT_S)
        metadata = await d.acme.get("/.well-known/oauth-authorization-server")
        assert metadata.json()["issuer"] == ISSUER
        assert not (settings.data_dir / "acme").exists()


async def test_cookies_outside_dev_mode_are_host_prefixed_at_a_host_tenant(
    make_settings: Callable[..., Settings],
) -> None:
    """HTML-3: outside dev mode the host tenant's session cookie is `__Host-` (Secure, Path=/,
    no Domain: only its own host gets it back); the path tenant's is `__Secure-` under its
    path."""
    async with deployment(make_settings(dev_mode=False)) as d:
        for http, tenant, name, path in (
            (d.acme, "", "__Host-oauthd-session", "/"),
            (d.root, "beta", "__Secure-oauthd-session", "/t/beta/"),
        ):
            cleared = (await http.post(f"{prefix_of(tenant)}/logout", data={"csrf": ""})).headers
            assert cleared["set-cookie"].startswith(f"{name}=")
            attributes = {a.strip().lower() for a in cleared["set-cookie"].split(";")}
            assert {"secure", "httponly", "samesite=lax", f"path={path}"} <= attributes
            assert not any(a.startswith("domain=") for a in attributes)
