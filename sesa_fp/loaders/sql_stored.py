"""`load_sql` in a resumed run: is a record that met a duplicate key already stored as it is?

A run that stopped while a part was in flight may have committed some of that part's
batches; the resumed run reads the part again. In ``mode="insert"`` those records meet their
own rows. A record whose row the table holds with the same value in every column the loader
writes was loaded by the earlier attempt: it counts as loaded, read back from the table to
say so. Any other duplicate stays a dead letter, with the database's error.

PostgreSQL compares the two rows as ``jsonb`` (``to_jsonb(ROW(...))``), the record's values
cast to each column's exact type, so every type compares, ``json`` included; other
databases compare column by column (NULL matching NULL).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sesa_fp.loaders.sql_table import _Table

if TYPE_CHECKING:
    from sesa_fp.loaders.sql import SqlLoader, _RowsFailed


def is_duplicate(err: _RowsFailed, postgres: bool) -> bool:
    """Whether a refused record's error is a unique violation: SQLSTATE 23505 on
    PostgreSQL; elsewhere the driver's words for it (SQLite's "UNIQUE constraint failed",
    "Duplicate entry").

    >>> from sesa_fp.loaders.sql_errors import _RowsFailed
    >>> is_duplicate(_RowsFailed("IntegrityError", "UNIQUE constraint failed: t.id"), False)
    True
    >>> is_duplicate(_RowsFailed("CheckViolation", 'SQLSTATE 23514: new row violates check '
    ...                          'constraint "unique_qty"'), True)
    False
    """
    if postgres:
        return err.error_type == "UniqueViolation" or "SQLSTATE 23505" in err.message
    text = err.message.upper()
    return "UNIQUE CONSTRAINT" in text or "DUPLICATE" in text


def loaded_before(loader: SqlLoader, info: _Table, row: Sequence[Any],
                  err: _RowsFailed) -> bool:
    """True when ``row`` was refused as a duplicate in a resumed insert and the table holds
    it as it is (the earlier attempt committed it). A failure to look is a lost connection
    (raised, retried by the loader) or a no (the record stays a dead letter)."""
    if not (loader.resumed and loader.mode == "insert" and loader.key
            and is_duplicate(err, loader.fast)):
        return False
    conn = loader._conn
    try:
        if loader.fast:
            statement = _pg_statement(loader, info)
            keys = [row[info.columns.index(k)] for k in loader.key]
            found = conn.execute(statement, [*keys, *row]).fetchone()[0]
        else:
            import sqlalchemy

            cond = " AND ".join(
                f"{loader._q(c)} = :p{i}" if c in loader.key else
                f"({loader._q(c)} = :p{i} OR ({loader._q(c)} IS NULL AND :p{i} IS NULL))"
                for i, c in enumerate(info.columns))
            found = conn.execute(
                sqlalchemy.text(f"SELECT 1 FROM {loader._qt(info.name)} WHERE {cond}"),
                {f"p{i}": v for i, v in enumerate(row)}).first() is not None
    except Exception as exc:
        if loader._is_disconnect(exc):
            raise
        found = False
    with contextlib.suppress(Exception):  # ends the read; a lost connection shows next
        conn.rollback()
    return bool(found)


def _pg_statement(loader: SqlLoader, info: _Table) -> str:
    """``SELECT EXISTS (...)``: the row with the record's key and the record's values, each
    cast to its column's declared type (with its modifier: ``varchar(16)``,
    ``numeric(10,2)``), compared as one ``jsonb``. Made once per table."""
    statement = loader._stored.get(info.name)
    if statement is None:
        types = dict(loader._conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (loader._qt(info.name),)).fetchall())
        keys = " AND ".join(f"{loader._q(k)} = %s::{types[k]}" for k in loader.key)
        stored = ", ".join(loader._q(c) for c in info.columns)
        given = ", ".join(f"%s::{types[c]}" for c in info.columns)
        statement = (f"SELECT EXISTS (SELECT 1 FROM {loader._qt(info.name)} WHERE {keys} "
                     f"AND to_jsonb(ROW({stored})) = to_jsonb(ROW({given})))")
        loader._stored[info.name] = statement
    return statement
