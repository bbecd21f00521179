"""Client authentication at the token endpoint, and at /revoke, /introspect and the device
authorization endpoint, which authenticate exactly as /token does (OAuth 2.1 §2.4, §3.2.1):
client secrets, and RFC 7523 assertions whose jti is spent in the shard."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from oauthd.actors.context import ClientShard
from oauthd.actors.shard import CommitThenRaise
from oauthd.errors import InvalidClient, OAuthError, UnauthorizedClient
from oauthd.keys import TokenInvalid, parse_client_jwks, verify_client_assertion
from oauthd.keys.client_assertion import UnknownKey
from oauthd.oauth.rfc6749_client_auth import ClientCredentials, check_method
from oauthd.oauth.rfc7523_client_assertion import check_assertion_claims
from oauthd.storage import ClientRecord, check_secret

__all__ = [
    "TOKEN_PATH",
    "Authenticated",
    "JwksNeeded",
    "authenticate",
    "authenticated",
    "check_credentials",
    "require_grant",
    "spends",
]


class Authenticating(Protocol):
    """A message that carries the credentials of the client it comes from."""

    @property
    def credentials(self) -> ClientCredentials: ...


C = TypeVar("C", bound=Authenticating)
R = TypeVar("R")

TOKEN_PATH = "/token"  # noqa: S105 (a path): the token endpoint, an accepted assertion aud


class JwksNeeded(InvalidClient):
    """Answered to the token route, not the client: the client's keys are at `uri`; fetch
    them (outside this shard's transaction) and ask again with them in the credentials.
    `fresh`: the cached copy lacks the assertion's key. Unhandled, it is invalid_client."""

    def __init__(self, uri: str, *, fresh: bool = False) -> None:
        super().__init__("the client's keys are not available", detail=uri)
        self.uri = uri
        self.fresh = fresh


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The client that proved who it is; `spent_assertion`: it did so with an RFC 7523
    assertion whose jti is now recorded as used (see `authenticated`)."""

    client: ClientRecord
    spent_assertion: bool


def spends(credentials: ClientCredentials) -> bool:
    """Whether authenticating with `credentials` writes: an RFC 7523 assertion's jti is
    recorded as used (§3 item 7). A secret, or no secret, is only read."""
    return credentials.method == "private_key_jwt"


def authenticate(shard: ClientShard, credentials: ClientCredentials) -> Authenticated:
    """The client, if it proved who it is the way it registered. For private_key_jwt this
    records the assertion's jti, so call it from a @command handler."""
    if spends(credentials):
        client = _registered(shard, credentials)
        _spend_assertion(shard, client, credentials)
        return Authenticated(client, spent_assertion=True)
    return Authenticated(check_credentials(shard, credentials), spent_assertion=False)


def check_credentials(shard: ClientShard, credentials: ClientCredentials) -> ClientRecord:
    """The client, if it proved who it is with credentials that spend nothing (a secret, or
    none for a public client): a read, for a @query handler. An assertion is refused here,
    never accepted unspent: it goes through `authenticate`."""
    if spends(credentials):
        raise InvalidClient("a client assertion is spent by a command, not checked by a query")
    client = _registered(shard, credentials)
    if credentials.method in ("client_secret_basic", "client_secret_post") and not (
        credentials.secret and check_secret(credentials.secret, client.secret_hash)
    ):
        raise InvalidClient("client authentication failed")
    return client


def _registered(shard: ClientShard, credentials: ClientCredentials) -> ClientRecord:
    """The shard's client, if it is the one named and uses the method it registered."""
    client = shard.client()
    if client.client_id != credentials.client_id:
        raise InvalidClient("unknown client")
    check_method(credentials, client.token_endpoint_auth_method)
    return client


def _spend_assertion(
    shard: ClientShard, client: ClientRecord, credentials: ClientCredentials
) -> None:
    """RFC 7523 §3: signed by a registered key, claims in order, jti not seen before."""
    assert credentials.assertion is not None  # read_credentials guarantees it
    metadata = json.loads(client.metadata)
    uri = metadata.get("jwks_uri")
    document = metadata.get("jwks") or credentials.jwks
    if document is None:
        if not uri:
            raise InvalidClient("the client registered no keys")
        raise JwksNeeded(uri)
    try:
        keys = parse_client_jwks(document)
        claims = verify_client_assertion(credentials.assertion, keys)
    except UnknownKey:
        if uri:  # the client may have rotated its keys since they were cached
            raise JwksNeeded(uri, fresh=True) from None
        raise InvalidClient("client assertion signed by an unregistered key") from None
    except (TokenInvalid, ValueError) as exc:
        raise InvalidClient("client assertion is invalid", detail=str(exc)) from None
    issuer = shard.env.settings.issuer
    now = shard.now()
    checked = check_assertion_claims(
        claims, client_id=client.client_id, audiences=(issuer, issuer + TOKEN_PATH), now=now
    )
    if not shard.store.spend_assertion_jti(checked.jti, checked.exp, now):
        raise InvalidClient("client assertion was already used")


def authenticated(
    handler: Callable[[ClientShard, ClientRecord, C], R],
) -> Callable[[ClientShard, C], R]:
    """The handler of a message that carries client credentials, called with the client once
    it authenticated. An assertion verified on the way stays spent even when the handler then
    fails: its writes commit before the error is answered (RFC 7523 §3 item 7)."""

    @functools.wraps(handler)
    def run(shard: ClientShard, message: C) -> R:
        auth = authenticate(shard, message.credentials)
        try:
            return handler(shard, auth.client, message)
        except OAuthError as exc:
            if auth.spent_assertion:
                raise CommitThenRaise(exc) from None
            raise

    return run


def require_grant(client: ClientRecord, grant_type: str) -> None:
    # OAuth 2.1 §3.2.4 unauthorized_client.
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"the client is not registered for {grant_type}")
