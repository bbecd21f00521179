"""Pure protocol rules in oauthd.oauth, checked clause by clause."""

from __future__ import annotations

import base64
import hashlib
import string

import pytest

from oauthd.errors import InvalidClient, InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget
from oauthd.oauth.handles import issue_client_id, issue_handle, parse_handle
from oauthd.oauth.oidc_id_token import at_hash, user_claims
from oauthd.oauth.params import Params
from oauthd.oauth.rfc6749_client_auth import check_method, read_credentials
from oauthd.oauth.rfc7591_registration import InvalidClientMetadata, parse_metadata
from oauthd.oauth.rfc7636_pkce import check_challenge, check_verifier, s256
from oauthd.oauth.rfc8252_redirects import (
    InvalidRedirectUri,
    check_registrable,
    errors_redirectable,
    matches_registered,
)
from oauthd.oauth.rfc8707_resources import TokenTarget, resolve_resources, token_target
from oauthd.oauth.scopes import parse_scope
from oauthd.oauth.token_liveness import (
    Liveness,
    access_token_liveness,
    has_expired,
    refresh_token_expires_at,
    refresh_token_liveness,
)

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_rfc7636_appendix_b_s256_example() -> None:
    """RFC 7636 App. B: BASE64URL(SHA256(verifier)) gives the published challenge."""
    assert s256(VERIFIER) == CHALLENGE


@pytest.mark.parametrize(
    ("challenge", "method"),
    [
        (None, "S256"),
        (CHALLENGE, None),
        (CHALLENGE, "plain"),
        (CHALLENGE, "s256"),
        (CHALLENGE[:42], "S256"),
        (CHALLENGE + "A", "S256"),
        ("+" * 43, "S256"),
    ],
)
def test_rfc7636_s4_4_1_bad_challenges_are_invalid_request(
    challenge: str | None, method: str | None
) -> None:
    """PKCE-1/3/4/5: S256 with a 43-character challenge is required; plain is refused."""
    with pytest.raises(InvalidRequest):
        check_challenge(challenge, method)


@pytest.mark.parametrize("verifier", [None, "", VERIFIER[:42], "a" * 129, VERIFIER[:-1] + "!"])
def test_rfc7636_s4_6_bad_verifiers_are_invalid_grant(verifier: str | None) -> None:
    """PKCE-6/7/9: missing, malformed or mismatching verifiers fail with invalid_grant."""
    with pytest.raises(InvalidGrant):
        check_verifier(verifier, CHALLENGE)
    check_verifier(VERIFIER, CHALLENGE)


@pytest.mark.parametrize(
    "uri",
    [
        "http://app.example/cb",
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "about:blank",
        "https://app.example/cb#frag",
        "/cb",
        "not a url",
        "",
        " https://app.example/cb",
        "myapp:/cb",
        "https://user@app.example/cb",
    ],
)
def test_rfc7591_s2_unsafe_redirect_uris_are_refused(uri: str) -> None:
    """REG-4..7: http only on loopback, no dangerous schemes, no fragments, absolute."""
    with pytest.raises(InvalidRedirectUri):
        check_registrable(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb",
        "http://127.0.0.1/cb",
        "http://localhost:8080/cb",
        "http://[::1]:9/cb",
        "com.example.app:/oauth2redirect",
    ],
)
def test_rfc7591_s2_safe_redirect_uris_are_accepted(uri: str) -> None:
    """REG-4/7: https, loopback http and reverse-domain private-use schemes register."""
    check_registrable(uri)


@pytest.mark.parametrize(
    "requested",
    [
        "https://app.example/cb/x",
        "https://app.example/CB",
        "https://app.example/cb?a=1",
        "https://app.example/cb/",
        "http://app.example/cb",
        "https://app.example@evil.example/cb",
        "https://app.example%2Fcb",
        "https://app.example:8443/cb",
    ],
)
def test_oauth21_s2_3_1_redirect_uri_is_exact_string_match(requested: str) -> None:
    """AUTHZ-2/6: simple string comparison; no prefix, case or port relaxation for https."""
    assert not matches_registered(requested, ("https://app.example/cb",))


def test_rfc8252_s7_3_loopback_redirect_matches_on_any_port() -> None:
    """AUTHZ-4/5/6: only the port of a loopback redirect may vary."""
    registered = ("http://127.0.0.1/cb", "http://[::1]/cb", "http://localhost:3000/callback")
    assert matches_registered("http://127.0.0.1:54321/cb", registered)
    assert matches_registered("http://[::1]:61023/cb", registered)
    assert matches_registered("http://localhost:49152/callback", registered)
    for bad in (
        "http://127.0.0.1:5000/other",
        "http://localhost:5000/cb",
        "https://127.0.0.1:5000/cb",
        "http://127.0.0.1.evil.example:5000/cb",
        "http://127.0.0.1:5000@evil.example/cb",
    ):
        assert not matches_registered(bad, registered), bad


@pytest.mark.parametrize(
    ("uri", "self_asserted", "redirected"),
    [
        ("https://app.example/cb", False, True),  # the operator vouches for the client
        ("http://127.0.0.1:5555/cb", True, True),  # RFC 8252 §7.3: back to this device
        ("http://[::1]/cb", True, True),
        ("com.example.app:/oauth2redirect", True, True),  # RFC 8252 §7.1
        ("https://evil.example/land", True, False),  # nobody vouches: an error page
        ("http://127.0.0.1.evil.example/cb", True, False),
        ("javascript:alert(1)", True, False),
        ("not a uri", True, False),
    ],
)
def test_rfc9700_s4_11_2_errors_go_only_to_trusted_redirect_uris(
    uri: str, self_asserted: bool, redirected: bool
) -> None:
    """AUTHZ-17: an error is redirected only to a URI the AS may trust (RFC 9700 §4.11.2)."""
    assert errors_redirectable(uri, self_asserted=self_asserted) is redirected


def test_oauth21_s1_4_1_scope_tokens_are_case_sensitive_and_charset_checked() -> None:
    """AUTHZ-14: scope tokens keep their case; quotes and backslashes are invalid_scope."""
    assert parse_scope("openid  OPENID openid") == ("openid", "OPENID")
    for bad in ('a"b', "a\\b", "é"):
        with pytest.raises(InvalidScope):
            parse_scope(bad)


ISS = "https://as.example"


def test_rfc8707_s2_resources_match_configured_spelling() -> None:
    """RES-2/3/4: absolute URIs only; root slash and host case do not create a new audience."""
    configured = ("https://mcp.example", "https://api.example/mcp")

    def resolve(uri: str) -> tuple[str, ...]:
        return resolve_resources([uri], configured, ISS, ("openid",))

    assert resolve("https://mcp.example/") == ("https://mcp.example",)
    assert resolve("HTTPS://API.EXAMPLE/mcp") == configured[1:]
    for bad in ("mcp.example.com", "/mcp", "https://api.example/mcp#frag", "https://evil.example/"):
        with pytest.raises(InvalidTarget):
            resolve(bad)


def test_rfc8707_s2_userinfo_identifiers_need_openid_and_become_the_issuer() -> None:
    """RFC 9728 §3.3: /userinfo's identifiers are accepted with openid only, are not recorded in the
    grant, and a token named for them is for the issuer with only the OIDC scopes."""
    mcp = ("https://mcp.example",)
    for uri in (ISS, ISS + "/", "HTTPS://AS.example/userinfo"):
        assert resolve_resources([uri, mcp[0]], mcp, ISS, ("openid",)) == mcp
        with pytest.raises(InvalidTarget):
            resolve_resources([uri], mcp, ISS, ("mcp:tools",))
        target = token_target((uri,), mcp, ISS, ("openid", "email", "mcp:tools"))
        assert target == TokenTarget((ISS,), ("openid", "email"))
        with pytest.raises(InvalidTarget):
            token_target((uri,), mcp, ISS, ("email",))
    assert token_target((), mcp, ISS, ("openid", "mcp:tools")).audience == (*mcp, ISS)
    assert token_target((mcp[0],), mcp, ISS, ("openid", "mcp:tools")).scope == (
        "openid",
        "mcp:tools",
    )


def test_oauth21_s3_1_repeated_parameters_and_empty_values() -> None:
    """TOKEN-16: a repeated parameter is invalid_request; an empty value counts as absent."""
    params = Params.of([("code", "a"), ("code", "a"), ("state", "")])
    with pytest.raises(InvalidRequest):
        params.get("code")
    assert params.get("state") is None


def test_oauth21_s3_1_repeated_names_the_first_repeated_of_the_names_asked() -> None:
    """TOKEN-16: `repeated` reports a repeated defined parameter, in the order asked, and
    neither a repeated parameter it was not asked about nor one whose repeats are empty."""
    params = Params.of([("b", "1"), ("a", "1"), ("x", "1"), ("a", "2"), ("b", "2"), ("x", "2")])
    assert params.repeated(("c", "a", "b")) == "a"
    assert params.repeated(("b", "a")) == "b"
    assert params.repeated(("c",)) is None
    assert Params.of([("a", "1"), ("a", ""), ("b", "1")]).repeated(("a", "b")) is None


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_oauth21_s2_4_1_basic_credentials_are_form_decoded() -> None:
    """TOKEN-7: id and secret are form-urlencoded before Base64."""
    creds = read_credentials(_basic("my%3Aclient", "s%2B%3A%25"), Params(()))
    assert (creds.client_id, creds.secret, creds.method) == (
        "my:client",
        "s+:%",
        "client_secret_basic",
    )


def test_oauth21_s2_4_one_authentication_method_only() -> None:
    """TOKEN-10: Basic plus a body secret is invalid_request."""
    form = Params.of([("client_secret", "x")])
    with pytest.raises(InvalidRequest):
        read_credentials(_basic("c", "s"), form)


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()])
def test_oauth21_s3_2_4_malformed_basic_is_invalid_client(header: str) -> None:
    """TOKEN-8: a malformed Basic header is invalid_client."""
    with pytest.raises(InvalidClient):
        read_credentials(header, Params(()))


def test_rfc7591_s2_client_uses_its_registered_method() -> None:
    """TOKEN-12: a method other than the registered one is invalid_client."""
    creds = read_credentials(None, Params.of([("client_id", "c"), ("client_secret", "s")]))
    with pytest.raises(InvalidClient):
        check_method(creds, "client_secret_basic")


def test_rfc7591_s2_defaults_are_applied_and_unknown_members_ignored() -> None:
    """REG-9/12: only redirect_uris given -> code grant, code response, secret_basic."""
    meta = parse_metadata(
        {"redirect_uris": ["https://a.example/cb"], "x_vendor": 1}, lambda _scope: True
    )
    assert meta.grant_types == ("authorization_code",)
    assert meta.response_types == ("code",)
    assert meta.token_endpoint_auth_method == "client_secret_basic"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "x",
        {"redirect_uris": "https://a.example/cb"},
        {"redirect_uris": []},
        {"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]},
        {"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]},
        {"redirect_uris": ["https://a.example/cb"], "grant_types": ["refresh_token"]},
        {"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "foo"},
        {"redirect_uris": ["https://a.example/cb"], "client_name": 5},
        {"redirect_uris": ["https://a.example/cb"], "scope": ["a"]},
        {"redirect_uris": ["https://a.example/cb"], "client_uri": "javascript:alert(1)"},
        {"redirect_uris": ["https://a.example/cb"], "client_name": "x" * 10_000},
    ],
)
def test_rfc7591_s3_2_2_bad_metadata_is_invalid_client_metadata(body: object) -> None:
    """REG-8/10/11/14/15: bad metadata answers invalid_client_metadata."""
    with pytest.raises(InvalidClientMetadata):
        parse_metadata(body, lambda _scope: True)


def test_oauth21_s7_7_handles_carry_shard_and_256_bits() -> None:
    """TOKEN-17: opaque credentials are long, distinct, and routable by shard key only."""
    handles = {issue_handle("rt", "0" * 20) for _ in range(1000)}
    assert len(handles) == 1000
    handle = handles.pop()
    assert parse_handle(handle, "rt") == "0" * 20
    assert parse_handle(handle, "ac") is None
    assert parse_handle(handle[:-1], "rt") is None
    assert len(issue_client_id()) >= 22


def test_oidc_core_3_1_3_6_at_hash_is_left_half_of_sha256() -> None:
    """OIDC-5: at_hash for ES256/RS256 is base64url of the left 128 bits of SHA-256."""
    token = "jHkWEdUXMU1BwAsC4vtUsZwnNtTUYnLDtedWBi4Hw2I"
    left = hashlib.sha256(token.encode()).digest()[:16]
    assert at_hash(token, "RS256") == base64.urlsafe_b64encode(left).rstrip(b"=").decode()
    assert len(at_hash(token, "EdDSA")) == 43  # SHA-512 for Ed25519: 256 bits


def test_oidc_core_5_4_claims_follow_scopes() -> None:
    """USERINFO-7: no email without the email scope."""
    assert user_claims(("openid",), "a@example.com", "A", True) == {}
    assert user_claims(("openid", "email", "profile"), "a@example.com", "A", True) == {
        "name": "A",
        "email": "a@example.com",
        "email_verified": True,
    }


def test_client_ids_never_start_with_a_dash() -> None:
    """A client id can follow an option on the command line (`--client <id>`): no leading
    '-', and only unreserved characters (TOKEN-7)."""
    ids = [issue_client_id() for _ in range(2000)]
    assert not any(i.startswith("-") for i in ids)
    assert all(set(i) <= set(string.ascii_letters + string.digits + "-_") for i in ids)


# --- token liveness: one boundary (RFC 7519 §4.1.4) -----------------------------------------


def test_token_liveness_dead_on_the_expiry_second() -> None:
    """RFC 7519 §4.1.4: "MUST NOT be accepted on or after the expiration time"."""
    assert not has_expired(100, 99.999)
    assert has_expired(100, 100)
    assert access_token_liveness(expires_at=100, revoked_at=None, now=99) is Liveness.LIVE
    assert access_token_liveness(expires_at=100, revoked_at=None, now=100) is Liveness.EXPIRED
    assert access_token_liveness(expires_at=100, revoked_at=5, now=0) is Liveness.REVOKED


def test_refresh_token_liveness_grant_first_then_rotation_then_idle() -> None:
    """OAuth 2.1 §4.3.1, §4.3.3: a revoked or ended grant ends its tokens; a rotated token is
    a replay whatever its age; an unused one dies idle_s after issue."""
    base = {"issued_at": 0, "rotated_at": None, "grant_expires_at": 1000, "idle_s": 300}
    assert refresh_token_liveness(**base, grant_revoked_at=None, now=299) is Liveness.LIVE
    assert refresh_token_liveness(**base, grant_revoked_at=None, now=300) is Liveness.EXPIRED
    assert refresh_token_liveness(**base, grant_revoked_at=1, now=0) is Liveness.REVOKED
    rotated = {**base, "rotated_at": 10}
    assert refresh_token_liveness(**rotated, grant_revoked_at=None, now=900) is Liveness.ROTATED
    assert refresh_token_liveness(**rotated, grant_revoked_at=None, now=1000) is Liveness.EXPIRED
    assert refresh_token_expires_at(issued_at=900, grant_expires_at=1000, idle_s=300) == 1000
