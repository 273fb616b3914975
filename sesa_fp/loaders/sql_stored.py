"""`load_sql` in a resumed run: is a record that met a duplicate key already stored as it is?

A run that stopped while a part was in flight may have committed some of that part's
batches; the resumed run reads the part again. In ``mode="insert"`` those records meet their
own rows. A record whose row the table holds with the same value in every column the loader
writes was loaded by the earlier attempt: it counts as loaded, read back from the table to
say so. Any other duplicate stays a dead letter, with the database's error.

On PostgreSQL the record is written the way a batch is (``COPY``) into a temporary table
shaped like the target, so each value is parsed exactly as it was then, and the two rows
are compared as ``jsonb`` (every type compares, ``json`` included). Only a row an earlier
transaction wrote counts: one this run wrote (the same record twice in the input) does not.
Other databases compare column by column (NULL matching NULL) and cannot tell who wrote
the row.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sesa_fp.loaders.sql_table import _Table
from sesa_fp.logs import log_event

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


def loaded_before(loader: SqlLoader, info: _Table, rows: Sequence[Sequence[Any]],
                  err: _RowsFailed) -> list[int] | None:
    """The places in ``rows`` (refused with ``err``) of the records a resumed insert finds
    stored as they are (the earlier attempt committed them): looked up all at once, so a
    part mostly loaded before is not bisected record by record. Of records sharing a key
    only the first can be one. None when there is nothing to look up (not a resumed
    insert, or not a duplicate). A failure to look is a lost connection (raised, retried
    by the loader) or none found (they are bisected into dead letters as usual)."""
    if not (loader.resumed and loader.mode == "insert" and loader.key
            and is_duplicate(err, loader.fast)):
        return None
    conn = loader._conn
    try:
        found = _pg_found(loader, info, rows) if loader.fast \
            else _generic_found(loader, info, rows)
    except Exception as exc:
        if loader._is_disconnect(exc):
            raise
        log_event("sql_load_lookup_failed", logging.WARNING, host=loader.host,
                  table=info.name, error=loader._mask(f"{type(exc).__name__}: {exc}"))
        found = []
    with contextlib.suppress(Exception):  # ends the look-up; a lost connection shows next
        conn.rollback()
    return found


#: a row is from before the run when its inserting transaction id (32 bits, wrapping) comes
#: before the run's first one: 0 < (first - xmin) mod 2^32 < 2^31
_BEFORE = "((%s - t.xmin::text::bigint) %% 4294967296 + 4294967296) %% 4294967296 " \
          "BETWEEN 1 AND 2147483647"


def _pg_found(loader: SqlLoader, info: _Table, rows: Sequence[Sequence[Any]]) -> list[int]:
    since = loader._since
    if since is None:  # the run took no transaction id yet: nothing to compare with
        return []
    conn = loader._conn
    q = loader._q
    seen = loader._stored.get(info.name)
    if seen is None:  # once per connection: temporary tables live as long as it does
        seen = f"sesa_seen_{len(loader._stored)}"
        conn.execute(f"CREATE TEMP TABLE {seen} (LIKE {loader._qt(info.name)})")
        conn.execute(f"ALTER TABLE {seen} ADD COLUMN sesa_i integer")
        conn.commit()
        loader._stored[info.name] = seen
    cols = [q(c) for c in info.columns]
    keys = ", ".join(f"s.{q(k)}" for k in loader.key)
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in loader.key)
    stored = ", ".join(f"t.{c}" for c in cols)
    given = ", ".join(f"s.{c}" for c in cols)
    with conn.cursor() as cur:
        with cur.copy(f"COPY {seen} ({', '.join(cols)}, sesa_i) FROM STDIN") as copy:
            for i, row in enumerate(rows):
                copy.write_row([*row, i])
        # the first record of each key only: a later one met the row this batch holds
        cur.execute(f"SELECT s.sesa_i FROM (SELECT DISTINCT ON ({keys}) * FROM {seen} s "
                    f"ORDER BY {keys}, s.sesa_i) s JOIN {loader._qt(info.name)} t ON {on} "
                    f"WHERE to_jsonb(ROW({stored})) = to_jsonb(ROW({given})) AND {_BEFORE}",
                    (since % 4294967296,))
        return sorted(i for (i,) in cur.fetchall())  # rolled back by the caller


def _generic_found(loader: SqlLoader, info: _Table,
                   rows: Sequence[Sequence[Any]]) -> list[int]:
    import sqlalchemy

    cond = " AND ".join(
        f"{loader._q(c)} = :p{i}" if c in loader.key else
        f"({loader._q(c)} = :p{i} OR ({loader._q(c)} IS NULL AND :p{i} IS NULL))"
        for i, c in enumerate(info.columns))
    query = sqlalchemy.text(f"SELECT 1 FROM {loader._qt(info.name)} WHERE {cond}")
    at = [info.columns.index(k) for k in loader.key]
    found, keys = [], set()
    for n, row in enumerate(rows):
        key = tuple(row[i] for i in at)
        try:
            first = key not in keys
            keys.add(key)
        except TypeError:  # an unhashable key value: looked up as it is
            first = True
        if first and loader._conn.execute(query, {f"p{i}": v for i, v in enumerate(row)}
                                          ).first() is not None:
            found.append(n)
    return found
