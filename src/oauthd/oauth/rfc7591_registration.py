"""Dynamic client registration metadata (RFC 7591 §2), validated like a careful server.

`parse_metadata` turns a JSON object into `ClientMetadata` with RFC 7591 §2 defaults applied,
refusing what this server does not support with `invalid_client_metadata` and bad redirect
URIs with `invalid_redirect_uri`. Unknown members are ignored (RFC 7591 §3.1)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from oauthd.errors import InvalidClientMetadata, OAuthError
from oauthd.oauth.rfc6750_bearer import InvalidToken
from oauthd.oauth.rfc8252_redirects import check_registrable
from oauthd.oauth.rfc8628_device import DEVICE_GRANT
from oauthd.oauth.scopes import format_scope, parse_scope
from oauthd.settings import ID_TOKEN_ALG

__all__ = [
    "AUTH_METHODS",
    "GRANT_TYPES",
    "ClientMetadata",
    "InvalidClientMetadata",
    "check_initial_access_token",
    "check_text",
    "default_response_types",
    "hash_initial_access_token",
    "parse_metadata",
]

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", DEVICE_GRANT)
RESPONSE_TYPES = ("code",)
MAX_TEXT = 200  # client_name and similar: enough for a product name, not for a payload
MAX_URI = 2000
MAX_REDIRECTS = 20
MAX_JWKS = 32_000  # bytes of an inline JWK set: a few RSA keys
PUBLIC_KTY = ("EC", "RSA", "OKP")
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
SERVER_MANAGED = (
    "registration_access_token",
    "registration_client_uri",
    "client_id_issued_at",
    "client_secret_expires_at",
)


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    client_name: str
    client_uri: str
    logo_uri: str
    tos_uri: str
    policy_uri: str
    scope: str
    contacts: tuple[str, ...]
    software_id: str
    software_version: str
    application_type: str
    jwks: str = ""  # RFC 7591 §2: the client's JWK set, as JSON text
    jwks_uri: str = ""
    id_token_signed_response_alg: str = ""  # OIDC Registration §2; empty: RS256

    def public_members(self) -> dict[str, Any]:
        """The metadata as echoed in RFC 7591 §3.2.1 responses (empty optional members left out)."""
        members: dict[str, Any] = {
            "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "grant_types": list(self.grant_types),
            "response_types": list(self.response_types),
            "application_type": self.application_type,
        }
        optional = {
            "client_name": self.client_name,
            "client_uri": self.client_uri,
            "logo_uri": self.logo_uri,
            "tos_uri": self.tos_uri,
            "policy_uri": self.policy_uri,
            "scope": self.scope,
            "software_id": self.software_id,
            "software_version": self.software_version,
            "id_token_signed_response_alg": self.id_token_signed_response_alg,
        }
        members.update({k: v for k, v in optional.items() if v})
        if self.contacts:
            members["contacts"] = list(self.contacts)
        if self.jwks:
            members["jwks"] = json.loads(self.jwks)
        if self.jwks_uri:
            members["jwks_uri"] = self.jwks_uri
        return members


def _text(body: Mapping[str, Any], name: str, limit: int = MAX_TEXT) -> str:
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidClientMetadata(f"{name} must be a string")
    if len(value) > limit or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidClientMetadata(f"{name} is too long or has control characters")
    return value


def _strings(body: Mapping[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if name not in body or body[name] is None:
        return default
    value = body[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidClientMetadata(f"{name} must be an array of strings")
    return tuple(dict.fromkeys(value))


def _https_uri(body: Mapping[str, Any], name: str) -> str:
    """RFC 9700 §4.15 / RFC 7591 §5: links shown to users are https only."""
    value = _text(body, name, MAX_URI)
    if value:
        try:
            parts = urlsplit(value)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            raise InvalidClientMetadata(f"{name} must be an https URL") from None
        if parts.scheme != "https" or not parts.netloc:
            raise InvalidClientMetadata(f"{name} must be an https URL")
    return value


def check_redirect_uris(uris: tuple[str, ...], grant_types: tuple[str, ...]) -> None:
    # RFC 7591 §2: clients using redirection MUST register their redirect URIs.
    if "authorization_code" in grant_types and not uris:
        raise InvalidClientMetadata("redirect_uris is required for authorization_code")
    if len(uris) > MAX_REDIRECTS:
        raise InvalidClientMetadata("too many redirect_uris")
    for uri in uris:
        if len(uri) > MAX_URI:
            raise InvalidClientMetadata("a redirect URI is too long")
        check_registrable(uri)


def check_grants(
    grant_types: tuple[str, ...], response_types: tuple[str, ...], method: str
) -> None:
    # RFC 7591 §2: only what this server implements; RFC 9700 §2.1.2, §2.4: never implicit
    # or password.
    if not grant_types or any(g not in GRANT_TYPES for g in grant_types):
        raise InvalidClientMetadata("unsupported grant_types")
    if any(r not in RESPONSE_TYPES for r in response_types):
        raise InvalidClientMetadata("unsupported response_types")
    # RFC 7591 §2.1: authorization_code goes with response type code, and back.
    if ("authorization_code" in grant_types) != ("code" in response_types):
        raise InvalidClientMetadata("grant_types and response_types are inconsistent")
    # A refresh token comes only from another grant: authorization_code or the device grant.
    if "refresh_token" in grant_types and not {"authorization_code", DEVICE_GRANT} & set(
        grant_types
    ):
        raise InvalidClientMetadata("refresh_token needs a grant that issues refresh tokens")
    if method not in AUTH_METHODS:
        raise InvalidClientMetadata("unsupported token_endpoint_auth_method")
    # OAuth 2.1 §4.2: client_credentials is for confidential clients only.
    if "client_credentials" in grant_types and method == "none":
        raise InvalidClientMetadata("client_credentials needs an authenticating client")


def _jwks(body: Mapping[str, Any]) -> str:
    """RFC 7591 §2 `jwks`: a JWK set of public keys, kept as JSON text. The keys themselves
    are imported (and refused if broken) when the client is enrolled."""
    value = body.get("jwks")
    if value is None:
        return ""
    keys = value.get("keys") if isinstance(value, dict) else None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
        raise InvalidClientMetadata("jwks must be a JWK set with keys")
    for key in keys:
        if key.get("kty") not in PUBLIC_KTY or any(m in key for m in PRIVATE_MEMBERS):
            raise InvalidClientMetadata("jwks must hold public EC, RSA or OKP keys only")
    text = json.dumps(value, separators=(",", ":"))
    if len(text) > MAX_JWKS:
        raise InvalidClientMetadata("jwks is too large")
    return text


def check_key_source(method: str, jwks: str, jwks_uri: str) -> None:
    # RFC 7591 §2: jwks and jwks_uri MUST NOT both be present.
    if jwks and jwks_uri:
        raise InvalidClientMetadata("jwks and jwks_uri must not both be present")
    # RFC 7523 §2.2: private_key_jwt verifies with keys the client registered.
    if method == "private_key_jwt" and not (jwks or jwks_uri):
        raise InvalidClientMetadata("private_key_jwt needs jwks or jwks_uri")


def _strings_in(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON value, member names included; iterative, because a body
    may nest as deep as the parser allowed."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def check_text(body: Mapping[str, Any]) -> None:
    # RFC 8259 §8.1: JSON text is Unicode. A lone surrogate ("\ud800") parses into a Python
    # str that no UTF-8 store, log or page can hold: refused as a whole, members and names.
    try:
        for text in _strings_in(body):
            text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidClientMetadata("the metadata has text that is not valid Unicode") from None


def default_response_types(grant_types: tuple[str, ...]) -> tuple[str, ...]:
    """RFC 7591 §2 defaults response_types to code; a client without authorization_code has
    no use for it, so it gets none (the server may substitute, RFC 7591 §3.2.1): a
    client_credentials or device client registers without naming response_types."""
    return ("code",) if "authorization_code" in grant_types else ()


def check_id_token_alg(alg: str, supported: Collection[str]) -> None:
    # OIDC Registration §2: the ID token algorithm the client expects, among those this server
    # signs ID tokens with (id_token_signing_alg_values_supported); never none or HMAC.
    if alg and alg not in supported:
        raise InvalidClientMetadata(
            f"id_token_signed_response_alg must be one of {sorted(supported)}"
        )


def parse_metadata(
    body: Any,
    allowed_scope: Callable[[tuple[str, ...]], bool],
    id_token_algorithms: Collection[str] = (ID_TOKEN_ALG,),
) -> ClientMetadata:
    """Validate a registration request body; `allowed_scope` says whether scopes are known,
    `id_token_algorithms` are the algorithms ID tokens can be signed with."""
    if not isinstance(body, dict):
        raise InvalidClientMetadata("the registration request must be a JSON object")
    check_text(body)
    method = _text(body, "token_endpoint_auth_method") or "client_secret_basic"  # RFC 7591 §2
    grant_types = _strings(body, "grant_types", ("authorization_code",))
    response_types = _strings(body, "response_types", default_response_types(grant_types))
    check_grants(grant_types, response_types, method)
    jwks, jwks_uri = _jwks(body), _https_uri(body, "jwks_uri")
    check_key_source(method, jwks, jwks_uri)
    redirect_uris = _strings(body, "redirect_uris", ())
    check_redirect_uris(redirect_uris, grant_types)
    scope_text = _text(body, "scope", 1000)
    try:
        scope = parse_scope(scope_text)
    except OAuthError:
        raise InvalidClientMetadata("scope has characters that are not allowed") from None
    if not allowed_scope(scope):
        raise InvalidClientMetadata("scope names values this server does not support")
    id_token_alg = _text(body, "id_token_signed_response_alg")
    check_id_token_alg(id_token_alg, id_token_algorithms)
    application_type = _text(body, "application_type") or "web"
    if application_type not in ("web", "native"):
        raise InvalidClientMetadata("application_type must be web or native")
    return ClientMetadata(
        redirect_uris=redirect_uris,
        token_endpoint_auth_method=method,
        grant_types=grant_types,
        response_types=response_types,
        client_name=_text(body, "client_name"),
        client_uri=_https_uri(body, "client_uri"),
        logo_uri=_https_uri(body, "logo_uri"),
        tos_uri=_https_uri(body, "tos_uri"),
        policy_uri=_https_uri(body, "policy_uri"),
        scope=format_scope(scope),
        contacts=tuple(c for c in _strings(body, "contacts", ()) if len(c) <= MAX_TEXT),
        software_id=_text(body, "software_id"),
        software_version=_text(body, "software_version"),
        application_type=application_type,
        jwks=jwks,
        jwks_uri=jwks_uri,
        id_token_signed_response_alg=id_token_alg,
    )


def hash_initial_access_token(token: str) -> str:
    """How initial access tokens are configured and compared: lowercase hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_initial_access_token(token: str | None, accepted: frozenset[str]) -> None:
    """RFC 7591 §3: a closed server registers only a caller with an initial access token,
    presented as an RFC 6750 bearer token; it is one of `accepted` (hashes), else 401."""
    if token is None:
        raise InvalidToken("an initial access token is required to register")
    digest = hash_initial_access_token(token)
    if not any(hmac.compare_digest(digest, known) for known in accepted):
        raise InvalidToken("the initial access token is invalid")
