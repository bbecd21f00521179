"""The two providers of the HTTP scenarios (bench/scenarios.py): oauthd and node-oidc-provider.

Each provider is started with three clients: a service (client_credentials), a resource server
that may introspect tokens for RESOURCE, and a web app (authorization_code + refresh_token),
all confidential with client_secret_basic. `prepare_*` logs alice in once and consents once
(over HTTP, as a browser would; see tests/flow.py for the same walk in the tests), then makes
what the wrk scripts in bench/lua/ send: a JWT access token to introspect, a userinfo bearer,
the session cookie for the code flow, and fresh refresh tokens (one code flow each) for every
wrk run of the refresh row, since a run rotates the tokens it is given.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

from loadgen import Server, free_port
from oauthd.settings import LimitSettings

__all__ = [
    "Prepared",
    "node_missing",
    "node_server",
    "oauthd_scenario_config",
    "prepare_node",
    "prepare_oauthd",
    "secrets_env",
]

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
RESOURCE = "https://api.bench.example/"
SCOPE = "bench:read"
REDIRECT_URI = "http://127.0.0.1:5555/cb"
ALICE = ("alice@example.com", "password")
SERVICE, RESOURCE_SERVER, WEB = "bench-service", "bench-rs", "bench-web"
SECRETS = {SERVICE: "service-secret-0123456789", RESOURCE_SERVER: "rs-secret-0123456789"}
SECRETS[WEB] = "web-secret-0123456789"
SECRET_ENV = {SERVICE: "BENCH_SERVICE_SECRET", RESOURCE_SERVER: "BENCH_RS_SECRET"}
SECRET_ENV[WEB] = "BENCH_WEB_SECRET"


def basic(client_id: str) -> str:
    """RFC 6749 §2.3.1: form-encode id and secret, then Basic."""
    pair = f"{client_id}:{SECRETS[client_id]}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def secrets_env() -> dict[str, str]:
    return {SECRET_ENV[c]: SECRETS[c] for c in SECRETS}


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the wrk scripts of one provider send (paths are relative to `base_url`)."""

    base_url: str
    token_path: str
    introspect_path: str
    userinfo_path: str
    jwks_path: str
    discovery_path: str  # the OpenID Provider configuration (OIDC Discovery §4)
    cc_body: str  # client_credentials form, sent by SERVICE
    introspect_body: str  # token=<an access token>, sent by `introspector`
    introspector: str  # RESOURCE_SERVER for a JWT for RESOURCE; SERVICE for its own token
    introspected: str  # "a JWT" or "an opaque"
    userinfo_bearer: str  # "Bearer <access token for userinfo>", or "" (no userinfo row)
    authorize_path: str  # a code request with a fixed PKCE challenge, consented already
    cookie: str  # the session's Cookie header
    redeem_tail: str  # appended to "grant_type=authorization_code&code=CODE"
    refresh_tail: str  # appended to "grant_type=refresh_token&refresh_token=RT"
    refresh_tokens: Callable[[int], list[str]]  # n fresh refresh tokens, one code flow each

    def refresh_pool(self, tmp: Path, connections: int) -> Callable[[], list[str]]:
        """wrk arguments for one run of the refresh row: a file of fresh tokens."""
        runs: Iterator[int] = iter(range(1_000_000))

        def args() -> list[str]:
            path = tmp / f"refresh-pool-{next(runs)}.txt"
            path.write_text("\n".join(self.refresh_tokens(connections)) + "\n", encoding="utf-8")
            return [basic(WEB), str(path), self.refresh_tail]

        return args


# --- oauthd ------------------------------------------------------------------------------------


# wrk is one client IP and one client per row: the per-IP and per-client rate limits are
# lifted (the limiters still run, as deployed). Only keys this oauthd knows are written.
LIFTED_LIMITS = ("token_per_ip", "introspect_per_client", "register_per_ip")


def lifted_limits() -> str:
    known = {f.name for f in dataclasses.fields(LimitSettings)}
    lifted = [k for k in LIFTED_LIMITS if k in known]
    return "\n[limits]\n" + "".join(
        f"{k} = {{ requests = 1000000, window_s = 1 }}\n" for k in lifted
    )


def oauthd_scenario_config(tmp: Path, port: int, engine: str = "native") -> Path:
    """A dev-mode oauthd with the three clients, access log on (as deployed), served by
    `engine` ([server] engine: native or hypercorn)."""
    name = "oauthd-scenarios" + ("" if engine == "native" else f"-{engine}")
    path = tmp / f"{name}.toml"
    path.write_text(
        f'issuer = "http://127.0.0.1:{port}"\n'
        f'data_dir = "{tmp / name}"\n'
        "dev_mode = true\n"
        f'listen = "127.0.0.1:{port}"\n'
        "\n[[resources]]\n"
        f'uri = "{RESOURCE}"\n'
        f'scopes = ["{SCOPE}"]\n'
        f'client_id = "{RESOURCE_SERVER}"\n'
        "\n[[clients]]\n"
        f'client_id = "{SERVICE}"\n'
        f'client_secret_env = "{SECRET_ENV[SERVICE]}"\n'
        'grant_types = ["client_credentials"]\n'
        f'scope = "{SCOPE}"\n'
        "\n[[clients]]\n"
        f'client_id = "{RESOURCE_SERVER}"\n'
        f'client_secret_env = "{SECRET_ENV[RESOURCE_SERVER]}"\n'
        'grant_types = ["client_credentials"]\n'
        "\n[[clients]]\n"
        f'client_id = "{WEB}"\n'
        f'client_secret_env = "{SECRET_ENV[WEB]}"\n'
        f'redirect_uris = ["{REDIRECT_URI}"]\n'
        'grant_types = ["authorization_code", "refresh_token"]\n'
        f'scope = "openid email {SCOPE}"\n'
        # ES256 ID tokens, as node-oidc-provider's clientDefaults (bench/node/server.js): the
        # same signature work on both sides (RS256, OpenID's default, costs ~5x more here)
        'id_token_signed_response_alg = "ES256"\n'
        f'\n[server]\nengine = "{engine}"\n'
        "\n[log]\n"
        'level = "info"\n'
        'format = "json"\n'
        "access_log = true\n" + lifted_limits(),
        encoding="utf-8",
    )
    return path


def form_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    if match is None:
        raise RuntimeError(f"no {name} field in the page")
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def oauthd_params(challenge: str, resource: bool) -> dict[str, str]:
    params = {
        "client_id": WEB,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "bench",
        "scope": f"openid email {SCOPE}" if resource else "openid email",
    }
    return {**params, "resource": RESOURCE} if resource else params


def oauthd_code(http: httpx.Client, params: dict[str, str]) -> str:
    """/authorize, through login and consent when they are asked for; the code."""
    response = http.get("/authorize", params=params)
    for _ in range(4):
        if response.status_code not in (302, 303):
            raise RuntimeError(f"/authorize answered {response.status_code}: {response.text}")
        location = response.headers["location"]
        if not location.startswith(("/login", "/consent")):
            return query_of(location)["code"]
        page = http.get(location)
        form = {"request": form_field(page.text, "request"), "csrf": form_field(page.text, "csrf")}
        if location.startswith("/login"):
            form |= {"email": ALICE[0], "password": ALICE[1]}
        else:
            form |= {"decision": "allow"}
        response = http.post(location.partition("?")[0], data=form)
    raise RuntimeError("the flow did not reach the client")


def site_cookies(http: httpx.Client) -> str:
    """The Cookie header a request to any path sends (cookies scoped to "/")."""
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies.jar if c.path == "/")


def token(http: httpx.Client, client_id: str, form: dict[str, str], path: str) -> dict[str, str]:
    response = http.post(path, data=form, headers={"authorization": basic(client_id)})
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text}")
    body: dict[str, str] = response.json()
    return body


def prepare_oauthd(base_url: str) -> Prepared:
    http = httpx.Client(base_url=base_url, timeout=30.0)
    verifier, challenge = pkce()

    def code_flow(resource: bool) -> dict[str, str]:
        code = oauthd_code(http, oauthd_params(challenge, resource))
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI,
        }
        return token(http, WEB, form | ({"resource": RESOURCE} if resource else {}), "/token")

    userinfo_token = code_flow(resource=False)["access_token"]  # logs in and consents
    code_flow(resource=True)  # consents to the resource's scope too
    cc = {"grant_type": "client_credentials", "scope": SCOPE, "resource": RESOURCE}
    jwt = token(http, SERVICE, cc, "/token")["access_token"]
    cookie = site_cookies(http)
    return Prepared(
        base_url=base_url,
        token_path="/token",
        introspect_path="/introspect",
        userinfo_path="/userinfo",
        jwks_path="/.well-known/jwks.json",
        discovery_path="/.well-known/openid-configuration",
        cc_body=urlencode(cc),
        introspect_body=urlencode({"token": jwt}),
        introspector=RESOURCE_SERVER,
        introspected="a JWT",
        userinfo_bearer=f"Bearer {userinfo_token}",
        authorize_path="/authorize?" + urlencode(oauthd_params(challenge, resource=True)),
        cookie=cookie,
        redeem_tail="&"
        + urlencode(
            {"code_verifier": verifier, "redirect_uri": REDIRECT_URI, "resource": RESOURCE}
        ),
        refresh_tail="",
        refresh_tokens=lambda n: [code_flow(resource=True)["refresh_token"] for _ in range(n)],
    )


# --- node-oidc-provider ------------------------------------------------------------------------


def node_missing() -> str | None:
    """Why the node rows cannot run, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        return "oidc-provider is not installed: run `npm ci --prefix bench/node`"
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return None if version.returncode == 0 else "node does not run"


def node_server(tmp: Path, cpu: str) -> Server:
    port = free_port()
    config = {
        "issuer": f"http://127.0.0.1:{port}",
        "port": port,
        "resource": RESOURCE,
        "scope": SCOPE,
        "redirect_uri": REDIRECT_URI,
        "clients": {"service": SERVICE, "resource_server": RESOURCE_SERVER, "web": WEB},
        "secrets": SECRETS,
    }
    path = tmp / "node-config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return Server(
        ["node", str(NODE_DIR / "server.js"), str(path)],
        f"http://127.0.0.1:{port}/.well-known/openid-configuration",
        tmp / "node-oidc-provider.log",
        cpu,
        env={"NODE_ENV": "production"},
    )


def node_code(http: httpx.Client, params: dict[str, str]) -> str:
    """/auth, through devInteractions' login and consent forms when they are shown; the code."""
    response = http.get("/auth", params=params)
    for _ in range(8):
        if response.status_code not in (302, 303):
            raise RuntimeError(f"node answered {response.status_code}: {response.text}")
        location = urljoin(str(response.url), response.headers["location"])
        if location.startswith(REDIRECT_URI):
            query = query_of(location)
            if "code" not in query:
                raise RuntimeError(f"node refused the request: {query}")
            return query["code"]
        if "/interaction/" not in location:
            response = http.get(location)
            continue
        page = http.get(location).text
        uid = location.rstrip("/").rsplit("/", 1)[1]
        if 'name="login"' in page:
            form = {"prompt": "login", "login": ALICE[0], "password": ALICE[1]}
        else:
            form = {"prompt": "consent"}
        response = http.post(f"/interaction/{uid}", data=form)
    raise RuntimeError("the node flow did not reach the client")


def prepare_node(base_url: str) -> Prepared:
    http = httpx.Client(base_url=base_url, timeout=30.0)
    verifier, challenge = pkce()

    def params(resource: bool) -> dict[str, str]:
        scope = f"openid email {SCOPE}" if resource else "openid email"
        base = {
            "client_id": WEB,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "bench",
            "scope": scope,
        }
        return {**base, "resource": RESOURCE} if resource else base

    def code_flow(resource: bool) -> dict[str, str]:
        code = node_code(http, params(resource))
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI,
        }
        return token(http, WEB, form | ({"resource": RESOURCE} if resource else {}), "/token")

    userinfo_token = code_flow(resource=False)["access_token"]
    code_flow(resource=True)
    cc = {"grant_type": "client_credentials", "scope": SCOPE, "resource": RESOURCE}
    # node-oidc-provider refuses to introspect JWT access tokens (unsupported_token_type), so
    # its row introspects an opaque one: the service's own token, issued without a resource.
    cc_opaque = {"grant_type": "client_credentials", "scope": SCOPE}
    opaque = token(http, SERVICE, cc_opaque, "/token")["access_token"]
    cookie = site_cookies(http)
    return Prepared(
        base_url=base_url,
        token_path="/token",
        introspect_path="/token/introspection",
        userinfo_path="/me",
        jwks_path="/jwks",
        discovery_path="/.well-known/openid-configuration",
        cc_body=urlencode(cc),
        introspect_body=urlencode({"token": opaque}),
        introspector=SERVICE,
        introspected="an opaque",
        userinfo_bearer=f"Bearer {userinfo_token}",
        authorize_path="/auth?" + urlencode(params(resource=True)),
        cookie=cookie,
        redeem_tail="&"
        + urlencode(
            {"code_verifier": verifier, "redirect_uri": REDIRECT_URI, "resource": RESOURCE}
        ),
        refresh_tail="&" + urlencode({"resource": RESOURCE}),
        refresh_tokens=lambda n: [code_flow(resource=True)["refresh_token"] for _ in range(n)],
    )
