"""The seam's whole-shard rows (`dump_rows`, `load_rows`, what `oauthd migrate` moves) on
SQLite: a shard loaded with another's rows holds exactly those rows afterwards."""

from __future__ import annotations

from pathlib import Path

from oauthd.storage.embedded import SQLITE
from oauthd.storage.people import UserRow
from tests.conftest import settings_in


def test_rows_loaded_into_a_shard_replace_its_own(tmp_path: Path) -> None:
    """A directory's rows loaded into another tenant's directory: the same rows there, and
    the rows it held before gone."""
    settings = settings_in(tmp_path / "data")
    source = SQLITE.open_directory(settings, "default")
    target = SQLITE.open_directory(settings, "other")
    with source.transaction():
        source.insert_user(UserRow("u1", "a@example.com", "A", True, ""), 100)
        source.index_client("c1", "0" * 20, "dynamic", 100)
    with target.transaction():
        target.insert_user(UserRow("u2", "b@example.com", "B", False, ""), 100)
    with source.reading():
        rows = source.dump_rows()
    with target.transaction():
        target.load_rows(rows)
    with target.reading():
        assert target.dump_rows() == rows
        assert target.load_user("u2") is None
    assert [row["user_id"] for row in rows["users"]] == ["u1"]
    assert [row["client_id"] for row in rows["client_index"]] == ["c1"]
    source.close()
    target.close()
