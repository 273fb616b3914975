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
    part mostly loaded before is not bisected record by record. A key is found once per
    run (a record given again is a dead letter). None when nothing was looked up: not a
    resumed insert, not a duplicate, or the look-up failed (a record that cannot be
    parsed is among them: each half is looked up again as it is bisected). A lost
    connection is raised (and retried by the loader)."""
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
        if not loader._lookup_failed:  # once per run: halves fail the same way
            loader._lookup_failed = True
            log_event("sql_load_lookup_failed", logging.WARNING, host=loader.host,
                      table=info.name, error=loader._mask(f"{type(exc).__name__}: {exc}"))
        found = None
    with contextlib.suppress(Exception):  # ends the look-up; a lost connection shows next
        conn.rollback()
    if not found:
        return found
    # a key found earlier in the run (another batch, or before a lost connection) was the
    # first copy's: a later one is a dead letter
    seen = loader._found_keys.setdefault(info.name, set())
    at = [info.columns.index(k) for k in loader.key]
    first = []
    for i in found:
        try:
            key = tuple(_hashable(rows[i][j]) for j in at)
        except TypeError:
            continue
        if key not in seen:
            seen.add(key)
            first.append(i)
    return first


def _hashable(value: Any) -> Any:
    return tuple(map(_hashable, value)) if isinstance(value, list) else value


#: a row is from before the run when its inserting transaction id (32 bits, wrapping) comes
#: before the run's first one: 0 < (first - xmin) mod 2^32 < 2^31 (a row frozen over 2^31
#: transactions ago may not, and stays a dead letter)
_BEFORE = ("((({since}) - t.xmin::text::bigint) % 4294967296 + 4294967296) % 4294967296 "
           "BETWEEN 1 AND 2147483647")
#: the column of the look-up table holding each record's place in the batch
_PLACE = '"sesa_fp:place"'


def _pg_found(loader: SqlLoader, info: _Table, rows: Sequence[Sequence[Any]]) -> list[int]:
    since = loader._since
    if since is None:  # pragma: no cover - taken when a resumed run connects
        raise RuntimeError("the run's first transaction id is unknown")
    conn = loader._conn
    q = loader._q
    cols = [q(c) for c in info.columns]
    seen = loader._stored.get(info.name)
    if seen is None:  # once per connection: temporary tables live as long as it does
        # the written columns with their exact types, no NOT NULL, default or identity
        seen = f"sesa_seen_{len(loader._stored)}"
        conn.execute(f"CREATE TEMP TABLE {seen} AS SELECT {', '.join(cols)}, "
                     f"NULL::integer AS {_PLACE} FROM {loader._qt(info.name)} WITH NO DATA")
        conn.commit()
        loader._stored[info.name] = seen
    keys = ", ".join(f"s.{q(k)}" for k in loader.key)
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in loader.key)
    stored = ", ".join(f"t.{c}" for c in cols)
    given = ", ".join(f"s.{c}" for c in cols)
    before = _BEFORE.format(since=int(since) % 4294967296)
    with conn.cursor() as cur:
        with cur.copy(f"COPY {seen} ({', '.join(cols)}, {_PLACE}) FROM STDIN") as copy:
            for i, row in enumerate(rows):
                copy.write_row([*row, i])
        # the first record of each key only: a later one met the row this batch holds
        cur.execute(f"SELECT s.{_PLACE} FROM (SELECT DISTINCT ON ({keys}) * FROM {seen} s "
                    f"ORDER BY {keys}, s.{_PLACE}) s JOIN {loader._qt(info.name)} t ON {on} "
                    f"WHERE to_jsonb(ROW({stored})) = to_jsonb(ROW({given})) AND {before}")
        return sorted(i for (i,) in cur.fetchall())  # rolled back by the caller


def _generic_found(loader: SqlLoader, info: _Table,
                   rows: Sequence[Sequence[Any]]) -> list[int]:
    import sqlalchemy

    cond = " AND ".join(
        f"{loader._q(c)} = :p{i}" if c in loader.key else
        f"({loader._q(c)} = :p{i} OR ({loader._q(c)} IS NULL AND :p{i} IS NULL))"
        for i, c in enumerate(info.columns))
    query = sqlalchemy.text(f"SELECT 1 FROM {loader._qt(info.name)} WHERE {cond}")
    return [n for n, row in enumerate(rows)
            if loader._conn.execute(query, {f"p{i}": v for i, v in enumerate(row)}
                                    ).first() is not None]
