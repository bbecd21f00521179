"""Logging people in at an upstream OpenID Connect provider: the rules of the relying party.

oauthd is the RP here (OIDC Core §3.1): it sends the browser to the upstream's authorization
endpoint with `state`, `nonce` and PKCE, exchanges the code, and accepts the ID token only
after the checks of OIDC Core §3.1.3.7. The signature is checked in `oauthd.keys`; the claims
here. The PKCE verifier and the nonce are derived from the state and the browser's login
cookie, so a pending login stores only hashes (docs/architecture.md "Storage": nothing usable rests
on disk), and the state seen in the front channel alone does not give the verifier away.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from oauthd.oauth.rfc7636_pkce import s256

__all__ = [
    "CLOCK_SKEW_S",
    "SIGNING_ALGORITHMS",
    "IdTokenRejected",
    "MetadataRejected",
    "ProviderMetadata",
    "UpstreamIdentity",
    "authorization_url",
    "check_id_token",
    "check_response_issuer",
    "check_userinfo",
    "derive",
    "parse_provider_metadata",
    "token_auth_method",
]

CLOCK_SKEW_S = 60  # tolerated difference between our clock and the upstream's
MAX_SUBJECT = 255  # OIDC Core §2: sub "MUST NOT exceed 255 ASCII characters"
# Asymmetric algorithms only: never `none`, never HMAC with the client secret (RFC 8725 §3.1).
SIGNING_ALGORITHMS = ("RS256", "ES256", "PS256", "RS384", "RS512", "ES384", "EdDSA")


class MetadataRejected(ValueError):
    """The upstream's discovery document cannot be used (OIDC Discovery §4.3)."""


class IdTokenRejected(ValueError):
    """The upstream's ID token fails a check of OIDC Core §3.1.3.7; the message is for the log."""


def derive(state: str, binding: str, label: str) -> str:
    """A secret bound to one login and its browser, computed again at the callback. The state
    travels in both front-channel URLs, the binding (the login cookie) never goes upstream:
    whoever intercepts the callback cannot compute the PKCE verifier (RFC 7636 §1)."""
    message = f"{label}\x00{state}".encode()
    digest = hmac.new(binding.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    token_auth_methods: tuple[str, ...]
    signing_algorithms: tuple[str, ...]
    iss_parameter: bool = False  # RFC 9207: authorization responses carry `iss`


def _endpoint(doc: dict[str, Any], name: str, allow_http: bool) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise MetadataRejected(f"{name} is missing")
    parts = urlsplit(value)
    if (
        not parts.hostname
        or parts.fragment
        or (parts.scheme != "https" and not (allow_http and parts.scheme == "http"))
    ):
        raise MetadataRejected(f"{name} must be an https URL, got {value!r}")
    return value


def _strings(doc: dict[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = doc.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MetadataRejected(f"{name} must be an array of strings")
    return tuple(value)


def parse_provider_metadata(
    doc: Any, expected_issuer: str, allow_http: bool = False
) -> ProviderMetadata:
    """OIDC Discovery §3, §4.3: the document's issuer must be exactly the configured one, and
    it must name the endpoints the code flow needs. `allow_http` is for a loopback upstream."""
    if not isinstance(doc, dict):
        raise MetadataRejected("the discovery document is not a JSON object")
    if doc.get("issuer") != expected_issuer:
        raise MetadataRejected(f"issuer {doc.get('issuer')!r} is not {expected_issuer!r}")
    if "code" not in _strings(doc, "response_types_supported", ("code",)):
        raise MetadataRejected("the provider does not support response_type=code")
    userinfo = doc.get("userinfo_endpoint")
    return ProviderMetadata(
        issuer=expected_issuer,
        authorization_endpoint=_endpoint(doc, "authorization_endpoint", allow_http),
        token_endpoint=_endpoint(doc, "token_endpoint", allow_http),
        jwks_uri=_endpoint(doc, "jwks_uri", allow_http),
        userinfo_endpoint=(
            _endpoint(doc, "userinfo_endpoint", allow_http) if userinfo is not None else None
        ),
        # OIDC Discovery §3: the defaults when a provider does not say.
        token_auth_methods=_strings(
            doc, "token_endpoint_auth_methods_supported", ("client_secret_basic",)
        ),
        signing_algorithms=tuple(
            alg
            for alg in _strings(doc, "id_token_signing_alg_values_supported", ("RS256",))
            if alg in SIGNING_ALGORITHMS
        )
        or ("RS256",),
        iss_parameter=doc.get("authorization_response_iss_parameter_supported") is True,
    )


def check_response_issuer(metadata: ProviderMetadata, iss: str | None) -> None:
    """RFC 9207 §2.4: an authorization response's `iss` must be the upstream's issuer, and
    must be there when the upstream says it sends it (mix-up defence)."""
    if iss is None and metadata.iss_parameter:
        raise IdTokenRejected("the authorization response has no iss, though advertised")
    if iss is not None and iss != metadata.issuer:
        raise IdTokenRejected(f"the authorization response came from iss {iss!r}")


def token_auth_method(metadata: ProviderMetadata, has_secret: bool) -> str:
    """How oauthd authenticates at the upstream's token endpoint: Basic when offered (the
    OIDC default), else the secret in the body; a public client sends only its id."""
    if not has_secret:
        return "none"
    if "client_secret_basic" in metadata.token_auth_methods:
        return "client_secret_basic"
    if "client_secret_post" in metadata.token_auth_methods:
        return "client_secret_post"
    return "client_secret_basic"


def authorization_url(
    metadata: ProviderMetadata,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    state: str,
    binding: str,
    login_hint: str | None,
    max_age: int | None,
    force_login: bool,
) -> str:
    """OIDC Core §3.1.2.1 with PKCE (RFC 7636 §4.3); the endpoint's own query is kept."""
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "nonce": derive(state, binding, "nonce"),
        "code_challenge": s256(derive(state, binding, "pkce")),
        "code_challenge_method": "S256",
    }
    if login_hint:
        params["login_hint"] = login_hint
    if max_age is not None:
        params["max_age"] = str(max_age)
    if force_login:
        params["prompt"] = "login"
    parts = urlsplit(metadata.authorization_endpoint)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


@dataclass(frozen=True, slots=True)
class UpstreamIdentity:
    """Who logged in upstream. `email` is set only when the upstream verified it."""

    subject: str
    email: str
    name: str
    auth_time: int | None


def _is_verified(value: Any) -> bool:
    return value is True or value == "true"  # some providers send the string


def _number(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdTokenRejected(f"{name} is not a number")
    return int(value)


def check_id_token(
    claims: dict[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: int,
    started_at: int,
    max_age: int | None,
    force_login: bool,
) -> UpstreamIdentity:
    """OIDC Core §3.1.3.7, in its order (the signature was checked before)."""
    if claims.get("iss") != issuer:  # item 2
        raise IdTokenRejected(f"iss {claims.get('iss')!r} is not {issuer!r}")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:  # item 3
        raise IdTokenRejected(f"aud {audience!r} does not name this client")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:  # items 4, 5
        raise IdTokenRejected(f"azp {azp!r} is not this client")
    exp, iat = _number(claims, "exp"), _number(claims, "iat")
    if exp is None or exp + CLOCK_SKEW_S <= now:  # item 9
        raise IdTokenRejected("the ID token has expired")
    if iat is None or iat > now + CLOCK_SKEW_S:  # item 10
        raise IdTokenRejected("the ID token was issued in the future")
    if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):  # item 11
        raise IdTokenRejected("the nonce is not the one this login sent")
    auth_time = _number(claims, "auth_time")
    if max_age is not None and (auth_time is None or now - auth_time > max_age + CLOCK_SKEW_S):
        raise IdTokenRejected("max_age was asked but the login is older")  # item 13
    if force_login and auth_time is not None and auth_time + CLOCK_SKEW_S < started_at:
        raise IdTokenRejected("prompt=login was asked but the upstream reused a session")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT:
        raise IdTokenRejected("sub is missing or too long")
    return _identity(subject, claims, auth_time)


def _identity(subject: str, claims: dict[str, Any], auth_time: int | None) -> UpstreamIdentity:
    email = claims.get("email")
    verified = (
        isinstance(email, str) and "@" in email and _is_verified(claims.get("email_verified"))
    )
    name = claims.get("name")
    return UpstreamIdentity(
        subject=subject,
        email=str(email) if verified else "",
        name=name[:200] if isinstance(name, str) else "",
        auth_time=auth_time,
    )


def check_userinfo(identity: UpstreamIdentity, claims: Any) -> UpstreamIdentity:
    """OIDC Core §5.3.2: userinfo fills in what the ID token left out, but only for the same
    subject ("the sub Claim ... MUST be verified to exactly match")."""
    if not isinstance(claims, dict) or claims.get("sub") != identity.subject:
        raise IdTokenRejected("userinfo is about another subject")
    extra = _identity(identity.subject, claims, identity.auth_time)
    return UpstreamIdentity(
        subject=identity.subject,
        email=identity.email or extra.email,
        name=identity.name or extra.name,
        auth_time=identity.auth_time,
    )
