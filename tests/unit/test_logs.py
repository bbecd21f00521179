"""The log line (oauthd.logs.LineFormat): one definition for every line, in both formats."""

from __future__ import annotations

import json

import pytest

from oauthd.logs import AuditFields, LineFormat

MESSAGES = [
    "GET /token 200 1.20ms client:default/0123",
    'GET /x"y\\z 404 0.10ms -',
    "GET /\\n\x00\x1f\x7f caf\u00e9 \u2028 \U0001f600 200 0.01ms -",
    "",
]


@pytest.mark.parametrize("message", MESSAGES)
def test_json_line_without_fields_is_json_dumps_of_the_entry(message: str) -> None:
    """A JSON line without fields or traceback (the access log's, written without a dict)
    is byte for byte what json.dumps writes for the same entry, one line, parseable."""
    created = 1_765_000_000.125
    line = LineFormat(as_json=True).line(created, "INFO", "oauthd.access", message)
    entry = {
        "ts": "2025-12-06T05:46:40.125Z",
        "level": "info",
        "logger": "oauthd.access",
        "message": message,
    }
    assert line == json.dumps(entry) + "\n"
    assert line.count("\n") == 1
    assert json.loads(line)["message"] == message


@pytest.mark.parametrize("message", MESSAGES)
def test_json_audit_line_is_json_dumps_of_the_entry(message: str) -> None:
    """An audit line (fields as members after "event"; a field named like a member is left
    out) is byte for byte what json.dumps writes for the same entry."""
    fields: AuditFields = {
        "client_id": 'c"\\\n\u00e9',
        "jti": message,
        "expires_in": 3600,
        "negative": -5,
        "first_party": True,
        "consented": False,
        "level": "shadowed",
        "event": "shadowed",
    }
    created = 1_765_000_000.5
    line = LineFormat(as_json=True).line(
        created, "INFO", "oauthd.audit", "token_issued", "", fields
    )
    entry = {
        "ts": "2025-12-06T05:46:40.500Z",
        "level": "info",
        "logger": "oauthd.audit",
        "message": "token_issued",
        "event": "token_issued",
    }
    entry.update({k: v for k, v in fields.items() if k not in entry})
    assert line == json.dumps(entry) + "\n"
