"""`derive` and `validate`: add a computed field; reject records missing fields or types."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sesa_fp.errors import ConfigError, RecordError

__all__ = ["ValidationError", "derive", "validate"]


class ValidationError(RecordError):
    """A record breaks a `validate` rule."""


def derive(field: str, fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """A pure record function setting ``field`` to ``fn(record)``.

    >>> derive("key", lambda r: f"{r['p']}-{r['n']}")({"p": "P1", "n": 7})
    {'p': 'P1', 'n': 7, 'key': 'P1-7'}
    """
    if not isinstance(field, str) or not field:
        raise ConfigError(f"derive: field must be a name, got {field!r}")
    if not callable(fn):
        raise ConfigError(f"derive: fn must be callable, got {fn!r}")

    def derive_record(record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        out[field] = fn(record)
        return out

    label = getattr(fn, "__stage_name__", None) or getattr(fn, "__qualname__", repr(fn))
    derive_record.__stage_name__ = f"derive({field!r}, {label})"  # type: ignore[attr-defined]
    return derive_record


_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "number": (float, int),
    "bool": (bool,),
    "datetime": (_dt.datetime,),
    "date": (_dt.date,),
    "dict": (dict,),
    "list": (list,),
}


def validate(
    required: Iterable[str] = (), types: Mapping[str, str] | None = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A pure record check: ``required`` fields present and not None, ``types`` respected.

    >>> check = validate(required=["id"], types={"n": "int"})
    >>> check({"id": 1, "n": 2})
    {'id': 1, 'n': 2}
    >>> try:
    ...     check({"id": 1, "n": "2"})
    ... except ValidationError as exc:
    ...     print(exc)
    validate: field 'n' must be int, got str '2'
    """
    req = (required,) if isinstance(required, str) else tuple(required)
    checks = dict(types or {})
    for f, t in checks.items():
        if t not in _TYPES:
            raise ConfigError(f"validate: field {f!r} has unknown type {t!r}; "
                              f"known: {', '.join(_TYPES)}")

    def validate_record(record: dict[str, Any]) -> dict[str, Any]:
        for f in req:
            if record.get(f) is None:
                raise ValidationError(f"validate: required field {f!r} is missing")
        for f, t in checks.items():
            value = record.get(f)
            if value is None:
                continue
            ok = isinstance(value, _TYPES[t]) and not (t in ("int", "float", "number")
                                                       and isinstance(value, bool))
            if not ok:
                raise ValidationError(
                    f"validate: field {f!r} must be {t}, got {type(value).__name__} {value!r:.60}"
                )
        return record

    validate_record.__stage_name__ = (  # type: ignore[attr-defined]
        f"validate(required={list(req)!r}, types={checks!r})"
    )
    return validate_record
