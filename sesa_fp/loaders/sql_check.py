"""`load_sql`'s pre-flight value check: which sample records a PostgreSQL table would refuse.

The sample is written, the way a run writes it (the same conversions, ``COPY``, bisection),
into a temporary table of the target's shape on a connection of its own: its columns and
types, ``NOT NULL`` and ``CHECK`` constraints, generated and identity columns (with a
sequence of its own), no defaults, no indexes, no triggers. The session drops it, so the
target, its sequences and its triggers are never touched. What it finds: a value of the
wrong type, a ``NULL`` where the table forbids it, a ``CHECK`` violation, a value too long;
not a duplicate key (that depends on the rows already there).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from sesa_fp.result import DeadLetter

if TYPE_CHECKING:
    from sesa_fp.loaders.sql import SqlLoader

#: the temporary table the sample is written to (in the session's own ``pg_temp`` schema)
PROBE = "pg_temp.sesa_check_values"


def check_values(loader: SqlLoader, table: str,
                 records: Sequence[Any]) -> list[DeadLetter | None] | None:
    """Per record of ``records`` (bound for ``table``), None or the dead letter a run would
    give it; None for the whole sample when the check cannot be made here (not PostgreSQL,
    or the table does not exist). Nothing is written to ``table``.

    >>> from sesa_fp.loaders.sql import load_sql
    >>> check_values(load_sql("sqlite://", "t", key=["a"]), "t", [{"a": 1}]) is None
    True
    """
    if not loader.fast or not records:
        return None
    from sesa_fp.loaders.sql import SqlLoader

    probe = SqlLoader(loader.url, PROBE, key=[], mode="insert", create=False,
                      columns=loader.columns, infer_columns=False,
                      batch_size=loader.batch_size, max_retries=loader.max_retries,
                      retry_backoff=loader.retry_backoff,
                      connect_timeout=loader.connect_timeout, password=loader._password)
    written = set(loader.columns) if loader.columns is not None else None

    def prepare() -> bool:
        conn = probe._connect()
        if conn.execute("SELECT to_regclass(%s)", (loader._qt(table),)).fetchone()[0] is None:
            conn.rollback()
            return False
        conn.execute(f"DROP TABLE IF EXISTS {PROBE}")
        conn.execute(f"CREATE TEMPORARY TABLE sesa_check_values (LIKE {loader._qt(table)} "
                     "INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY)")
        if written is not None:
            # columns the run does not write take their defaults there, which the
            # probe does not have: they may be NULL here
            for (name,) in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped AND attnotnull "
                    "AND attidentity = '' AND attgenerated = ''", (PROBE,)).fetchall():
                if name not in written:
                    conn.execute(f"ALTER TABLE {PROBE} ALTER COLUMN {probe._q(name)} "
                                 "DROP NOT NULL")
        conn.commit()
        return True

    try:
        if not probe._with_retries(prepare, f"check values for {table!r}"):
            return None
        results = probe._load_group(PROBE, list(records))
    finally:
        with contextlib.suppress(Exception):
            probe._drop_connection()  # the session ends: its temporary table goes with it
    return [None if dl is None else attrs.evolve(dl, stage=loader.name, target=table)
            for dl in results]
