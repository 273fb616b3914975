"""Structured log lines, one per event, on stderr unless configured otherwise: JSON lines
for schedulers and files, readable ``key=value`` lines for people at a terminal."""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from typing import IO, Any, ClassVar, Literal

import orjson

__all__ = ["LOG_FORMATS", "JsonFormatter", "TextFormatter", "configure_logging",
           "log_event", "logger", "resolve_log_format"]

LogFormat = Literal["auto", "json", "text"]
LOG_FORMATS = ("auto", "json", "text")

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


class TextFormatter(logging.Formatter):
    """Formats a record as one readable line: time, level, event, then ``key=value`` fields.

    >>> rec = logging.LogRecord("sesa_fp", logging.WARNING, "", 0, "dead_letters_at_end", (),
    ...                         None)
    >>> rec.created = 0.0
    >>> rec.fields = {"dead_letters": 3, "hint": "add partition(...)"}
    >>> TextFormatter().format(rec)
    "00:00:00 WARN  dead_letters_at_end dead_letters=3 hint='add partition(...)'"
    """

    _LEVELS: ClassVar[dict[str, str]] = {"WARNING": "WARN", "CRITICAL": "CRIT"}

    def format(self, record: logging.LogRecord) -> str:
        when = _dt.datetime.fromtimestamp(record.created, _dt.UTC).strftime("%H:%M:%S")
        level = self._LEVELS.get(record.levelname, record.levelname)
        parts = [when, f"{level:<5}", record.getMessage()]
        fields = dict(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[1] is not None:
            fields["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        for key, value in fields.items():
            if value is None:
                continue
            text = value if isinstance(value, str) else str(value)
            parts.append(f"{key}={text if text and ' ' not in text else repr(text)}")
        return " ".join(parts)


def resolve_log_format(fmt: str = "auto", stream: IO[str] | None = None) -> str:
    """``json`` or ``text``: ``auto`` is text on a terminal or in a notebook (stderr in an
    IPython kernel), JSON lines anywhere else.

    >>> import io
    >>> resolve_log_format("auto", io.StringIO()), resolve_log_format("text")
    ('json', 'text')
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    if fmt != "auto":
        return fmt
    if stream is None and "ipykernel" in sys.modules:  # a notebook: people read it
        return "text"
    isatty = getattr(stream or sys.stderr, "isatty", None)
    try:
        return "text" if callable(isatty) and isatty() else "json"
    except ValueError:  # a closed stream
        return "json"


def configure_logging(level: int = logging.INFO, stream: IO[str] | None = None,
                      fmt: LogFormat | str = "auto") -> str:
    """Send sesa_fp's events to ``stream`` (stderr) as JSON lines, or as readable lines when
    ``fmt`` is ``text`` (``auto``: text on a terminal); idempotent. Returns the format used."""
    for handler in list(logger.handlers):
        if getattr(handler, "_sesa_json", False):
            logger.removeHandler(handler)
    out = stream or sys.stderr
    chosen = resolve_log_format(fmt, stream)
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter() if chosen == "text" else JsonFormatter())
    handler._sesa_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return chosen


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event."""
    logger.log(level, event, extra={"fields": fields})
