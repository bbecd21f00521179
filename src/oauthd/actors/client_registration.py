"""ClientActor handlers for RFC 7592: read, update and delete a client's own registration
with its registration access token."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from oauthd.actors.context import ClientShard
from oauthd.actors.shard import command, query
from oauthd.oauth.handles import parse_handle
from oauthd.oauth.rfc6750_bearer import InvalidToken
from oauthd.oauth.rfc7591_registration import ClientMetadata, InvalidClientMetadata
from oauthd.runtime import Command, Query
from oauthd.storage import ClientRecord, check_secret

__all__ = [
    "DeleteRegistration",
    "GetRegistration",
    "UpdateFromDocument",
    "UpdateRegistration",
]


@dataclass(frozen=True, slots=True)
class GetRegistration(Query[ClientRecord]):
    """Query: the registration, for the holder of its registration access token."""

    token: str


@dataclass(frozen=True, slots=True)
class UpdateRegistration(Command[ClientRecord]):
    """Command: replace the metadata (RFC 7592 §2.2); replies the new ClientRecord."""

    token: str
    metadata: ClientMetadata
    client_secret: str | None = None  # if sent, it must be the current one (RFC 7592 §2.2)


@dataclass(frozen=True, slots=True)
class DeleteRegistration(Command[None]):
    """Command: deregister (RFC 7592 §2.3); every grant of the client ends with it."""

    token: str


@dataclass(frozen=True, slots=True)
class UpdateFromDocument(Command[ClientRecord]):
    """Command: a client known by its metadata document (CIMD) published a new one; its
    registration becomes `record`. Replies the registration now in force."""

    record: ClientRecord


def _authorized(shard: ClientShard, token: str) -> ClientRecord:
    # RFC 7592 §3: the registration access token is a bearer token for this URI only.
    client = shard.client()
    if parse_handle(token, "rat") != shard.shard_key or not check_secret(
        token, client.registration_token_hash
    ):
        raise InvalidToken("the registration access token is invalid")
    return client


@query(GetRegistration)
def get_registration(shard: ClientShard, message: GetRegistration) -> ClientRecord:
    return _authorized(shard, message.token)


@command(UpdateRegistration)
def update_registration(shard: ClientShard, message: UpdateRegistration) -> ClientRecord:
    client = _authorized(shard, message.token)
    meta = message.metadata
    secret = message.client_secret
    if secret is not None and not check_secret(secret, client.secret_hash):
        raise InvalidClientMetadata("client_secret does not match the registration")
    if meta.token_endpoint_auth_method != client.token_endpoint_auth_method:
        # A change would need a new secret, or leave a public client holding one.
        raise InvalidClientMetadata("token_endpoint_auth_method cannot be changed")
    updated = dataclasses.replace(
        client,
        client_name=meta.client_name,
        redirect_uris=meta.redirect_uris,
        grant_types=meta.grant_types,
        response_types=meta.response_types,
        scope=meta.scope,
        metadata=json.dumps(meta.public_members()),
    )
    shard.store.save_client(updated)
    shard.forget()
    return updated


@command(DeleteRegistration)
def delete_registration(shard: ClientShard, message: DeleteRegistration) -> None:
    client = _authorized(shard, message.token)
    shard.store.delete_client(shard.now())
    shard.forget()
    shard.audit("client_deleted", client_id=client.client_id, by="rfc7592")


@command(UpdateFromDocument)
def update_from_document(shard: ClientShard, message: UpdateFromDocument) -> ClientRecord:
    client = shard.client()
    if client.source != "document" or client.client_id != message.record.client_id:
        raise InvalidClientMetadata("this client is not known by a metadata document")
    updated = message.record.succeeding(client)
    if updated != client:
        shard.store.save_client(updated)
        shard.forget()
    return updated
