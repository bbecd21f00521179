"""How routes reach actors: by client id (its shard), and the tenant's directory. The actor
that served a request is noted in the ASGI scope for the access log."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from oauthd.actors import (
    FetchClientMetadata,
    FetchJwks,
    GetClient,
    RegisterClient,
    ReloadKeys,
    client_address,
    directory_address,
    fetcher_address,
    keys_address,
)
from oauthd.actors.client_auth import JwksNeeded
from oauthd.actors.client_registration import UpdateFromDocument
from oauthd.actors.enrol import document_record
from oauthd.actors.fetcher import DocumentUnreachable
from oauthd.errors import InvalidClient, InvalidRequest, NotFound, TemporarilyUnavailable
from oauthd.keys import Keyring
from oauthd.oauth.client_id_metadata import is_metadata_client_id
from oauthd.oauth.handles import parse_handle
from oauthd.oauth.rfc6749_client_auth import ClientCredentials
from oauthd.runtime import Address, Message
from oauthd.storage import ClientRecord
from oauthd.web.access_log import note_actor
from oauthd.web.state import AppState

__all__ = [
    "ask",
    "ask_as_client",
    "ask_client",
    "ask_directory",
    "ask_pending",
    "keyring_for",
    "refresh_document_client",
]

R = TypeVar("R")  # the reply of the message asked


async def ask(state: AppState, address: Address, message: Message[R]) -> R:
    note_actor(str(address))
    return await state.system.ask(address, message)


async def keyring_for(state: AppState, token: str) -> Keyring:
    """The keyring to verify `token` with. A kid this process does not know may belong to a
    key another worker or `oauthd keys rotate --immediate` made since this process last read
    the keys shard: re-read it (a query, no write lock) before calling the token invalid."""
    keyring = state.keyring.current
    if keyring.names_unknown_key(token):
        await ask(state, keys_address(state.tenant), ReloadKeys())
        keyring = state.keyring.current
    return keyring


async def ask_client(state: AppState, client_id: str, message: Message[R]) -> R:
    """Unknown clients never spawn an actor: they answer invalid_client."""
    try:
        return await ask(state, client_address(state.tenant, client_id), message)
    except NotFound:
        raise InvalidClient("unknown client") from None


async def refresh_document_client(state: AppState, client_id: str) -> None:
    """A client_id that is an https URL names the client's metadata document (CIMD). The
    Fetcher returns it validated; the first good document creates the client's shard, keyed
    like every other client by the hash of its id, and a changed one updates it. From then on
    the client is an ordinary registered client: its codes and tokens carry its shard key.
    The stored copy is used while fresh (the document's cache lifetime) and, when a refetch
    fails or is refused, for `client_metadata.stale_if_error_s` longer (stale-while-error).
    A client configured with a URL as its id is not fetched: the operator's registration wins."""
    if not state.settings.client_metadata.enabled or not is_metadata_client_id(client_id):
        return
    address = client_address(state.tenant, client_id)
    known: ClientRecord | None
    try:
        known = await ask(state, address, GetClient())
    except NotFound:
        known = None
    except InvalidClient:
        # Deleted (its lifetime lapsed), its shard perhaps removed since by another process's
        # janitor: this process's actor may hold the old file open. Closed now, the next
        # message opens the shard that registering the document again makes.
        known = None
        await state.system.retire(address)
    if known is not None and known.source != "document":
        return
    now = int(state.clock.now())
    fresh_until = known.fresh_until if known is not None else None
    if fresh_until is not None and now < fresh_until:
        return
    fetch = FetchClientMetadata(client_id, registered=known is not None)
    try:
        fetched = await ask(state, fetcher_address(state.tenant), fetch)
    except (DocumentUnreachable, TemporarilyUnavailable):
        # Only a host that could not answer, or a fetch refused by a budget: a document
        # that is gone (404, 410) or no longer valid ends the client at once.
        stale_until = (fresh_until or 0) + state.settings.client_metadata.stale_if_error_s
        if fresh_until is not None and now < stale_until:
            return  # stale-while-error: the stored registration, for a bounded time
        raise
    record = document_record(client_id, fetched.metadata, now, fetched.fresh_until)
    if known is None:
        await ask_directory(state, RegisterClient(record))
    elif record.succeeding(known) != known:
        await ask(state, address, UpdateFromDocument(record))


async def ask_directory(state: AppState, message: Message[R]) -> R:
    return await ask(state, directory_address(state.tenant), message)


async def ask_pending(state: AppState, request_id: str | None, message: Message[R]) -> R:
    """A pending authorization request lives in its client's shard, named by its id."""
    shard_key = parse_handle(request_id, "ar")
    if shard_key is None:
        raise InvalidRequest("this sign-in request has expired; start again from the app")
    try:
        return await ask(state, Address(state.tenant, "client", shard_key), message)
    except NotFound:
        raise InvalidRequest("this sign-in request has expired; start again from the app") from None


async def ask_as_client(
    state: AppState,
    credentials: ClientCredentials,
    message: Callable[[ClientCredentials], Message[R]],
) -> R:
    """Ask the authenticating client's actor, fetching its keys first when it authenticates
    with a private_key_jwt whose keys are at a `jwks_uri` (RFC 7523): the actor answers
    JwksNeeded, the Fetcher gets the set outside any transaction, and the actor is asked
    again. An unknown kid earns one fresh fetch (key rotation), never two."""
    await refresh_document_client(state, credentials.client_id)
    fetched_fresh = False
    while True:
        try:
            return await ask_client(state, credentials.client_id, message(credentials))
        except JwksNeeded as need:
            if need.fresh and fetched_fresh:
                raise InvalidClient("client assertion signed by an unregistered key") from None
            if need.fresh:
                fetched_fresh = True
            elif credentials.jwks is not None:
                raise InvalidClient("the client's keys are not available") from None
            jwks = await ask(
                state, fetcher_address(state.tenant), FetchJwks(need.uri, fresh=need.fresh)
            )
            credentials = dataclasses.replace(credentials, jwks=jwks)
