"""What the janitor deletes (docs/architecture.md "Storage": a janitor collects expired rows).

Each function runs inside its shard's write transaction and returns how many rows of each
kind went. A row goes only once it can never answer again: a redeemed code stays until it
expires, so a replay before then is still recognised (OAuth 2.1 §4.1.3); a rotated refresh
token stays while its family lives, so its replay still revokes the family (OAuth 2.1 §4.3.1).
"""

from __future__ import annotations

from oauthd.storage.grant_tables import change
from oauthd.storage.sqlite import Store

__all__ = ["collect_client_shard", "collect_directory"]

# (kind, statement): run in this order; each takes `now` as its only parameter. Refresh
# tokens go before the families that name them.
CLIENT_SHARD_SQL = (
    ("pending", "DELETE FROM pending WHERE expires_at <= ?"),
    ("codes", "DELETE FROM codes WHERE expires_at <= ?"),
    (
        "refresh_tokens",
        "DELETE FROM refresh_tokens WHERE family_id IN (SELECT family_id FROM families "
        "WHERE revoked_at IS NOT NULL OR expires_at <= ?)",
    ),
    ("families", "DELETE FROM families WHERE expires_at <= ?"),
    ("access_tokens", "DELETE FROM access_tokens WHERE expires_at <= ?"),
    ("device_codes", "DELETE FROM device_codes WHERE expires_at <= ?"),
    ("assertion_jtis", "DELETE FROM assertion_jtis WHERE expires_at <= ?"),
)
DIRECTORY_SQL = (
    ("sessions", "DELETE FROM sessions WHERE expires_at <= ?"),
    ("user_codes", "DELETE FROM user_codes WHERE expires_at <= ?"),
)


def _run(store: Store, statements: tuple[tuple[str, str], ...], now: int) -> dict[str, int]:
    # A client's grant tables exist from their first row on (grant_tables.py): none, none go.
    return {kind: change(store, sql, (now,)) for kind, sql in statements}


def collect_client_shard(store: Store, now: int) -> dict[str, int]:
    """Delete a client shard's expired rows; counts by table."""
    return _run(store, CLIENT_SHARD_SQL, now)


def collect_directory(store: Store, now: int) -> dict[str, int]:
    """Delete the directory's expired browser sessions and device user codes."""
    return _run(store, DIRECTORY_SQL, now)
