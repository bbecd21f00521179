"""Making a new client: identifiers, secrets and the stored record, the same way for
registration over HTTP (RFC 7591) and `oauthd clients add`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from oauthd.keys import parse_client_jwks
from oauthd.oauth.handles import issue_client_id, issue_handle, issue_secret
from oauthd.oauth.rfc7591_registration import ClientMetadata, InvalidClientMetadata
from oauthd.storage import ClientRecord, hash_secret, shard_key_for

__all__ = ["Enrolment", "check_jwks", "document_record", "enrol"]

SECRET_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A new client's record, and the secrets shown once and never stored in the clear."""

    record: ClientRecord
    client_secret: str | None
    registration_access_token: str | None


def enrol(meta: ClientMetadata, now: int, *, source: str, first_party: bool = False) -> Enrolment:
    """A client id of 128 random bits; a secret only for secret-based methods; an RFC 7592
    registration access token only for clients that registered themselves."""
    check_jwks(meta.jwks)
    client_id = issue_client_id()
    secret_based = meta.token_endpoint_auth_method in SECRET_METHODS
    secret = issue_secret() if secret_based else None
    token = issue_handle("rat", shard_key_for(client_id)) if source == "dynamic" else None
    record = dataclasses.replace(
        _record(client_id, meta, source, now, first_party),
        secret_hash=hash_secret(secret) if secret else "",
        registration_token_hash=hash_secret(token) if token else "",
    )
    return Enrolment(record, secret, token)


def _record(
    client_id: str, meta: ClientMetadata, source: str, now: int, first_party: bool
) -> ClientRecord:
    """A registration from validated metadata, without secrets."""
    return ClientRecord(
        client_id=client_id,
        client_name=meta.client_name,
        redirect_uris=meta.redirect_uris,
        grant_types=meta.grant_types,
        response_types=meta.response_types,
        token_endpoint_auth_method=meta.token_endpoint_auth_method,
        scope=meta.scope,
        first_party=first_party,
        secret_hash="",
        source=source,
        created_at=now,
        metadata=json.dumps(meta.public_members()),
    )


def check_jwks(jwks: str) -> None:
    """RFC 7591 §2: a registered JWK set must hold usable public keys (invalid_client_metadata)."""
    if jwks:
        try:
            parse_client_jwks(jwks)
        except ValueError as exc:
            raise InvalidClientMetadata(str(exc)) from None


def document_record(
    client_id: str, meta: ClientMetadata, now: int, fresh_until: int
) -> ClientRecord:
    """A client known by its metadata document (CIMD): its URL is its id, it has no secret
    and no registration access token, and it is never first-party. `fresh_until`: the end of
    the document's cache lifetime."""
    check_jwks(meta.jwks)
    record = _record(client_id, meta, "document", now, first_party=False)
    return dataclasses.replace(record, fresh_until=fresh_until)
