"""How `sql_source` turns database values into record values, chunk by chunk.

Value mapping (what a record holds; `sesa_fp.codec` writes it as JSON):

=============================================  =================================================
database value (Python type from the driver)   record value
=============================================  =================================================
NULL                                           ``None``
boolean, integer, text                         ``bool``, ``int`` (exact at any size), ``str``
numeric / decimal                              ``Decimal`` (exact; the codec writes a number, or
                                               a string where a double would change it)
NaN / ±Infinity (numeric or float)             the strings ``"NaN"``, ``"Infinity"``,
                                               ``"-Infinity"`` (JSON has no such numbers)
double precision / real                        ``float``
timestamp, timestamptz, date                   ``datetime`` (naive, or aware with the session's
                                               offset), ``date`` — objects, as `cast` makes them;
                                               the codec writes ISO-8601
time                                           ``time``; a time with a time zone → ISO string
interval                                       ISO-8601 duration string (``"P1Y2M3DT4H5M6.5S"``;
                                               PostgreSQL writes it, months and years kept)
UUID                                           ``str`` (canonical form)
bytea / blob                                   ``str``: standard base64 with padding
arrays                                         ``list``, elements mapped the same way
json / jsonb                                   ``dict`` / ``list`` / scalar, as parsed
inet / cidr                                    ``str``
anything else                                  an error naming the column: cast it in the
                                               query (``col::text``)
=============================================  =================================================
"""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import ipaddress
import math
import uuid
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from sesa_fp import codec

__all__ = ["RowMapper", "adapt_psycopg", "sql_value"]

_KEEP = frozenset({type(None), bool, int, str, dict, _dt.datetime, _dt.date})
_NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity",
              "NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity",
              "sNaN": "NaN", "-NaN": "NaN", "-sNaN": "NaN"}


def _interval(td: _dt.timedelta) -> str:
    """ISO-8601 duration; a negative interval carries the sign on every field (PostgreSQL
    reads ``P-1DT-2H`` back)."""
    us = td.days * 86_400_000_000 + td.seconds * 1_000_000 + td.microseconds
    sign = "-" if us < 0 else ""
    us = abs(us)
    days, us = divmod(us, 86_400_000_000)
    hours, us = divmod(us, 3_600_000_000)
    minutes, us = divmod(us, 60_000_000)
    seconds, us = divmod(us, 1_000_000)
    out = "P" + (f"{sign}{days}D" if days else "")
    clock = ""
    if hours:
        clock += f"{sign}{hours}H"
    if minutes:
        clock += f"{sign}{minutes}M"
    if seconds or us or not (days or clock):
        frac = f".{us:06d}".rstrip("0") if us else ""
        clock += f"{sign}{seconds}{frac}S"
    return out + ("T" + clock if clock else "")


def _decimal(v: decimal.Decimal) -> Any:
    return v if v.is_finite() else _NONFINITE[str(v)]


def _float(v: float) -> Any:
    return v if math.isfinite(v) else _NONFINITE[repr(v)]


def _time(v: _dt.time) -> Any:
    return v if v.tzinfo is None else v.isoformat()


def _bytes(v: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(v).decode("ascii")


def _list(v: list[Any] | tuple[Any, ...]) -> list[Any]:
    if _KEEP.issuperset(map(type, v)):  # an array of plain values: already a record value
        return v if type(v) is list else list(v)
    return [sql_value(x) for x in v]


def adapt_psycopg(conn: Any) -> None:
    """Load what the server can already write exactly as text: UUIDs as strings, intervals
    as ISO-8601 durations (``intervalstyle``: months and years kept, unlike a timedelta), and
    JSON with the exact codec (fast, and integers beyond 64 bits stay exact)."""
    from psycopg.types.json import set_json_loads
    from psycopg.types.string import TextLoader

    set_json_loads(codec.loads, conn)
    conn.adapters.register_loader("uuid", TextLoader)
    conn.adapters.register_loader("interval", TextLoader)
    conn.execute("SET intervalstyle = 'iso_8601'")


_CONVERT: dict[type, Callable[[Any], Any]] = {
    decimal.Decimal: _decimal,
    float: _float,
    _dt.time: _time,
    _dt.timedelta: _interval,
    uuid.UUID: str,
    bytes: _bytes,
    bytearray: _bytes,
    memoryview: _bytes,
    list: _list,
    tuple: _list,
    ipaddress.IPv4Address: str,
    ipaddress.IPv6Address: str,
    ipaddress.IPv4Interface: str,
    ipaddress.IPv6Interface: str,
    ipaddress.IPv4Network: str,
    ipaddress.IPv6Network: str,
}


def sql_value(value: Any) -> Any:
    """A database value as a record value (the module's table); ``TypeError`` if unmapped.

    >>> import datetime as dt, decimal, uuid
    >>> sql_value(decimal.Decimal("12345678901234567890.10")), sql_value(float("nan"))
    (Decimal('12345678901234567890.10'), 'NaN')
    >>> sql_value(b"\\x00\\xff"), sql_value(uuid.UUID(int=1))
    ('AP8=', '00000000-0000-0000-0000-000000000001')
    >>> sql_value(dt.timedelta(days=1, hours=2, seconds=4.5)), sql_value(-dt.timedelta(hours=1))
    ('P1DT2H4.5S', 'PT-1H')
    >>> sql_value([[1, None], [decimal.Decimal("-Infinity"), 2]])
    [[1, None], ['-Infinity', 2]]
    """
    t = type(value)
    if t in _KEEP:
        return value
    conv = _CONVERT.get(t)
    if conv is None:
        for base, fn in _CONVERT.items():  # subclasses (rare): the first mapped base
            if isinstance(value, base):
                return fn(value)
        raise TypeError(f"no record mapping for a value of type {t.__module__}.{t.__qualname__}")
    return conv(value)


def _column(values: tuple[Any, ...], name: str) -> tuple[Any, ...] | list[Any] | None:
    """One column of a chunk, mapped; ``None`` when every value is kept as it is (the usual
    case, checked without a Python call per value: NaN and infinities are truthy)."""
    types = set(map(type, values))
    if types <= _KEEP:
        return None
    types.discard(type(None))
    if types == {decimal.Decimal}:
        if all(map(decimal.Decimal.is_finite, filter(None, values))):
            return None
    elif types == {float} and all(map(math.isfinite, filter(None, values))):
        return None
    try:
        return [sql_value(v) for v in values]
    except TypeError as exc:
        raise TypeError(f"column {name!r}: {exc}; cast it in the query "
                        f"(e.g. {name}::text)") from exc


class RowMapper:
    """Turns chunks of rows into records. With ``static`` column types (a server database),
    a column whose values are plain (int, str, bool, datetime, date, JSON) is not checked
    again; numbers are checked in every chunk (a NaN can come at any row)."""

    _STABLE = frozenset({bool, int, str, dict, _dt.datetime, _dt.date})

    def __init__(self, names: list[str], static: bool) -> None:
        self.names = names
        self.static = static
        self.check = list(range(len(names)))  # the columns still checked

    def records(self, rows: list[Any]) -> list[dict[str, Any]]:
        names = self.names
        records = [dict(zip(names, r, strict=False)) for r in rows]  # equal lengths
        stable = []
        for j in self.check:
            values = tuple(map(itemgetter(j), rows))
            name = names[j]
            mapped = _column(values, name)
            if mapped is not None:
                for rec, v in zip(records, mapped, strict=True):
                    rec[name] = v
            elif self.static:
                kinds = set(map(type, values)) - {type(None)}
                if kinds and kinds <= self._STABLE:
                    stable.append(j)
        if stable:
            self.check = [j for j in self.check if j not in stable]
        return records
