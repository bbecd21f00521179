"""The actors: one per OAuth client (its shard), and per tenant a KeyManager, a Directory and
a Fetcher (documents clients publish: their jwks_uri, Client ID Metadata Documents).

`kinds()` wires them into the runtime; `addresses` builds the addresses the front door asks.
"""

from oauthd.actors.client import ClientActor, GetClient, client_address
from oauthd.actors.directory import (
    CountClients,
    Directory,
    ListClients,
    RegisterClient,
    directory_address,
)
from oauthd.actors.fetcher import FetchClientMetadata, Fetcher, FetchJwks, fetcher_address
from oauthd.actors.keys import (
    KeyInfo,
    KeyManager,
    ListKeys,
    NextKeyChange,
    ReloadKeys,
    RotateKeys,
    Tick,
    keys_address,
    run_key_schedule,
)
from oauthd.actors.wiring import DEFAULT_TENANT, Env, TenantConfig, TenantTable, kinds

__all__ = [
    "DEFAULT_TENANT",
    "ClientActor",
    "CountClients",
    "Directory",
    "Env",
    "FetchClientMetadata",
    "FetchJwks",
    "Fetcher",
    "GetClient",
    "KeyInfo",
    "KeyManager",
    "ListClients",
    "ListKeys",
    "NextKeyChange",
    "RegisterClient",
    "ReloadKeys",
    "RotateKeys",
    "TenantConfig",
    "TenantTable",
    "Tick",
    "client_address",
    "directory_address",
    "fetcher_address",
    "keys_address",
    "kinds",
    "run_key_schedule",
]
