"""The Federation actor against a fake upstream OpenID Connect provider (issue 6): oauthd as
the relying party of OIDC Core §3.1, driven message by message. The upstream is an in-process
httpx transport; the env clock is moved by hand for expiry and caches, and trio's autojump
clock stands in for the upstream's silence, so nothing really waits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote_plus, urlsplit

import httpx
import jwt
import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from oauthd.actors.federation import (
    EXPIRED,
    MIN_KEY_REFETCH_S,
    BeginLogin,
    CollectLogins,
    FinishLogin,
    LoggedIn,
    LoginFailed,
    federation_address,
)
from oauthd.errors import InvalidRequest
from oauthd.oauth.oidc_federation import CLOCK_SKEW_S, UpstreamIdentity, derive
from oauthd.runtime import ActorSystem, Message
from oauthd.server import TENANT, Runtime, open_runtime
from oauthd.settings import FederationSettings, Settings
from tests.conftest import ISSUER, ManualClock

R = TypeVar("R")
IDP = "https://idp.test"
CALLBACK = ISSUER + "/callback"
CLIENT_ID = "oauthd"
SECRET_ENV = "UPSTREAM_SECRET"
# Form encoding before Basic (RFC 6749 §2.3.1) must carry ':', '%', '+' and ' ' through intact.
SECRET = "upstream:secret%25 with+odd/chars-0123456789abcdef"
BROWSER = "login-cookie-of-the-browser"
REQUEST = "request-1"
SUBJECT = "248289761001"
EMAIL = "alice@example.com"
NAME = "Alice Upstream"
UNREACHABLE = "the sign-in service is not reachable right now; try again shortly"
DISCOVERY = "/.well-known/openid-configuration"

# Keys are made once: RSA generation is the slowest thing here.
RSA_1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
IMPOSTOR = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_1 = ec.generate_private_key(ec.SECP256R1())
KEYS: dict[str, tuple[str, Any]] = {
    "rsa-1": ("RS256", RSA_1),
    "rsa-2": ("RS256", RSA_2),
    "ec-1": ("ES256", EC_1),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode()).digest())


def public_jwk(kid: str) -> dict[str, Any]:
    alg, key = KEYS[kid]
    family = RSAAlgorithm if alg == "RS256" else ECAlgorithm
    jwk: dict[str, Any] = family.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    parts = (json.dumps(header).encode(), json.dumps(claims).encode())
    return ".".join(b64url(p) for p in parts) + "."


# --- the fake upstream ---------------------------------------------------------------------


@dataclass
class Grant:
    """What the fake upstream issued a code for, and what its token endpoint will answer."""

    redirect_uri: str
    challenge: str
    id_token: str | None
    userinfo: dict[str, Any]
    reply: httpx.Response | None


@dataclass
class FakeIdP:
    """An OpenID provider at https://idp.test: discovery, JWKS, token endpoint (checking
    the code, redirect_uri, PKCE and client authentication), userinfo. Tests change its
    documents, break or silence its endpoints, and count what it was asked."""

    clock: ManualClock
    metadata: dict[str, Any] = field(
        default_factory=lambda: {
            "issuer": IDP,
            "authorization_endpoint": f"{IDP}/authorize",
            "token_endpoint": f"{IDP}/token",
            "userinfo_endpoint": f"{IDP}/userinfo",
            "jwks_uri": f"{IDP}/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }
    )
    published: list[str] = field(default_factory=lambda: ["rsa-1", "ec-1"])
    signing_kid: str = "rsa-1"
    hang: set[str] = field(default_factory=set)  # paths that never answer
    broken: set[str] = field(default_factory=set)  # paths that answer 500
    requests: Counter[str] = field(default_factory=Counter)
    auth_methods: list[str] = field(default_factory=list)  # as the token endpoint saw them
    basic_credentials: list[tuple[str, str]] = field(default_factory=list)
    grants: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> userinfo
    last_auth_time: int = 0  # the auth_time of the last ID token issued

    def claims(self, nonce: str) -> dict[str, Any]:
        now = int(self.clock.now())
        return {
            "iss": IDP,
            "sub": SUBJECT,
            "aud": CLIENT_ID,
            "exp": now + 300,
            "iat": now,
            "auth_time": now,
            "nonce": nonce,
            "email": EMAIL,
            "email_verified": True,
            "name": NAME,
        }

    def authorize(
        self,
        url: str,
        *,
        claims: dict[str, Any] | None = None,
        kid: str | None = None,
        key: Any = None,
        id_token: str | None = None,
        userinfo: dict[str, Any] | None = None,
        reply: httpx.Response | None = None,
    ) -> str:
        """The person logged in at the upstream: a code for this authorization URL. `claims`
        change the ID token (None removes a claim); `key` signs it in place of `kid`'s own;
        `id_token` replaces it; `reply` replaces the token endpoint's answer."""
        assert url.startswith(f"{IDP}/authorize?")
        params = query(url)
        assert params["client_id"] == CLIENT_ID
        assert params["redirect_uri"] == CALLBACK
        assert params["code_challenge_method"] == "S256"
        token_claims = {
            name: value
            for name, value in (self.claims(params["nonce"]) | (claims or {})).items()
            if value is not None
        }
        self.last_auth_time = token_claims.get("auth_time", 0)
        kid = kid or self.signing_kid
        alg, own_key = KEYS.get(kid, ("RS256", None))
        if id_token is None:
            signer = key if key is not None else own_key
            id_token = jwt.encode(token_claims, signer, algorithm=alg, headers={"kid": kid})
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(
            params["redirect_uri"],
            params["code_challenge"],
            id_token,
            {"sub": SUBJECT, "email": EMAIL, "email_verified": True, "name": NAME}
            if userinfo is None
            else userinfo,
            reply,
        )
        return code

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests[path] += 1
        assert request.url.scheme == "https"
        assert request.url.host == "idp.test"
        if path in self.hang:
            await trio.sleep_forever()
        if path in self.broken:
            return httpx.Response(500, text="upstream on fire")
        if path == DISCOVERY:
            return httpx.Response(200, json=self.metadata)
        if path == "/jwks":
            return httpx.Response(200, json={"keys": [public_jwk(k) for k in self.published]})
        if path == "/token":
            return self.token(request)
        if path == "/userinfo":
            found = self.access.get(request.headers.get("authorization", ""))
            return httpx.Response(200, json=found) if found else httpx.Response(401)
        return httpx.Response(404)

    def token(self, request: httpx.Request) -> httpx.Response:
        """OIDC Core §3.1.3.1-3 with RFC 7636 §4.6 and RFC 6749 §2.3.1."""
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if not self.authenticated(request, form):
            return httpx.Response(401, json={"error": "invalid_client"})
        grant = self.grants.pop(form.get("code", ""), None)
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant.redirect_uri
            or s256(form.get("code_verifier", "")) != grant.challenge
        ):
            return httpx.Response(400, json={"error": "invalid_grant"})
        if grant.reply is not None:
            return grant.reply
        access_token = secrets.token_urlsafe(16)
        self.access[f"Bearer {access_token}"] = grant.userinfo
        body = {"access_token": access_token, "token_type": "Bearer", "expires_in": 300}
        if grant.id_token is not None:
            body["id_token"] = grant.id_token
        return httpx.Response(200, json=body)

    def authenticated(self, request: httpx.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            method = "client_secret_basic"
            pair = base64.b64decode(header.removeprefix("Basic ")).decode()
            client_id, _, secret = pair.partition(":")
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
            self.basic_credentials.append((client_id, secret))
        else:
            method = "client_secret_post"
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        self.auth_methods.append(method)
        allowed = self.metadata.get("token_endpoint_auth_methods_supported", [])
        return method in allowed and (client_id, secret) == (CLIENT_ID, SECRET)


# --- oauthd federating to it ---------------------------------------------------------------


@dataclass
class Federated:
    """A runtime whose federation actor talks to the fake upstream."""

    system: ActorSystem
    idp: FakeIdP
    clock: ManualClock
    settings: Settings

    async def ask(self, message: Message[R]) -> R:
        return await self.system.ask(federation_address(TENANT), message)

    async def begin(
        self,
        *,
        binding: str = BROWSER,
        request_id: str = REQUEST,
        login_hint: str | None = None,
        max_age: int | None = None,
        force_login: bool = False,
    ) -> str:
        url = await self.ask(BeginLogin(request_id, binding, login_hint, max_age, force_login))
        return url

    async def finish(
        self, url: str, code: str | None, *, binding: str = BROWSER, error: str | None = None
    ) -> LoggedIn | LoginFailed:
        result = await self.ask(FinishLogin(query(url)["state"], binding, code, error, None))
        return result

    async def login(self, **grant: Any) -> LoggedIn | LoginFailed:
        """BeginLogin, the person at the upstream (`grant` shapes what it issues), FinishLogin."""
        url = await self.begin()
        return await self.finish(url, self.idp.authorize(url, **grant))


def federation_settings() -> FederationSettings:
    return FederationSettings(
        provider="oidc", issuer=IDP, client_id=CLIENT_ID, client_secret_env=SECRET_ENV
    )


@asynccontextmanager
async def running(settings: Settings, clock: ManualClock, idp: FakeIdP) -> AsyncIterator[Federated]:
    async with trio.open_nursery() as nursery:
        runtime: Runtime = await nursery.start(
            partial(
                open_runtime,
                settings,
                clock=clock,
                environ={SECRET_ENV: SECRET},
                fetch_transport=httpx.MockTransport(idp.handle),
                janitor=False,
            )
        )
        yield Federated(runtime.system, idp, clock, settings)
        nursery.cancel_scope.cancel()


@pytest.fixture
def idp(clock: ManualClock) -> FakeIdP:
    return FakeIdP(clock)


@pytest.fixture
async def federated(
    make_settings: Callable[..., Settings], clock: ManualClock, idp: FakeIdP
) -> AsyncIterator[Federated]:
    settings = make_settings(dev_mode=False, federation=federation_settings())
    async with running(settings, clock, idp) as federated:
        yield federated


def failed(denied: bool = False) -> LoginFailed:
    return LoginFailed(REQUEST, denied=denied)


def logged_in(email: str = EMAIL, name: str = NAME, *, auth_time: int) -> LoggedIn:
    return LoggedIn(REQUEST, UpstreamIdentity(SUBJECT, email, name, auth_time))


def assert_invalid_request(info: pytest.ExceptionInfo[InvalidRequest], description: str) -> None:
    assert type(info.value) is InvalidRequest
    assert info.value.code == "invalid_request"
    assert info.value.description == description


# --- the code flow ---------------------------------------------------------------------------


async def test_oidc_3_1_3_7_a_valid_id_token_logs_the_person_in(federated: Federated) -> None:
    """OIDC Core §3.1.3.7: a valid ID token answers who logged in, with the verified email."""
    result = await federated.login()
    assert result == logged_in(auth_time=federated.idp.last_auth_time)


async def test_oidc_3_1_3_7_an_es256_id_token_is_verified_with_its_kid(
    federated: Federated,
) -> None:
    """OIDC Core §10.1: the key is the one the header's kid names, here an EC P-256 key."""
    result = await federated.login(kid="ec-1")
    assert isinstance(result, LoggedIn)
    assert result.identity.subject == SUBJECT


async def test_oidc_3_1_2_1_authorization_url_carries_the_code_flow_parameters(
    federated: Federated,
) -> None:
    """OIDC Core §3.1.2.1 with RFC 7636 §4.3: response_type=code, client_id, redirect_uri,
    scope with openid, state, nonce and an S256 code_challenge; nothing not asked for."""
    url = await federated.begin()
    assert url.startswith(f"{IDP}/authorize?")
    params = query(url)
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == CALLBACK
    assert params["scope"] == "openid email profile"
    assert len(params["state"]) >= 43
    assert len(params["nonce"]) >= 43
    assert params["nonce"] != params["state"]
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert not {"login_hint", "max_age", "prompt"} & params.keys()


async def test_oidc_3_1_2_1_each_login_has_its_own_state_nonce_and_challenge(
    federated: Federated,
) -> None:
    """RFC 6749 §10.12, OIDC Core §15.5.2, RFC 7636 §4.1: fresh random values per login."""
    first, second = query(await federated.begin()), query(await federated.begin())
    for name in ("state", "nonce", "code_challenge"):
        assert first[name] != second[name]


async def test_rfc7636_s1_the_verifier_is_not_computable_from_the_state(
    federated: Federated,
) -> None:
    """RFC 7636 §1: PKCE must hold when the callback (code and state) is intercepted, so the
    code_verifier is no function of the state, which travels in both front-channel URLs."""
    params = query(await federated.begin())
    state = params["state"]
    keyed_by_state = b64url(hmac.new(state.encode(), b"pkce", hashlib.sha256).digest())
    from_state_alone = [state, keyed_by_state, derive(state, "", "pkce")]
    assert params["code_challenge"] not in [s256(v) for v in from_state_alone]


async def test_oidc_3_1_2_1_login_hint_max_age_and_prompt_login_are_forwarded(
    federated: Federated,
) -> None:
    """OIDC Core §3.1.2.1: login_hint and max_age pass through, a forced login asks
    prompt=login; a fresh upstream login then satisfies both."""
    url = await federated.begin(login_hint=EMAIL, max_age=300, force_login=True)
    params = query(url)
    assert params["login_hint"] == EMAIL
    assert params["max_age"] == "300"
    assert params["prompt"] == "login"
    result = await federated.finish(url, federated.idp.authorize(url))
    assert result == logged_in(auth_time=federated.idp.last_auth_time)


async def test_oidc_3_1_3_7_item_13_an_old_login_does_not_satisfy_max_age(
    federated: Federated,
) -> None:
    """OIDC Core §3.1.3.7 item 13: with max_age, an auth_time older than it fails the login."""
    url = await federated.begin(max_age=60)
    auth_time = int(federated.clock.now()) - 60 - CLOCK_SKEW_S - 10
    result = await federated.finish(
        url, federated.idp.authorize(url, claims={"auth_time": auth_time})
    )
    assert result == failed()


async def test_oidc_3_1_2_1_prompt_login_refuses_a_reused_upstream_session(
    federated: Federated,
) -> None:
    """OIDC Core §3.1.2.1 prompt=login: an auth_time from before the login began means the
    upstream did not reauthenticate; the login fails."""
    url = await federated.begin(force_login=True)
    auth_time = int(federated.clock.now()) - CLOCK_SKEW_S - 10
    result = await federated.finish(
        url, federated.idp.authorize(url, claims={"auth_time": auth_time})
    )
    assert result == failed()


# --- state: single use, bound to the browser, expiring ----------------------------------------


async def test_rfc6749_s10_12_unknown_state_is_invalid_request(federated: Federated) -> None:
    """RFC 6749 §10.12: a state this server did not issue starts nothing."""
    with pytest.raises(InvalidRequest) as info:
        await federated.ask(FinishLogin("never-issued", BROWSER, "code", None, None))
    assert_invalid_request(info, EXPIRED)


async def test_rfc6749_s10_12_replayed_state_is_invalid_request(federated: Federated) -> None:
    """RFC 9700 §4.7.1: a state is used once; the second callback with it is refused."""
    url = await federated.begin()
    code = federated.idp.authorize(url)
    assert isinstance(await federated.finish(url, code), LoggedIn)
    with pytest.raises(InvalidRequest) as info:
        await federated.finish(url, code)
    assert_invalid_request(info, EXPIRED)


async def test_rfc6749_s10_12_state_from_another_browser_is_invalid_and_not_consumed(
    federated: Federated,
) -> None:
    """RFC 6749 §10.12: the state is bound to the browser that started the login; another
    browser's callback is refused and does not use it up for the right one."""
    url = await federated.begin()
    code = federated.idp.authorize(url)
    with pytest.raises(InvalidRequest) as info:
        await federated.finish(url, code, binding="an-attackers-login-cookie")
    assert_invalid_request(info, EXPIRED)
    result = await federated.finish(url, code)
    assert result == logged_in(auth_time=federated.idp.last_auth_time)


async def test_expired_login_is_invalid_request(federated: Federated) -> None:
    """federation.login_ttl_s: a callback after the login expired is refused."""
    url = await federated.begin()
    code = federated.idp.authorize(url)
    federated.clock.advance(federated.settings.federation.login_ttl_s + 1)
    with pytest.raises(InvalidRequest) as info:
        await federated.finish(url, code)
    assert_invalid_request(info, EXPIRED)


async def test_collect_logins_deletes_the_expired_logins_only(federated: Federated) -> None:
    """The janitor's CollectLogins deletes expired pending logins and keeps live ones."""
    ttl = federated.settings.federation.login_ttl_s
    old = await federated.begin(binding="old-browser")
    await federated.begin(binding="older-browser")
    federated.clock.advance(ttl // 2 + 1)
    young = await federated.begin(binding="young-browser")
    federated.clock.advance(ttl // 2)
    assert await federated.ask(CollectLogins()) == 2
    assert await federated.ask(CollectLogins()) == 0
    result = await federated.finish(young, federated.idp.authorize(young), binding="young-browser")
    assert isinstance(result, LoggedIn)
    with pytest.raises(InvalidRequest):
        await federated.finish(old, federated.idp.authorize(old), binding="old-browser")


# --- the ID token (OIDC Core §3.1.3.7) --------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"iss": "https://evil.test"}, id="item-2-wrong-iss"),
        pytest.param({"iss": IDP + "/"}, id="item-2-iss-not-exactly-equal"),
        pytest.param({"aud": "another-client"}, id="item-3-wrong-aud"),
        pytest.param({"aud": [CLIENT_ID, "another-client"]}, id="item-4-several-aud-no-azp"),
        pytest.param({"azp": "another-client"}, id="item-5-azp-of-another-client"),
        pytest.param({"exp": None}, id="item-9-no-exp"),
        pytest.param({"nonce": "another-logins-nonce"}, id="item-11-wrong-nonce"),
        pytest.param({"nonce": None}, id="item-11-no-nonce"),
        pytest.param({"sub": None}, id="sub-missing"),
        pytest.param({"sub": "x" * 256}, id="sub-too-long"),
    ],
)
async def test_oidc_3_1_3_7_a_failing_id_token_check_fails_the_login(
    federated: Federated, claims: dict[str, Any]
) -> None:
    """OIDC Core §3.1.3.7: "If any of the validation procedures ... fail", the login fails
    with server_error, not access_denied."""
    assert await federated.login(claims=claims) == failed()


async def test_oidc_3_1_3_7_item_9_expired_beyond_the_skew_fails_the_login(
    federated: Federated,
) -> None:
    """OIDC Core §3.1.3.7 item 9: an exp more than the tolerated skew in the past fails."""
    now = int(federated.clock.now())
    expired = {"exp": now - CLOCK_SKEW_S - 1, "iat": now - 600, "auth_time": now - 600}
    assert await federated.login(claims=expired) == failed()


async def test_oidc_3_1_3_7_item_10_issued_in_the_future_fails_the_login(
    federated: Federated,
) -> None:
    """OIDC Core §3.1.3.7 item 10: an iat beyond the skew in the future fails."""
    now = int(federated.clock.now())
    assert await federated.login(claims={"iat": now + CLOCK_SKEW_S + 10}) == failed()


async def test_oidc_3_1_3_7_item_4_5_azp_naming_us_is_accepted(federated: Federated) -> None:
    """OIDC Core §3.1.3.7 items 4-5: several audiences with azp = our client id verify."""
    result = await federated.login(claims={"aud": [CLIENT_ID, "api"], "azp": CLIENT_ID})
    assert isinstance(result, LoggedIn)


async def test_oidc_3_1_3_7_item_6_a_signature_by_another_key_with_the_same_kid_fails(
    federated: Federated,
) -> None:
    """OIDC Core §3.1.3.7 item 6: the signature must verify with the upstream's key; a token
    signed by another key claiming its kid fails the login."""
    assert await federated.login(key=IMPOSTOR, kid="rsa-1") == failed()


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_rfc8725_s3_1_alg_none_and_hmac_id_tokens_are_refused(
    federated: Federated, alg: str
) -> None:
    """RFC 8725 §3.1, OIDC Core §3.1.3.7 item 7: unsigned and HMAC ID tokens are refused,
    even when the upstream's metadata lists those algorithms."""
    federated.idp.metadata["id_token_signing_alg_values_supported"] = ["none", "HS256", "RS256"]
    url = await federated.begin()
    claims = federated.idp.claims(query(url)["nonce"])
    header = {"alg": alg, "kid": "rsa-1", "typ": "JWT"}
    token = (
        unsigned(header, claims)
        if alg == "none"
        else jwt.encode(claims, SECRET.encode(), algorithm="HS256", headers={"kid": "rsa-1"})
    )
    result = await federated.finish(url, federated.idp.authorize(url, id_token=token))
    assert result == failed()


@pytest.mark.parametrize("id_token", ["not-a-jwt", "e30.e30"])
async def test_oidc_3_1_3_7_a_malformed_id_token_fails_the_login(
    federated: Federated, id_token: str
) -> None:
    """OIDC Core §3.1.3.7: an ID token that is not a JWS fails the login, no crash."""
    assert await federated.login(id_token=id_token) == failed()


# --- email and userinfo ----------------------------------------------------------------------


@pytest.mark.parametrize("verified", [False, None], ids=["false", "absent"])
async def test_oidc_5_1_an_unverified_email_is_not_taken(
    federated: Federated, verified: Any
) -> None:
    """OIDC Core §5.1 email_verified: an email the upstream did not verify is dropped."""
    userinfo = {"sub": SUBJECT, "email": EMAIL, "email_verified": verified, "name": NAME}
    result = await federated.login(claims={"email_verified": verified}, userinfo=userinfo)
    assert result == logged_in(email="", auth_time=federated.idp.last_auth_time)


async def test_oidc_5_1_email_verified_as_the_string_true_is_accepted(
    federated: Federated,
) -> None:
    """Some providers send email_verified as the string "true"; it counts as verified."""
    result = await federated.login(claims={"email_verified": "true"})
    assert result == logged_in(auth_time=federated.idp.last_auth_time)


async def test_oidc_5_3_userinfo_fills_in_a_missing_email_and_name(
    federated: Federated,
) -> None:
    """OIDC Core §5.3: when the ID token lacks email and name, userinfo supplies them."""
    result = await federated.login(claims={"email": None, "email_verified": None, "name": None})
    assert result == logged_in(auth_time=federated.idp.last_auth_time)
    assert federated.idp.requests["/userinfo"] == 1


async def test_oidc_5_3_userinfo_is_not_asked_when_the_id_token_has_everything(
    federated: Federated,
) -> None:
    """OIDC Core §5.3 is optional: a complete ID token needs no userinfo call."""
    assert isinstance(await federated.login(), LoggedIn)
    assert federated.idp.requests["/userinfo"] == 0


async def test_oidc_5_3_2_userinfo_about_another_subject_fails_the_login(
    federated: Federated,
) -> None:
    """OIDC Core §5.3.2: "the sub Claim in the UserInfo Response MUST be verified to exactly
    match the sub Claim in the ID Token"; otherwise the login fails."""
    other = {"sub": "someone-else", "email": "mallory@example.com", "email_verified": True}
    result = await federated.login(claims={"email": None, "name": None}, userinfo=other)
    assert result == failed()


async def test_oidc_5_3_a_failing_userinfo_keeps_the_id_tokens_identity(
    federated: Federated,
) -> None:
    """OIDC Core §5.3 is best effort: userinfo down leaves the email empty, the login stands."""
    federated.idp.broken.add("/userinfo")
    result = await federated.login(claims={"email": None})
    assert result == logged_in(email="", auth_time=federated.idp.last_auth_time)


# --- upstream errors -------------------------------------------------------------------------


async def test_oidc_3_1_2_6_access_denied_at_the_upstream_is_denied(federated: Federated) -> None:
    """OIDC Core §3.1.2.6: the person refused upstream; the client learns access_denied."""
    url = await federated.begin()
    assert await federated.finish(url, None, error="access_denied") == failed(denied=True)


async def test_oidc_3_1_2_6_another_upstream_error_is_not_a_denial(federated: Federated) -> None:
    """OIDC Core §3.1.2.6: any other error (server_error) fails the login as server_error."""
    url = await federated.begin()
    assert await federated.finish(url, None, error="server_error") == failed(denied=False)


async def test_oidc_3_1_2_5_a_callback_with_neither_code_nor_error_fails(
    federated: Federated,
) -> None:
    """OIDC Core §3.1.2.5: a successful response carries a code; without one, the login fails."""
    url = await federated.begin()
    assert await federated.finish(url, None) == failed()


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(httpx.Response(400, json={"error": "invalid_grant"}), id="invalid-grant"),
        pytest.param(httpx.Response(200, json={"access_token": "at"}), id="no-id-token"),
        pytest.param(httpx.Response(200, text="<html>oops</html>"), id="not-json"),
        pytest.param(httpx.Response(302, headers={"Location": f"{IDP}/x"}), id="redirect"),
    ],
)
async def test_oidc_3_1_3_4_an_unusable_token_response_fails_the_login(
    federated: Federated, reply: httpx.Response
) -> None:
    """OIDC Core §3.1.3.3-4: a token error or a response without a usable ID token fails."""
    assert await federated.login(reply=reply) == failed()


async def test_rfc6749_s4_1_3_the_code_is_sent_with_its_redirect_uri_and_verifier(
    federated: Federated,
) -> None:
    """RFC 6749 §4.1.3, RFC 7636 §4.5: the fake upstream checks grant_type, code,
    redirect_uri and the PKCE verifier; a code it did not issue is invalid_grant."""
    url = await federated.begin()
    federated.idp.authorize(url)
    assert await federated.finish(url, "a-code-never-issued") == failed()


# --- the upstream does not answer ------------------------------------------------------------


async def test_discovery_that_never_answers_fails_begin_within_timeout(
    federated: Federated, autojump_clock: trio.testing.MockClock
) -> None:
    """federation.timeout_s bounds discovery: BeginLogin answers invalid_request in time."""
    federated.idp.hang.add(DISCOVERY)
    start = trio.current_time()
    with pytest.raises(InvalidRequest) as info:
        await federated.begin()
    elapsed = trio.current_time() - start
    assert_invalid_request(info, UNREACHABLE)
    timeout_s = federated.settings.federation.timeout_s
    assert timeout_s <= elapsed <= timeout_s + 0.1


async def test_token_endpoint_that_never_answers_fails_the_login_within_timeout(
    federated: Federated, autojump_clock: trio.testing.MockClock
) -> None:
    """federation.timeout_s bounds the code exchange: the login fails, it does not hang."""
    url = await federated.begin()
    code = federated.idp.authorize(url)
    federated.idp.hang.add("/token")
    start = trio.current_time()
    result = await federated.finish(url, code)
    elapsed = trio.current_time() - start
    assert result == failed()
    timeout_s = federated.settings.federation.timeout_s
    assert timeout_s <= elapsed <= timeout_s + 0.1


async def test_a_silent_upstream_delays_only_its_own_login(
    federated: Federated, autojump_clock: trio.testing.MockClock
) -> None:
    """The federation actor is concurrent: a login waiting on a silent token endpoint does not
    hold up another browser's BeginLogin."""
    url = await federated.begin()
    code = federated.idp.authorize(url)
    federated.idp.hang.add("/token")
    outcome: list[LoggedIn | LoginFailed] = []

    async def slow() -> None:
        outcome.append(await federated.finish(url, code))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow)
        await trio.sleep(1)
        start = trio.current_time()
        await federated.begin(binding="another-browser")
        assert trio.current_time() - start < 0.1
        assert outcome == []
    assert outcome == [failed()]


# --- discovery -------------------------------------------------------------------------------


async def test_oidc_discovery_4_3_an_issuer_mismatch_is_refused(federated: Federated) -> None:
    """OIDC Discovery §4.3: the document's issuer MUST be identical to the configured one."""
    federated.idp.metadata["issuer"] = "https://evil.test"
    with pytest.raises(InvalidRequest) as info:
        await federated.begin()
    assert_invalid_request(info, UNREACHABLE)


async def test_oidc_discovery_4_3_an_http_endpoint_is_refused(federated: Federated) -> None:
    """OIDC Discovery §3: endpoints of an https upstream are https URLs."""
    federated.idp.metadata["token_endpoint"] = "http://idp.test/token"
    with pytest.raises(InvalidRequest) as info:
        await federated.begin()
    assert_invalid_request(info, UNREACHABLE)


async def test_discovery_is_fetched_once_and_again_after_metadata_ttl(
    federated: Federated,
) -> None:
    """federation.metadata_ttl_s: several logins share one discovery document (and one JWKS);
    after the TTL both are fetched again."""
    for _ in range(3):
        assert isinstance(await federated.login(), LoggedIn)
    assert federated.idp.requests[DISCOVERY] == 1
    assert federated.idp.requests["/jwks"] == 1
    federated.clock.advance(federated.settings.federation.metadata_ttl_s)
    assert isinstance(await federated.login(), LoggedIn)
    assert federated.idp.requests[DISCOVERY] == 2
    assert federated.idp.requests["/jwks"] == 2


@pytest.mark.parametrize("failure", ["broken", "hang", "issuer-changed"])
async def test_a_stale_discovery_document_serves_while_the_refetch_fails(
    federated: Federated, autojump_clock: trio.testing.MockClock, failure: str
) -> None:
    """The cached discovery document keeps logins working while the upstream's discovery is
    down, silent or suddenly wrong after metadata_ttl_s."""
    assert isinstance(await federated.login(), LoggedIn)
    federated.clock.advance(federated.settings.federation.metadata_ttl_s + 1)
    if failure == "broken":
        federated.idp.broken.add(DISCOVERY)
    elif failure == "hang":
        federated.idp.hang.add(DISCOVERY)
    else:
        federated.idp.metadata["issuer"] = "https://evil.test"
    assert isinstance(await federated.login(), LoggedIn)
    assert federated.idp.requests[DISCOVERY] >= 2


async def test_a_silent_discovery_does_not_hold_every_login_for_a_timeout(
    federated: Federated, autojump_clock: trio.testing.MockClock
) -> None:
    """A slow upstream delays only the login waiting on it: once a refetch of the stale
    document has timed out, the logins queued behind it take the cached copy instead of
    waiting timeout_s each in turn."""
    assert isinstance(await federated.login(), LoggedIn)
    federated.clock.advance(federated.settings.federation.metadata_ttl_s + 1)
    federated.idp.hang.add(DISCOVERY)
    timeout_s = federated.settings.federation.timeout_s
    start = trio.current_time()
    took: list[float] = []

    async def begin(binding: str) -> None:
        await federated.begin(binding=binding)
        took.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(begin, f"browser-{i}")
    assert max(took) <= timeout_s + 0.1
    assert federated.idp.requests[DISCOVERY] == 2
    await federated.begin()  # within the retry pause: no new attempt, no wait
    assert trio.current_time() - start <= timeout_s + 0.1
    assert federated.idp.requests[DISCOVERY] == 2


# --- the upstream's keys ---------------------------------------------------------------------


async def test_oidc_10_1_1_a_rotated_upstream_key_is_fetched_on_its_unknown_kid(
    federated: Federated,
) -> None:
    """OIDC Core §10.1.1: the upstream rotates to a key with a new kid; the next login finds
    it by refetching the JWKS before metadata_ttl_s is up."""
    assert isinstance(await federated.login(), LoggedIn)
    federated.idp.published = ["rsa-2"]
    federated.idp.signing_kid = "rsa-2"
    federated.clock.advance(MIN_KEY_REFETCH_S)
    result = await federated.login()
    assert result == logged_in(auth_time=federated.idp.last_auth_time)
    assert federated.idp.requests["/jwks"] == 2
    assert federated.idp.requests[DISCOVERY] == 1


async def test_oidc_10_1_1_a_kid_missing_from_the_refetched_keys_fails_the_login(
    federated: Federated,
) -> None:
    """OIDC Core §10.1.1: a kid the upstream does not publish even after a refetch fails."""
    assert isinstance(await federated.login(), LoggedIn)
    federated.clock.advance(MIN_KEY_REFETCH_S)
    assert await federated.login(kid="ghost", key=IMPOSTOR) == failed()
    assert federated.idp.requests["/jwks"] == 2


async def test_an_unknown_kid_refetches_the_keys_at_most_once_per_min_key_refetch(
    federated: Federated,
) -> None:
    """MIN_KEY_REFETCH_S: tokens with unknown kids cannot make oauthd hammer the upstream."""
    assert isinstance(await federated.login(), LoggedIn)
    for _ in range(3):
        assert await federated.login(kid="ghost", key=IMPOSTOR) == failed()
    assert federated.idp.requests["/jwks"] == 1
    federated.clock.advance(MIN_KEY_REFETCH_S)
    for _ in range(3):
        assert await federated.login(kid="ghost", key=IMPOSTOR) == failed()
    assert federated.idp.requests["/jwks"] == 2


# --- client authentication at the upstream's token endpoint ----------------------------------


async def test_rfc6749_s2_3_1_basic_carries_the_form_encoded_id_and_secret(
    federated: Federated,
) -> None:
    """RFC 6749 §2.3.1, OIDC Core §9: client_secret_basic by default, each part form-encoded
    before Basic, so a secret with ':', '%', '+' and ' ' arrives intact."""
    assert isinstance(await federated.login(), LoggedIn)
    assert federated.idp.auth_methods == ["client_secret_basic"]
    assert federated.idp.basic_credentials == [(CLIENT_ID, SECRET)]


async def test_oidc_9_client_secret_post_when_the_upstream_offers_only_that(
    federated: Federated,
) -> None:
    """OIDC Core §9: with only client_secret_post in the upstream's metadata, the secret goes
    in the body."""
    federated.idp.metadata["token_endpoint_auth_methods_supported"] = ["client_secret_post"]
    assert isinstance(await federated.login(), LoggedIn)
    assert federated.idp.auth_methods == ["client_secret_post"]
