"""`cast`: convert fields to datetime, date, int, float, bool or str; a bad value is an error."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable
from typing import Any

from sesa_fp.errors import ConfigError, RecordError

__all__ = ["CAST_TYPES", "CastError", "cast", "cast_value"]


class CastError(RecordError):
    """A value that does not convert; names the field and the value."""


def _to_datetime(value: Any, unit: str) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        return value
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        return _dt.datetime.fromisoformat(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if unit == "ms" else value
        return _dt.datetime.fromtimestamp(seconds, _dt.UTC)
    raise ValueError


def _to_date(value: Any, unit: str) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, str) and len(value) == 10:
        return _dt.date.fromisoformat(value)
    return _to_datetime(value, unit).date()


def _to_int(value: Any, unit: str) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError


def _to_float(value: Any, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    return float(value)


_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})


def _to_bool(value: Any, unit: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise ValueError


def _to_str(value: Any, unit: str) -> str:
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        raise ValueError
    return str(value)


_CASTERS: dict[str, Callable[[Any, str], Any]] = {
    "datetime": _to_datetime,
    "date": _to_date,
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "str": _to_str,
}
CAST_TYPES = tuple(_CASTERS)


def cast_value(field: str, value: Any, to: str, unit: str = "s") -> Any:
    """Convert one value, raising `CastError` naming the field and the value.

    >>> cast_value("n", "12", "int")
    12
    >>> cast_value("when", "2025-09-06T10:00:00Z", "datetime")
    datetime.datetime(2025, 9, 6, 10, 0, tzinfo=datetime.timezone.utc)
    >>> try:
    ...     cast_value("n", "twelve", "int")
    ... except CastError as exc:
    ...     print(exc)
    cast: field 'n' value 'twelve' is not a valid int
    """
    return _convert(_CASTERS[to], field, value, to, unit)


def _convert(conv: Callable[[Any, str], Any], field: str, value: Any, to: str, unit: str) -> Any:
    try:
        return conv(value, unit)
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        raise CastError(f"cast: field {field!r} value {value!r:.80} is not a valid {to}") from exc


def cast(
    fields: Iterable[str] | str, to: str = "datetime", *, unit: str = "s"
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A pure record function converting ``fields`` to ``to``; missing or None values stay.
    Numbers cast to datetime are epoch seconds (``unit="ms"`` for milliseconds).

    >>> cast(["n"], to="int")({"n": "3", "m": "x"})
    {'n': 3, 'm': 'x'}
    >>> cast("d", to="date")({"d": "2025-09-06"})
    {'d': datetime.date(2025, 9, 6)}
    """
    names = (fields,) if isinstance(fields, str) else tuple(fields)
    if not names or not all(isinstance(f, str) for f in names):
        raise ConfigError(f"cast: fields must be field names, got {fields!r}")
    if to not in _CASTERS:
        raise ConfigError(f"cast: unknown type {to!r}; known: {', '.join(CAST_TYPES)}")
    if unit not in ("s", "ms"):
        raise ConfigError(f"cast: unit must be 's' or 'ms', got {unit!r}")
    conv = _CASTERS[to]

    def cast_record(record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        for f in names:
            value = out.get(f)
            if value is None:
                continue
            out[f] = _convert(conv, f, value, to, unit)
        return out

    extra = "" if unit == "s" else f", unit={unit!r}"
    cast_record.__stage_name__ = f"cast({list(names)!r}, to={to!r}{extra})"  # type: ignore[attr-defined]
    return cast_record
