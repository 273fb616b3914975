"""JSON in and out, exactly: orjson on the fast path, exact fallbacks where it would change a value.

orjson holds integers only within 64 bits: it decodes a wider one as a float (silently) and
refuses to encode one. `loads` re-reads such a line with the standard library's parser, which
keeps arbitrary-precision integers; `dumps_line` writes such an integer verbatim. A value JSON
cannot hold (NaN, infinities, lone surrogates, an unknown type) is a ``TypeError`` naming the
field, never a silent change. Datetimes become ISO-8601, Decimals JSON numbers with every
digit they have.

Known limits: an integer ``-0`` reads as ``0`` (Python ints have no sign of zero; ``-0.0``
keeps its sign); integers of more than 4,300 digits (Python's conversion limit), floats beyond
the double range and nesting deeper than orjson's limits are refused.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

import orjson

__all__ = ["JSONDecodeError", "dumps", "dumps_line", "dumps_line_lenient", "loads"]

JSONDecodeError = orjson.JSONDecodeError
_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
_orjson_loads = orjson.loads
_orjson_dumps = orjson.dumps
_I64_MIN, _U64_END = -(2**63), 2**64

# orjson widens an integer beyond 64 bits to a float of magnitude >= 2**63: only a result with
# such a float is read again (a real float that large is a harmless false positive). Walking
# the decoded values costs less than scanning the bytes for long digit runs.
_WIDE = 2.0**63
#: value types that cannot hold a float, as decoded (and as encoded, with what orjson writes
#: natively as strings)
_PLAIN = frozenset({str, int, bool, type(None)})
_PLAIN_OUT = _PLAIN | {datetime.datetime, datetime.date, datetime.time, uuid.UUID,
                       decimal.Decimal}


def _widened(value: Any) -> bool:
    t = type(value)
    if t is dict:
        items = value.values()
    elif t is list:
        items = value
    else:
        return t is float and not -_WIDE < value < _WIDE
    for v in items:
        t = type(v)
        if t is float:
            if not -_WIDE < v < _WIDE:
                return True
        elif (t is dict or t is list) and _widened(v):
            return True
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:
        raise ValueError(f"number {text[:40]} is infinity when parsed as double")
    return value


_exact_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse one JSON document; integers beyond 64 bits stay exact ints.

    Raises ``JSONDecodeError`` (a ``ValueError``) for invalid JSON, including lone surrogates
    and numbers too large for a float.

    >>> loads(b'{"n": 12345678901234567890123, "z": -0.0, "f": 5e-324}')
    {'n': 12345678901234567890123, 'z': -0.0, 'f': 5e-324}
    >>> len(str(loads("1" + "0" * 400)))
    401
    >>> loads('"\\\\ud800"')
    Traceback (most recent call last):
    orjson.JSONDecodeError: no low surrogate in string: line 1 column 2 (char 1)
    """
    try:
        value = _orjson_loads(data)  # validates: what it refuses is refused here too...
    except JSONDecodeError as exc:
        if not str(exc).startswith("number is infinity"):
            raise
        return _loads_exact(data, exc)  # ...but an integer beyond 1e308 is valid JSON
    if type(value) is dict and _PLAIN.issuperset(map(type, value.values())):
        return value  # a flat object without floats: one pass in C
    return _loads_exact(data) if _widened(value) else value


def _loads_exact(data: bytes | bytearray | memoryview | str,
                 refused: JSONDecodeError | None = None) -> Any:
    text = ""
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        value = _exact_decoder.decode(text)
    except ValueError as exc:  # a float beyond 1e308, an int beyond Python's digit limit
        raise JSONDecodeError(f"{exc}", text, 0) from (refused or exc)
    if refused is not None:  # orjson stopped at the number: check what it did not reach
        found = _problem(value)
        if found:
            raise JSONDecodeError(f"invalid JSON value at {found}", text, 0) from refused
    return value


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise TypeError(f"cannot encode Decimal {value} as JSON: not a JSON number")
        # written with every digit it has (a JSON number, never a string); readers that keep
        # decimals (a numeric column) get it exactly, others get the nearest float
        return orjson.Fragment(str(value).encode())
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON: {value!r:.80}")


def _is_wide(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and \
        not _I64_MIN <= value < _U64_END


def _exact_ints(value: Any) -> Any:
    """``value`` with every integer beyond 64 bits as an orjson ``Fragment`` (written verbatim)."""
    if isinstance(value, dict):
        return {(str(k) if _is_wide(k) else k): _exact_ints(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_exact_ints(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [_exact_ints(v) for v in sorted(value, key=repr)]
    if _is_wide(value):
        return orjson.Fragment(str(int(value)).encode())
    return value


def _problem(value: Any, path: str = "$") -> str | None:
    """Where ``value`` holds something JSON cannot (NaN/infinity, a lone surrogate), or None."""
    t = type(value)
    if t is float:
        return None if value - value == 0.0 else f"{path}: {value!r} is not a JSON number"
    if t is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path}: string with a lone surrogate {value!r:.80}"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            key = str(k) if not isinstance(k, str) else k
            found = _problem(key, f"{path} key") or _problem(v, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, v in enumerate(value):
            found = _problem(v, f"{path}[{i}]")
            if found:
                return found
    elif isinstance(value, float):  # a subclass: rare, compare the plain float
        return _problem(float(value), path)
    elif isinstance(value, decimal.Decimal) and not value.is_finite():
        return f"{path}: Decimal {value} is not a JSON number"
    return None


_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})
_LEAVES = frozenset({str, int, bool, type(None)})


def _nonfinite(value: Any) -> bool:
    """Whether ``value`` holds a NaN or an infinity (a fast walk; `_problem` says where)."""
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return isinstance(value, float) and value - value != 0.0
    for v in items:
        t = type(v)
        if t is float:
            if v - v:  # 0.0 when finite; inf - inf and nan - nan are nan (true)
                return True
        elif t in _CONTAINERS:
            if _nonfinite(v):
                return True
        elif t not in _LEAVES and isinstance(v, (dict, list, tuple, float)) and _nonfinite(v):
            return True  # subclasses
    return False


def _check_nulls(record: Any, out: bytes) -> bytes:
    # orjson writes NaN and infinities as null (silently): refuse them instead. Only a line
    # with a null can hide one
    if b"null" in out and _nonfinite(record):
        raise TypeError(f"cannot encode as JSON: {_problem(record)}")
    return out


def _dumps_slow(record: Any, exc: orjson.JSONEncodeError, option: int) -> bytes:
    """orjson refused ``record``: write its wide integers verbatim, or name what is wrong."""
    try:
        return _orjson_dumps(_exact_ints(record), default=_default, option=option)
    except (orjson.JSONEncodeError, ValueError) as again:
        found = _problem(record)
        raise TypeError(f"cannot encode as JSON: {found}" if found
                        else str(again.__cause__ or again)) from exc


def dumps_line(record: Any) -> bytes:
    """One JSON line; raises ``TypeError`` naming the field for a value JSON cannot hold.

    >>> import datetime as dt
    >>> dumps_line({"t": dt.datetime(2025, 9, 6, 12, 0), "s": "é"})
    b'{"t":"2025-09-06T12:00:00","s":"\\xc3\\xa9"}\\n'
    >>> dumps_line({"n": [2**70, -0.0]})
    b'{"n":[1180591620717411303424,-0.0]}\\n'
    >>> dumps_line({"a": {"b": float("nan")}})
    Traceback (most recent call last):
    TypeError: cannot encode as JSON: $.a.b: nan is not a JSON number
    """
    try:
        out = _orjson_dumps(record, default=_default, option=_OPTS)
    except orjson.JSONEncodeError as exc:
        out = _dumps_slow(record, exc, _OPTS)
    if type(record) is dict and _PLAIN_OUT.issuperset(map(type, record.values())):
        return out  # a flat record without floats: one pass in C
    return _check_nulls(record, out)


def dumps(value: Any) -> bytes:
    """`dumps_line` without the newline (request bodies).

    >>> dumps({"search_after": [2**64, "x"]})
    b'{"search_after":[18446744073709551616,"x"]}'
    """
    try:
        out = _orjson_dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        out = _dumps_slow(value, exc, orjson.OPT_NON_STR_KEYS)
    return _check_nulls(value, out)


def _lenient(value: Any) -> Any:
    try:
        return _default(value)
    except TypeError:
        return repr(value)


def _sanitize(value: Any) -> Any:
    """What orjson rejects without asking ``default``: odd keys, wide ints (kept exact), NaN
    and infinities and lone surrogates (as their ``repr``)."""
    if isinstance(value, dict):
        return {k if (isinstance(k, (int, float, bool)) or k is None or
                      (isinstance(k, str) and _problem(k) is None)) else repr(k):
                _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    if _is_wide(value):
        try:
            str(value)
        except ValueError:  # beyond Python's digit limit
            return f"<int of {value.bit_length()} bits>"
    elif _problem(value) is not None:
        return repr(value)
    return value


def dumps_line_lenient(record: Any) -> bytes:
    """Like `dumps_line`, but anything JSON cannot hold becomes its ``repr`` or string
    (for dead letters, which must never be lost to an encoding error).

    >>> dumps_line_lenient({"o": object}) == b'{"o":"<class \\'object\\'>"}\\n'
    True
    >>> dumps_line_lenient({(1, 2): 2**70, "x": float("inf")})
    b'{"(1, 2)":1180591620717411303424,"x":"inf"}\\n'
    """
    try:
        out = _orjson_dumps(record, default=_lenient, option=_OPTS)
    except orjson.JSONEncodeError:
        out = b""
    if out and (b"null" not in out or not _nonfinite(record)):
        return out
    return _orjson_dumps(_exact_ints(_sanitize(record)), default=_lenient, option=_OPTS)
