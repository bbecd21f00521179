"""Audit events: one structured log line under the `oauthd.audit` logger per thing done.

An event names what happened (`token_issued`, `login_failed`, `client_deleted` ...) and carries
identifiers only: client_id, subject, jti, kid, a grant's family id. Never a secret, token,
code, password or registration access token: callers pass none, and `check_fields` refuses
names that suggest one, so a slip fails the tests rather than reaching the log.

Actors queue their events with `ShardActor.audit()`, written after the message's transaction
committed (a rolled-back action is not audited as done); routes call `audit()` for what
commits nothing (a failed login). The line format is `oauthd.logs`: JSON members, or
`event key=value ...` in text.
"""

from __future__ import annotations

from oauthd.logs import AUDIT, AuditFields, log_audit

__all__ = ["AUDIT", "AuditFields", "audit", "check_fields"]

# Field names that would carry a credential; identifiers (jti, kid, family) are fine.
FORBIDDEN = ("token", "secret", "code", "password", "assertion", "session", "csrf", "verifier")


_checked: set[tuple[str, ...]] = set()  # field-name sets already found clean


def check_fields(event: str, fields: AuditFields) -> None:
    names = tuple(fields)
    if names in _checked:
        return
    for name in names:
        if any(word in name for word in FORBIDDEN):
            raise ValueError(f"audit event {event} must not carry {name!r}")
    _checked.add(names)


def audit(event: str, **fields: str | int | bool) -> None:
    """Write one audit line now: for events that commit nothing (a refused login)."""
    write(event, fields)


def write(event: str, fields: AuditFields) -> None:
    check_fields(event, fields)
    log_audit(event, fields)
