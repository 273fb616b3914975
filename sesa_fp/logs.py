"""Structured JSON log lines: one object per event, on stderr unless configured otherwise."""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from typing import IO, Any

import orjson

__all__ = ["JsonFormatter", "configure_logging", "log_event", "logger"]

logger = logging.getLogger("sesa_fp")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, logger, event and the event's fields.

    >>> rec = logging.LogRecord("sesa_fp", logging.INFO, "", 0, "run_started", (), None)
    >>> rec.fields = {"run_id": "r1"}
    >>> line = JsonFormatter().format(rec)
    >>> orjson.loads(line)["event"], orjson.loads(line)["run_id"]
    ('run_started', 'r1')
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[1] is not None:
            payload["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return orjson.dumps(payload, default=str).decode()


def configure_logging(level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Send sesa_fp's events to ``stream`` (stderr) as JSON lines; idempotent."""
    for handler in list(logger.handlers):
        if getattr(handler, "_sesa_json", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._sesa_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event."""
    logger.log(level, event, extra={"fields": fields})
