"""Logging setup: text or one JSON object per line. Nothing secret is ever passed to a logger.

Lines go to stderr through a block buffer: info lines are flushed by `flush_logs()`, which
the server calls a few times a second, and warnings and errors at once. The access log, a
line per request, skips the logging module's records and handlers (`log_access`): on the
request path they cost more than the rest of a metadata request's own work.

Audit records (`oauthd.audit`, see `oauthd.audit`) carry their fields in `record.audit`: in
JSON they become members of the line's object (`"event": "token_issued", "client_id": ...`);
in text, `key=value` pairs after the event name, with any value that is not a plain word
JSON-quoted, so no value can forge a second line or a second field.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _quoted
from typing import TextIO

import trio

from oauthd.settings import LogSettings

__all__ = [
    "AUDIT",
    "LOG_FLUSH_S",
    "AuditFields",
    "flush_logs",
    "flush_logs_every",
    "format_fields",
    "log_access",
    "log_audit",
    "setup_logging",
]

LOG_BUFFER_BYTES = 64 * 1024
ACCESS = "oauthd.access"
AUDIT = "oauthd.audit"
AuditFields = dict[str, str | int | bool]
_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+=-]+")


def format_fields(fields: AuditFields) -> str:
    """`key=value` pairs; a value that is not a plain word is JSON-quoted (escaped)."""
    parts = []
    for key, value in fields.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(f"{key}={text}" if _PLAIN.fullmatch(text) else f"{key}={json.dumps(text)}")
    return " ".join(parts)


class LineFormat:
    """The one definition of a log line, in both formats; the time is formatted once a
    second, not once a line."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._second = -1
        self._stamp = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            pattern = "%Y-%m-%dT%H:%M:%S" if self.as_json else "%Y-%m-%d %H:%M:%S"
            self._stamp = time.strftime(pattern, time.gmtime(second))
        millis = int((created - second) * 1000)
        return f"{self._stamp}.{millis:03d}Z" if self.as_json else f"{self._stamp},{millis:03d}"

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        exc: str = "",
        fields: AuditFields | None = None,
    ) -> str:
        stamp = self._timestamp(created)
        if self.as_json and not exc:  # access and audit lines: written without json.dumps
            return _json_line(stamp, level, logger, message, fields)
        if self.as_json:
            entry: dict[str, object] = {
                "ts": stamp,
                "level": level.lower(),
                "logger": logger,
                "message": message,
            }
            if fields is not None:
                entry["event"] = message
                entry.update({k: v for k, v in fields.items() if k not in entry})
            entry["exc"] = exc
            return json.dumps(entry) + "\n"
        if fields:
            message = f"{message} {format_fields(fields)}"
        return f"{stamp} {level} {logger} {message}\n" + (f"{exc}\n" if exc else "")


_MEMBERS = frozenset(("ts", "level", "logger", "message", "event"))


def _json_line(
    stamp: str, level: str, logger: str, message: str, fields: AuditFields | None
) -> str:
    """`LineFormat.line`'s JSON object, byte for byte what json.dumps writes for it (its
    ASCII string escaping, separators and member order), built without a dict: a line per
    request and per token is on the hot path."""
    line = (
        f'{{"ts": "{stamp}", "level": {_quoted(level.lower())}, "logger": {_quoted(logger)}, '
        f'"message": {_quoted(message)}'
    )
    if fields is not None:
        line += f', "event": {_quoted(message)}'
        for key, value in fields.items():
            if key not in _MEMBERS:
                line += f", {_quoted(key)}: {_json_value(value)}"
    return line + "}\n"


def _json_value(value: str | int | bool) -> str:
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)  # as json.dumps writes an int
    return json.dumps(value)


class BufferedHandler(logging.Handler):
    """Writes each record at once; flushes only warnings and above (and on `flush()`)."""

    def __init__(self, stream: TextIO, line_format: LineFormat) -> None:
        super().__init__()
        self.stream = stream
        self.line_format = line_format

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
            fields: AuditFields | None = getattr(record, "audit", None)
            self.stream.write(
                self.line_format.line(
                    record.created, record.levelname, record.name, record.getMessage(), exc, fields
                )
            )
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.stream.flush()


def _via_logging(message: str) -> None:
    logging.getLogger(ACCESS).info("%s", message)


_access: Callable[[str], None] = _via_logging


def _audit_via_logging(event: str, fields: AuditFields) -> None:
    logger = logging.getLogger(AUDIT)
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", event, extra={"audit": fields})


_audit: Callable[[str, AuditFields], None] = _audit_via_logging


def log_audit(event: str, fields: AuditFields) -> None:
    """One audit line, at info level under `oauthd.audit`: written straight to the buffered
    stream once `setup_logging` ran (it is on the token path), else as a logging record."""
    _audit(event, fields)


def log_access(message: str) -> None:
    """One access-log line, at info level under the `oauthd.access` logger name."""
    _access(message)


def setup_logging(settings: LogSettings, *, own_process: bool = True) -> None:
    """`own_process=False`: oauthd runs inside another server's process (`oauthd.asgi`),
    whose log formats may name the process or thread; the logging module's switches that
    drop those fields from every record are left alone."""
    global _access, _audit
    if own_process:
        logging._srcfile = None  # documented switch: no findCaller() for the records left
        logging.logThreads = False
        logging.logProcesses = False
        logging.logMultiprocessing = False
    stream = open(  # noqa: SIM115 (lives as long as the process)
        sys.stderr.fileno(), "w", buffering=LOG_BUFFER_BYTES, encoding="utf-8", closefd=False
    )
    line_format = LineFormat(as_json=settings.format == "json")
    root = logging.getLogger()
    root.handlers[:] = [BufferedHandler(stream, line_format)]
    root.setLevel(settings.level.upper())
    if logging.getLogger(ACCESS).isEnabledFor(logging.INFO):

        def direct(message: str) -> None:
            stream.write(line_format.line(time.time(), "INFO", ACCESS, message))

        _access = direct
    else:
        _access = _via_logging
    if logging.getLogger(AUDIT).isEnabledFor(logging.INFO):

        def direct_audit(event: str, fields: AuditFields) -> None:
            stream.write(line_format.line(time.time(), "INFO", AUDIT, event, "", fields))

        _audit = direct_audit
    else:
        _audit = _audit_via_logging


LOG_FLUSH_S = 0.25  # buffered log lines reach stderr within this


async def flush_logs_every(interval_s: float = LOG_FLUSH_S) -> None:
    """The server's (and each worker's) flusher of the buffered info lines."""
    while True:
        await trio.sleep(interval_s)
        flush_logs()


def flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
