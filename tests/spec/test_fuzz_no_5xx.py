"""No input makes oauthd answer 5xx (ERR-1, ERR-2, ERR-4: bad input gets a clear 4xx, never a
500): a seeded generator sends malformed forms, JSON, content types, JWT-shaped tokens,
Authorization headers and methods to every endpoint of a running server. A few hundred
requests, deterministic (one `random.Random` seed), so a failure replays exactly."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import jwt

from tests.conftest import Server
from tests.flow import LOOPBACK, RESOURCE, Authorization, form_field, register
from tests.spec.test_rfc7009_revocation import CONF_ID, CONF_SECRET, confidential_tokens, server_key
from tests.spec.test_rfc7515_jws_input import b64, server

__all__ = ["server"]  # the fixture: oauthd with a confidential client, as for the JWS tests

SEED = 20_514
FORM = "application/x-www-form-urlencoded"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANTS = ("authorization_code", "refresh_token", "client_credentials", DEVICE_GRANT, "password")
CONF_BASIC = {
    "Authorization": "Basic " + base64.b64encode(f"{CONF_ID}:{CONF_SECRET}".encode()).decode()
}
TRACEBACK = ("Traceback", 'File "/', "RecursionError", "Error:")

# Every endpoint, with the methods it serves.
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "/.well-known/oauth-authorization-server": ("GET",),
    "/.well-known/openid-configuration": ("GET",),
    "/.well-known/oauth-protected-resource": ("GET",),
    "/.well-known/jwks.json": ("GET",),
    "/authorize": ("GET", "POST"),
    "/token": ("POST",),
    "/register": ("POST",),
    "/revoke": ("POST",),
    "/introspect": ("POST",),
    "/userinfo": ("GET", "POST"),
    "/device_authorization": ("POST",),
    "/device": ("GET", "POST"),
    "/login": ("GET", "POST"),
    "/consent": ("GET", "POST"),
    "/callback": ("GET",),
    "/logout": ("GET", "POST"),
    "/healthz": ("GET",),
    "/metrics": ("GET",),
}
FIELDS = (
    "client_id",
    "client_secret",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code",
    "code_verifier",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "prompt",
    "max_age",
    "refresh_token",
    "device_code",
    "user_code",
    "token",
    "token_type_hint",
    "request",
    "csrf",
    "email",
    "password",
    "decision",
    "client_assertion",
    "client_assertion_type",
    "error",
)


@dataclass
class Seeds:
    """Real values to mutate: the generator's mix of valid and broken input reaches deeper."""

    client_id: str
    access_token: str
    refresh_token: str
    registration_uri: str
    registration_token: str
    device_code: str
    user_code: str
    pending: dict[str, str]  # a consent form's request and csrf
    signed: list[str] = field(default_factory=list)  # validly signed, malformed claims


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.headers} {self.body[:120]!r}"


WRONG_CLAIMS: list[dict[str, Any]] = [
    {"exp": "soon", "iat": [], "scope": 5, "aud": {}, "client_id": [], "sub": None},
    {"exp": 10**400, "iat": -(10**30), "scope": ["a"], "aud": [1, 2], "jti": {"x": 1}},
    {"exp": 1e308, "client_id": CONF_ID, "sub": "", "aud": "", "jti": ""},
    {"client_id": "no-such-client", "jti": "j", "exp": 2**62},
    {"client_id": "\x00\u202e", "scope": "\ud800", "jti": "\u0000", "exp": 2**31},
    {"client_id": CONF_ID, "jti": "x" * 5000, "exp": 2**31, "scope": " " * 3000},
]


async def seeds_for(server: Server) -> Seeds:
    tokens = await confidential_tokens(server, resource=None, scope="openid email")
    access = tokens["access_token"]
    grants = ["authorization_code", "refresh_token", DEVICE_GRANT]
    client = await register(server.http, grant_types=grants)
    device = await server.http.post(
        "/device_authorization", data={"client_id": client["client_id"], "scope": "openid"}
    )
    auth = Authorization(client["client_id"])
    consent = await server.http.get("/authorize", params=auth.params)
    page = await server.http.get(consent.headers["location"])
    seeds = Seeds(
        client["client_id"],
        access,
        tokens.get("refresh_token", "rt_x_y"),
        client["registration_client_uri"].removeprefix(server.settings.issuer),
        client["registration_access_token"],
        device.json()["device_code"],
        device.json()["user_code"],
        {name: form_field(page.text, name) for name in ("request", "csrf")},
    )
    kid, key = server_key(server.settings, access)
    header = jwt.get_unverified_header(access)
    good = jwt.decode(access, options={"verify_signature": False})
    for changes in WRONG_CLAIMS:
        claims = json.dumps({**good, **changes}, allow_nan=True).encode("utf-8", "surrogatepass")
        seeds.signed.append(
            jwt.api_jws.encode(claims, key, algorithm=header["alg"], headers=header)
        )
    nested = jwt.api_jws.encode(b"[" * 900, key, algorithm="ES256", headers={"kid": kid})
    seeds.signed.append(nested)
    return seeds


# --- values --------------------------------------------------------------------------------


def hostile_tokens(seeds: Seeds) -> list[str]:
    """JWT-shaped tokens: a real one with a hostile header or payload (deep, huge numbers,
    NaN, not an object, not UTF-8, wrong types, bad base64url), junk in its signature, and
    validly signed ones with wrong claim types."""
    header, payload, signature = seeds.access_token.split(".")
    hostile = [
        b64(b"[" * 5000),
        b64(b'{"alg":"ES256","kid":' + b"9" * 5000 + b"}"),
        b64(b'{"alg":NaN,"kid":Infinity,"exp":1e999}'),
        b64(b'"just a string"'),
        b64(b"\xff\xfe\x00{"),
        b64(json.dumps({"alg": ["ES256"], "kid": {"a": 1}, "crit": 5, "sub": None}).encode()),
        "!!~~" + header,
        header + "==",
        "",
    ]
    junk = [f"{signature[:10]}{bad}{signature[10:]}" for bad in ("!!~~", "%", " ", "=", "\t")]
    return [
        *(f"{part}.{payload}.{signature}" for part in hostile),
        *(f"{header}.{part}.{signature}" for part in hostile),
        *(f"{header}.{payload}.{bad}" for bad in junk),
        *seeds.signed,
    ]


def mutated_jwt(rng: random.Random, seeds: Seeds) -> str:
    """One of the hostile tokens, or their segments shuffled into 1 to 5 parts."""
    tokens = hostile_tokens(seeds)
    if rng.random() < 0.8:
        return rng.choice(tokens)
    segments = [part for token in tokens[:20] for part in token.split(".")]
    return ".".join(rng.choice(segments) for _ in range(rng.randrange(1, 6)))


def odd_value(rng: random.Random, seeds: Seeds) -> str:
    return rng.choice(
        [
            "",
            "%zz",
            "%ff%fe",
            "\x00",
            "a\r\nSet-Cookie: x=1",
            "é\"\\'<script>",
            "x" * 17_000,
            "9" * 5000,
            "-1",
            "1e999",
            "NaN",
            "[]",
            "{}",
            "\ud83d\ude00",
            LOOPBACK,
            "http://127.0.0.1:5000@evil.example/cb",
            "javascript:alert(1)",
            RESOURCE,
            CONF_ID,
            seeds.client_id,
            seeds.refresh_token,
            seeds.refresh_token[:-1] + "A",
            "rt_" + "Z" * 40 + "_x",
            rng.choice(GRANTS),
            ASSERTION_TYPE,
            mutated_jwt(rng, seeds),
        ]
    )


def form_body(rng: random.Random, seeds: Seeds) -> bytes:
    """A form body, well formed or not: raw escapes, repeats, empty names, stray separators."""
    pairs = []
    for _ in range(rng.randrange(0, 8)):
        name = rng.choice([*FIELDS, "", "=", "a[]", "%zz", "grant_type"])
        pairs.append(f"{name}={odd_value(rng, seeds)}")
    glue = rng.choice(["&", "&&", ";", "&=&"])
    raw = glue.join(pairs).encode("utf-8", "surrogatepass")
    if rng.random() < 0.2:
        raw += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    return raw


def json_body(rng: random.Random, seeds: Seeds) -> bytes:
    """JSON that is broken, huge, deep or of the wrong shape."""
    return rng.choice(
        [
            b'{"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "\\ud800"}',
            b'{"redirect_uris": ["http://127.0.0.1/cb"], "\\udfff": {"a": ["\\ud800x"]}}',
            b'{"redirect_uris":',
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 3000 + b"1" + b"}" * 3000,
            b'{"redirect_uris": [' + b"9" * 5000 + b"]}",
            b'{"redirect_uris": ["http://127.0.0.1/cb"], "client_name": NaN}',
            b'{"redirect_uris": ["http://127.0.0.1/cb"], "jwks": ' + b"[" * 3000 + b"}",
            b'"a string"',
            b"null",
            b"\xff\xfe\xfd",
            json.dumps({"redirect_uris": [odd_value(rng, seeds)], "scope": 5}).encode(),
            json.dumps({"grant_types": {"a": 1}, "redirect_uris": "x", "jwks": "{}"}).encode(),
            json.dumps(
                {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": 1}]}}
            ).encode(),
            json.dumps({"client_id": 1, "redirect_uris": [LOOPBACK], "contacts": [[]]}).encode(),
        ]
    )


def content_type(rng: random.Random) -> str:
    return rng.choice(
        [
            FORM,
            f"{FORM}; charset=UTF-8",
            f"{FORM}; charset=klingon",
            f"{FORM}; charset=utf-16",
            "application/json",
            "application/json; charset=latin-1",
            "multipart/form-data; boundary=",
            "text/plain",
            "",
            "\x7f/\x7f",
        ]
    )


def authorization(rng: random.Random, seeds: Seeds) -> dict[str, str]:
    basic = base64.b64encode(f"{CONF_ID}:{CONF_SECRET}".encode()).decode()
    return rng.choice(
        [
            {},
            {"Authorization": "Basic !!!not-base64"},
            {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode()},
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
            {"Authorization": "Basic " + basic},
            {"Authorization": "Basic " + basic + "="},
            {"Authorization": "Bearer " + mutated_jwt(rng, seeds)},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer  " + seeds.access_token},
            {"Authorization": "DPoP " + seeds.access_token},
            {"Authorization": "Bearer " + seeds.registration_token + "x"},
            {"Authorization": "Bearer " + seeds.registration_token},
            {"Cookie": "oauthd_session=" + "%" * 50 + "; __Host-oauthd_session=\x01"},
        ]
    )


# --- probes --------------------------------------------------------------------------------


def bases(seeds: Seeds) -> list[tuple[str, str, dict[str, str], dict[str, str]]]:
    """A valid request per endpoint and grant type: (method, path, form fields, headers)."""
    basic = CONF_BASIC
    bearer = {"Authorization": "Bearer " + seeds.access_token}
    auth = Authorization(seeds.client_id)
    public = {"client_id": seeds.client_id}
    return [
        ("GET", "/authorize", auth.params, {}),
        ("POST", "/authorize", auth.params, {}),
        (
            "POST",
            "/token",
            {
                "grant_type": "authorization_code",
                "code": "x",
                "code_verifier": auth.verifier,
                "redirect_uri": LOOPBACK,
                **public,
            },
            {},
        ),
        (
            "POST",
            "/token",
            {
                "grant_type": "refresh_token",
                "refresh_token": seeds.refresh_token,
                "scope": "openid",
            },
            basic,
        ),
        (
            "POST",
            "/token",
            {"grant_type": "client_credentials", "scope": "mcp:tools", "resource": RESOURCE},
            basic,
        ),
        (
            "POST",
            "/token",
            {"grant_type": DEVICE_GRANT, "device_code": seeds.device_code, **public},
            {},
        ),
        (
            "POST",
            "/token",
            {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": seeds.access_token,
            },
            {},
        ),
        (
            "POST",
            "/revoke",
            {"token": seeds.access_token, "token_type_hint": "access_token"},
            basic,
        ),
        ("POST", "/introspect", {"token": seeds.access_token}, basic),
        ("GET", "/userinfo", {}, bearer),
        ("POST", "/userinfo", {}, bearer),
        ("POST", "/device_authorization", {"scope": "openid", **public}, {}),
        ("GET", "/device", {"user_code": seeds.user_code}, {}),
        ("GET", "/login", {"request": seeds.pending["request"]}, {}),
        ("POST", "/login", {**seeds.pending, "email": "alice@example.com", "password": "x"}, {}),
        ("GET", "/consent", {"request": seeds.pending["request"]}, {}),
        ("POST", "/consent", {**seeds.pending, "decision": "deny"}, {}),
        ("GET", "/callback", {"state": "s", "code": "c"}, {}),
        ("GET", "/logout", {}, {}),
        ("POST", "/logout", {"csrf": seeds.pending["csrf"]}, {}),
        ("GET", "/metrics", {}, {}),
        ("GET", "/healthz", {}, {}),
        (
            "GET",
            seeds.registration_uri,
            {},
            {"Authorization": "Bearer " + seeds.registration_token},
        ),
        (
            "DELETE",
            seeds.registration_uri,
            {},
            {"Authorization": "Bearer " + seeds.registration_token + "x"},
        ),
    ]


def mutated_fields(rng: random.Random, seeds: Seeds, fields: dict[str, str]) -> bytes:
    """The fields with one or two values made odd, one dropped or repeated, or a stranger."""
    pairs = list(fields.items())
    for _ in range(rng.randrange(1, 3)):
        if pairs and rng.random() < 0.7:
            at = rng.randrange(len(pairs))
            pairs[at] = (pairs[at][0], odd_value(rng, seeds))
        else:
            pairs.append((rng.choice(FIELDS), odd_value(rng, seeds)))
    if pairs and rng.random() < 0.2:
        pairs.append(rng.choice(pairs))
    encoded = urlencode(pairs, encoding="utf-8", errors="surrogatepass")
    return (
        encoded.encode()
        if rng.random() < 0.8
        else "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    )


def odd_registration(rng: random.Random, seeds: Seeds, **fixed: str) -> bytes:
    """Registration metadata with one member of a wrong type, size or depth."""
    body: dict[str, Any] = {
        "redirect_uris": [LOOPBACK],
        "token_endpoint_auth_method": "none",
        **fixed,
    }
    name = rng.choice(
        [
            "redirect_uris",
            "grant_types",
            "scope",
            "jwks",
            "jwks_uri",
            "client_name",
            "contacts",
            "token_endpoint_auth_method",
            "client_id",
            "software_version",
        ]
    )
    body[name] = rng.choice(
        [
            None,
            10**30,
            1.5,
            True,
            [],
            {},
            [[]],
            [None],
            {"keys": [{"kty": "EC", "x": 1}]},
            "x" * 20_000,
            odd_value(rng, seeds),  # json.dumps escapes a lone surrogate: "\\ud800"
            "\ud800",
            {"\udfff": ["a\ud800"]},
        ]
    )
    return json.dumps(body).encode()


def structured(rng: random.Random, seeds: Seeds) -> Iterator[Probe]:
    """Valid requests with a field or header made odd: these reach past the first check."""
    for method, path, fields, headers in bases(seeds):
        for _ in range(8):
            headers = headers if rng.random() < 0.7 else authorization(rng, seeds)
            body = mutated_fields(rng, seeds, fields)
            if method in ("GET", "DELETE"):
                yield Probe(method, f"{path}?{as_query(body)}", headers)
            else:
                yield Probe(method, path, {**headers, "Content-Type": FORM}, body)
    for token in hostile_tokens(seeds):  # at every endpoint that reads a JWT
        yield Probe("GET", "/userinfo", {"Authorization": f"Bearer {token}"})
        body = urlencode({"token": token}, errors="surrogatepass").encode()
        for path in ("/introspect", "/revoke"):
            yield Probe("POST", path, {"Content-Type": FORM, **CONF_BASIC}, body)
        assertion = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token}
        body = urlencode({"grant_type": "client_credentials", **assertion}).encode()
        yield Probe("POST", "/token", {"Content-Type": FORM}, body)
    rat = {
        "Authorization": "Bearer " + seeds.registration_token,
        "Content-Type": "application/json",
    }
    # RFC 8259 §8.1: a lone surrogate in any free-text member or in a member name.
    for unencodable in (
        {"client_name": "\ud800"},
        {"contacts": ["a\udfff@example.com"]},
        {"software_version": "\ud800"},
        {"\udfff": "x"},
    ):
        body = json.dumps({"redirect_uris": [LOOPBACK], **unencodable}).encode()
        yield Probe("POST", "/register", {"Content-Type": "application/json"}, body)
    for _ in range(12):
        yield Probe(
            "POST", "/register", {"Content-Type": "application/json"}, odd_registration(rng, seeds)
        )
        yield Probe(
            "PUT",
            seeds.registration_uri,
            rat,
            odd_registration(rng, seeds, client_id=seeds.client_id),
        )


def probes(rng: random.Random, seeds: Seeds) -> Iterator[Probe]:
    yield from structured(rng, seeds)
    paths = {**ENDPOINTS, seeds.registration_uri: ("GET", "PUT", "DELETE")}
    for path, methods in paths.items():
        for method in ("PATCH", "TRACE", "FOO", "HEAD", "OPTIONS", "PUT"):
            if method not in methods:
                yield Probe(method, path, authorization(rng, seeds))
        for _ in range(6):
            yield probe_for(rng, seeds, path, rng.choice(methods))
    for _ in range(20):  # a client_assertion wherever a client authenticates
        assertion = mutated_jwt(rng, seeds)
        body = f"client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}"
        path = rng.choice(["/token", "/revoke", "/introspect", "/device_authorization"])
        yield Probe(
            "POST",
            path,
            {"Content-Type": FORM},
            f"grant_type=client_credentials&token={assertion}&{body}".encode(),
        )


def as_query(body: bytes) -> str:
    """A form body as a query string that still reaches the server: a raw % stays raw."""
    return quote(body, safe="=&;%/:?@!$'()*+,")


def probe_for(rng: random.Random, seeds: Seeds, path: str, method: str) -> Probe:
    """Unstructured: a random form, query or JSON body of any content type."""
    headers = authorization(rng, seeds)
    if method in ("GET", "HEAD", "DELETE"):
        return Probe(method, f"{path}?{as_query(form_body(rng, seeds))}", headers)
    kind = rng.random()
    if path.startswith("/register") and kind < 0.7:
        return Probe(
            method, path, {**headers, "Content-Type": "application/json"}, json_body(rng, seeds)
        )
    body = json_body(rng, seeds) if kind < 0.2 else form_body(rng, seeds)
    return Probe(method, path, {**headers, "Content-Type": content_type(rng)}, body)


async def test_err_2_no_input_makes_any_endpoint_answer_5xx(server: Server) -> None:
    """ERR-2 (MUST, bar): malformed forms, JSON, content types, JWT parts, headers and methods
    at every endpoint get a 4xx (or a 2xx/3xx), never a 5xx or a traceback."""
    rng = random.Random(SEED)
    seeds = await seeds_for(server)
    failures = []
    count = 0
    for probe in probes(rng, seeds):
        count += 1
        response = await server.http.request(
            probe.method, probe.path, headers=probe.headers, content=probe.body or None
        )
        text = response.text
        if response.status_code >= 500 or any(marker in text for marker in TRACEBACK):
            failures.append(f"{response.status_code} {probe} -> {text[:200]}")
    assert 300 < count < 1000
    assert not failures, "\n".join(failures)
