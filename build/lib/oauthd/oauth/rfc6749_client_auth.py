"""Client authentication at the token endpoint (OAuth 2.1 §2.4, §3.2.1).

`read_credentials` reads what the client presented, and `check_method` holds it to the method
it registered (RFC 7591 §2). Verifying the secret or the assertion needs the registration and
happens in the client's actor.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from oauthd.errors import InvalidClient, InvalidRequest
from oauthd.oauth.params import Params
from oauthd.oauth.rfc7523_client_assertion import ASSERTION_TYPE, peek_client_id

__all__ = ["ClientCredentials", "check_method", "read_credentials"]


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    method: str  # none | client_secret_basic | client_secret_post | private_key_jwt
    secret: str | None = None
    assertion: str | None = None  # private_key_jwt (RFC 7523 §2.2)
    jwks: str | None = None  # the client's jwks_uri document, fetched for this request

    @property
    def scheme(self) -> str:
        """The WWW-Authenticate scheme for a failure (RFC 6749 §5.2)."""
        return "Basic"


def _basic(header: str) -> tuple[str, str]:
    """OAuth 2.1 §2.4.1: id and secret are form-urlencoded, then joined by ':' and base64'd."""
    try:
        decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient("malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise InvalidClient("malformed Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


def read_credentials(authorization: str | None, form: Params) -> ClientCredentials:
    """What the client presented; exactly one method (OAuth 2.1 §2.4)."""
    form_id = form.get("client_id")
    form_secret = form.get("client_secret")
    assertion = form.get("client_assertion")
    if assertion is not None or form.get("client_assertion_type") is not None:
        if authorization or form_secret is not None:
            # OAuth 2.1 §2.4: a client MUST NOT use more than one authentication method.
            raise InvalidRequest("more than one client authentication method")
        return _assertion(assertion, form.get("client_assertion_type"), form_id)
    basic = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient("unsupported authorization scheme")
        basic = _basic(value)
    if basic is not None:
        # OAuth 2.1 §2.4: a client MUST NOT use more than one authentication method.
        if form_secret is not None:
            raise InvalidRequest("more than one client authentication method")
        if form_id is not None and form_id != basic[0]:
            raise InvalidRequest("client_id differs from the authenticated client")
        return ClientCredentials(basic[0], "client_secret_basic", basic[1])
    if form_id is None:
        raise InvalidClient("client authentication is required")
    if form_secret is not None:
        return ClientCredentials(form_id, "client_secret_post", form_secret)
    return ClientCredentials(form_id, "none")


def _assertion(assertion: str | None, kind: str | None, form_id: str | None) -> ClientCredentials:
    """RFC 7523 §2.2: both parameters; client_id is optional and, if sent, the assertion's."""
    if kind != ASSERTION_TYPE or not assertion:
        raise InvalidClient("unsupported client_assertion_type or missing client_assertion")
    client_id = peek_client_id(assertion)
    if form_id is not None and form_id != client_id:
        raise InvalidClient("client_id differs from the client_assertion")
    return ClientCredentials(client_id, "private_key_jwt", assertion=assertion)


def check_method(credentials: ClientCredentials, registered: str) -> None:
    """RFC 7591 §2: the client authenticates the way it registered, and no other."""
    if credentials.method != registered:
        raise InvalidClient("the client must authenticate with its registered method")
