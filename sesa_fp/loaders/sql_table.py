"""What `load_sql` knows of a target table: its name, its columns and their types (declared,
reflected or inferred), and a batch's outcome."""

from __future__ import annotations

import datetime as _dt
import decimal
from collections.abc import Mapping
from typing import Any

from sesa_fp.errors import ConfigError, RecordError
from sesa_fp.result import DeadLetter


def _ident_parts(table: str) -> tuple[str, ...]:
    parts = tuple(table.split("."))
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise RecordError(f"table name {table!r}: expected 'name' or 'schema.name'")
    return parts


def _ident_parts_config(table: str) -> None:
    try:
        _ident_parts(table)
    except RecordError as exc:
        raise ConfigError(f"load_sql: {exc}") from exc


def _check_columns(columns: Mapping[str, str] | None) -> dict[str, str] | None:
    if columns is None:
        return None
    if not isinstance(columns, Mapping) or not columns or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in columns.items()):
        raise ConfigError(f"load_sql: columns must map column names to SQL types, "
                          f"got {columns!r}")
    return dict(columns)


def _infer_type(value: Any) -> str:
    """A SQL type for a JSON-friendly value (``infer_columns=True`` only)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, (float, decimal.Decimal)):
        return "double precision" if isinstance(value, float) else "numeric"
    if isinstance(value, _dt.datetime):
        return "timestamptz" if value.tzinfo else "timestamp"
    if isinstance(value, _dt.date):
        return "date"
    if isinstance(value, (dict, list)):
        return "jsonb"
    if isinstance(value, (bytes, bytearray)):
        return "bytea"
    return "text"


class _Done:
    """What one try at a batch made final: positions committed (lists, one per committed
    statement) and dead letters."""

    __slots__ = ("dead", "ok")

    def __init__(self) -> None:
        self.ok: list[list[int]] = []
        self.dead: list[tuple[int, DeadLetter]] = []


class _Table:
    """What a batch needs to know about one target table on one connection."""

    __slots__ = ("colset", "columns", "convert", "copy", "direct", "insert", "merge", "name",
                 "optimistic", "probe", "stage", "types")

    def __init__(self, name: str, columns: list[str], types: list[str]) -> None:
        self.name = name
        self.columns = columns
        self.colset = frozenset(columns)
        self.types = types
        self.convert: list[tuple[int, Any]] = []
        self.stage = ""
        self.copy = ""
        self.insert: Any = None
        self.merge: str | None = None
        self.direct: str | None = None
        self.probe: str | None = None
        self.optimistic = True
