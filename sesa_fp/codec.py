"""JSON lines in and out, via orjson: datetimes become ISO-8601, Decimals numbers."""

from __future__ import annotations

import decimal
from typing import Any

import orjson

__all__ = ["dumps_line", "dumps_line_lenient", "loads"]

_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
loads = orjson.loads


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        as_float = float(value)
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON: {value!r:.80}")


def dumps_line(record: Any) -> bytes:
    """One JSON line; raises ``TypeError`` for a value JSON cannot hold.

    >>> import datetime as dt
    >>> dumps_line({"t": dt.datetime(2025, 9, 6, 12, 0), "s": "é"})
    b'{"t":"2025-09-06T12:00:00","s":"\\xc3\\xa9"}\\n'
    """
    try:
        return orjson.dumps(record, default=_default, option=_OPTS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(str(exc)) from exc


def _lenient(value: Any) -> Any:
    try:
        return _default(value)
    except TypeError:
        return repr(value)


def _sanitize(value: Any) -> Any:
    """What orjson rejects without asking ``default`` (ints beyond 64 bits, odd keys)."""
    if isinstance(value, dict):
        return {k if isinstance(k, (str, int, float, bool)) or k is None else repr(k):
                _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and \
            not -(2**63) <= value < 2**64:
        return str(value)
    return value


def dumps_line_lenient(record: Any) -> bytes:
    """Like `dumps_line`, but anything JSON cannot hold becomes its ``repr`` or string
    (for dead letters, which must never be lost to an encoding error).

    >>> dumps_line_lenient({"o": object}) == b'{"o":"<class \\'object\\'>"}\\n'
    True
    >>> dumps_line_lenient({(1, 2): 2**70})
    b'{"(1, 2)":"1180591620717411303424"}\\n'
    """
    try:
        return orjson.dumps(record, default=_lenient, option=_OPTS)
    except orjson.JSONEncodeError:
        return orjson.dumps(_sanitize(record), default=_lenient, option=_OPTS)
