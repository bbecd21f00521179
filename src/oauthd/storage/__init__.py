"""The only importer of sqlite3, sqlite-utils and argon2: shard files, schemas, migrations, hashes.

Each shard is one SQLite file (in WAL mode, but the keys shard) whose schema is versioned by
`PRAGMA user_version` and brought up to date by its ordered migrations when it is opened
(docs/architecture.md "Storage").
"""

from oauthd.storage.clients import (
    ClientRecord,
    client_shard_file,
    client_shard_modified_at,
    client_shard_path,
    create_client_shard,
    delete_client,
    list_client_shards,
    load_client,
    remove_client_shard,
    save_client,
    shard_key_for,
    touch_client,
)
from oauthd.storage.directory import (
    DIRECTORY,
    count_clients,
    index_client,
    index_user_code,
    list_clients,
    load_user_code,
    unindex_client,
)
from oauthd.storage.embedded import SQLITE
from oauthd.storage.expiry import collect_client_shard, collect_directory
from oauthd.storage.inventory import refuse_newer_data
from oauthd.storage.keys import KEYS, KeyRow, delete_keys, insert_key, load_keys, update_key_times
from oauthd.storage.seam import (
    Backend,
    ClientStore,
    DirectoryStore,
    FederationStore,
    KeyStore,
    Ordered,
    RegistryStore,
)
from oauthd.storage.secrets import check_password, check_secret, hash_password, hash_secret
from oauthd.storage.sqlite import LockBusy, Schema, SchemaError, Store, tenant_dir

__all__ = [
    "DIRECTORY",
    "KEYS",
    "SQLITE",
    "Backend",
    "ClientRecord",
    "ClientStore",
    "DirectoryStore",
    "FederationStore",
    "KeyRow",
    "KeyStore",
    "LockBusy",
    "Ordered",
    "RegistryStore",
    "Schema",
    "SchemaError",
    "Store",
    "check_password",
    "check_secret",
    "client_shard_file",
    "client_shard_modified_at",
    "client_shard_path",
    "collect_client_shard",
    "collect_directory",
    "count_clients",
    "create_client_shard",
    "delete_client",
    "delete_keys",
    "hash_password",
    "hash_secret",
    "index_client",
    "index_user_code",
    "insert_key",
    "list_client_shards",
    "list_clients",
    "load_client",
    "load_keys",
    "load_user_code",
    "refuse_newer_data",
    "remove_client_shard",
    "save_client",
    "shard_key_for",
    "tenant_dir",
    "touch_client",
    "unindex_client",
    "update_key_times",
]
