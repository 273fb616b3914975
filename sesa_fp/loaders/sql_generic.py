"""`load_sql` through SQLAlchemy (SQLite, any dialect): ``executemany`` of one INSERT (with
``ON CONFLICT`` for an upsert), values made plain for every DB-API driver."""

from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from sesa_fp.errors import RecordError
from sesa_fp.loaders.sql_errors import _Disconnected
from sesa_fp.loaders.sql_table import _Table

if TYPE_CHECKING:
    from sesa_fp.loaders.sql import SqlLoader

def _generic_value(value: Any) -> Any:
    """A value the DB-API drivers bind everywhere (str, int, float, bytes, None)."""
    t = type(value)
    if value is None or t is str or t is int or t is float or t is bytes:
        return value
    if t is bool:
        return int(value)
    if t is dict or t is list or t is tuple:
        return orjson.dumps(value, default=str).decode()
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, int):
        return int(value)
    raise RecordError(f"no SQL value for a {t.__name__}")


def prepare_generic(loader: SqlLoader, info: _Table) -> None:
    """The one INSERT (``ON CONFLICT`` for an upsert) a batch into ``info`` runs."""
    import sqlalchemy

    target = ", ".join(loader._q(c) for c in info.columns)
    values = ", ".join(f":p{i}" for i in range(len(info.columns)))
    info.insert = sqlalchemy.text(f"INSERT INTO {loader._qt(info.name)} ({target}) "
                                  f"VALUES ({values}){loader._conflict(info)}")


def write_generic(loader: SqlLoader, info: _Table,
                  rows: Sequence[Sequence[Any]]) -> None:
    conn = loader._conn
    try:
        conn.execute(info.insert, [{f"p{i}": v for i, v in enumerate(r)} for r in rows])
        conn.commit()
    except Exception as exc:
        if loader._is_disconnect(exc) and loader._row_error(exc) is None:
            loader._drop_connection()
            raise _Disconnected(exc) from exc
        with contextlib.suppress(Exception):  # the error that matters is reported below
            conn.rollback()
        raise loader._refused(info, exc) from exc
