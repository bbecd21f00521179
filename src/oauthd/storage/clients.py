"""The per-client shard: `<tenant>/clients/<2 chars>/<shardkey>.sqlite`, one file per client.

Schema v1 holds the client's registration. Later migrations add its codes, refresh-token
families and access-token records, which all live beside the client that owns them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from oauthd.storage.sqlite import Schema, Store

__all__ = [
    "CLIENT",
    "ClientRecord",
    "client_shard_path",
    "create_client_shard",
    "load_client",
    "shard_key_for",
]


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A registered client as stored; `secret_hash` is empty for public clients."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    token_endpoint_auth_method: str
    scope: str
    first_party: bool
    secret_hash: str
    source: str  # "config", "cli" or "dynamic"
    created_at: int


def _v1(db: sqlite_utils.Database) -> None:
    db.table("client").create(
        {
            "client_id": str,
            "client_name": str,
            "redirect_uris": str,
            "grant_types": str,
            "response_types": str,
            "token_endpoint_auth_method": str,
            "scope": str,
            "first_party": int,
            "secret_hash": str,
            "source": str,
            "created_at": int,
        },
        pk="client_id",
    )


CLIENT = Schema("client", (_v1,))


def shard_key_for(client_id: str) -> str:
    """80 bits of SHA-256 in hex: unreserved characters, routable without a global lookup."""
    return hashlib.sha256(client_id.encode("utf-8")).hexdigest()[:20]


def client_shard_path(tenant_dir: Path, shard_key: str) -> Path:
    return tenant_dir / "clients" / shard_key[:2] / f"{shard_key}.sqlite"


def create_client_shard(tenant_dir: Path, record: ClientRecord, *, fsync: bool = False) -> str:
    """Create (or overwrite the registration in) the client's shard; returns its shard key."""
    shard_key = shard_key_for(record.client_id)
    store = Store(client_shard_path(tenant_dir, shard_key), CLIENT, create=True, fsync=fsync)
    try:
        with store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO client VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.client_id,
                    record.client_name,
                    json.dumps(record.redirect_uris),
                    json.dumps(record.grant_types),
                    json.dumps(record.response_types),
                    record.token_endpoint_auth_method,
                    record.scope,
                    int(record.first_party),
                    record.secret_hash,
                    record.source,
                    record.created_at,
                ),
            )
    finally:
        store.close()
    return shard_key


def load_client(store: Store) -> ClientRecord | None:
    rows = store.query("SELECT * FROM client LIMIT 1")
    if not rows:
        return None
    (cid, name, uris, grants, responses, method, scope, first, secret, source, created) = rows[0]
    return ClientRecord(
        client_id=cid,
        client_name=name,
        redirect_uris=tuple(json.loads(uris)),
        grant_types=tuple(json.loads(grants)),
        response_types=tuple(json.loads(responses)),
        token_endpoint_auth_method=method,
        scope=scope,
        first_party=bool(first),
        secret_hash=secret,
        source=source,
        created_at=created,
    )
