"""`load_sql` on PostgreSQL (psycopg 3), a collected batch: COPY straight into the table, or
COPY into a temporary table then MERGE / INSERT ... ON CONFLICT; a COMMIT in doubt resolved
with ``txid_status``. Streaming records into an open COPY is `sql_stream`."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from sesa_fp.errors import RecordError
from sesa_fp.loaders.sql_errors import _Disconnected, _first_line, _RowsFailed
from sesa_fp.loaders.sql_table import _Table
from sesa_fp.logs import log_event

if TYPE_CHECKING:
    from sesa_fp.loaders.sql import SqlLoader

# -- value conversion ------------------------------------------------------------------------
def _json_text(value: Any) -> Any:
    if value is None:
        return None
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError as exc:
        raise RecordError(f"value is not JSON: {exc}") from exc


def _bytea(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RecordError(f"a bytea value given as text must be base64: {exc}") from exc
    return value


def prepare_pg(loader: SqlLoader, info: _Table) -> None:
    """The statements a batch into ``info`` runs (COPY targets, probe, MERGE, ON CONFLICT)."""
    target = ", ".join(loader._q(c) for c in info.columns)
    if loader.mode != "upsert":
        # nothing to reconcile: COPY straight into the table (the server parses each
        # value with its column's input function, as the casts below do)
        info.copy = f"COPY {loader._qt(info.name)} ({target}) FROM STDIN"
        return
    info.stage = f"sesa_stage_{len(loader._tables)}"
    cols = ", ".join(f"c{i} text" for i in range(len(info.columns)))
    loader._conn.execute(f"CREATE TEMPORARY TABLE {info.stage} ({cols}) ON COMMIT DELETE ROWS")
    loader._conn.commit()
    info.copy = f"COPY {info.stage} FROM STDIN"
    select = ", ".join(f"c{i}" if t == "text" else f"c{i}::{t}"
                       for i, t in enumerate(info.types))
    info.insert = (f"INSERT INTO {loader._qt(info.name)} ({target}) SELECT {select} "
                   f"FROM {info.stage}{loader._conflict(info)}")
    key_types = [info.types[info.columns.index(k)] for k in loader.key]
    if not any(t.endswith("]") for t in key_types):
        # before a batch: does any of its keys exist? If none does, an upsert is an
        # insert, and the batch is COPYed straight into the table
        info.direct = f"COPY {loader._qt(info.name)} ({target}) FROM STDIN"
        arrays = ", ".join(f"%s::{t}[]" for t in key_types)
        names = ", ".join(f"a{i}" for i in range(len(loader.key)))
        on = " AND ".join(f"t.{loader._q(k)} = u.a{i}" for i, k in enumerate(loader.key))
        info.probe = (f"SELECT EXISTS (SELECT 1 FROM {loader._qt(info.name)} AS t "
                      f"JOIN unnest({arrays}) AS u({names}) ON {on})")
        if len(loader.key) == 1:
            # one index range probe first: no row between the batch's smallest and
            # largest key (appending, a first load) answers without a probe per key
            k, t = loader._q(loader.key[0]), key_types[0]
            info.probe = (
                f"WITH b AS (SELECT %s::{t}[] AS a), "
                f"r AS (SELECT min(x) AS lo, max(x) AS hi FROM b, unnest(b.a) AS x) "
                f"SELECT CASE WHEN EXISTS (SELECT 1 FROM {loader._qt(info.name)} AS t, r "
                f"WHERE t.{k} BETWEEN r.lo AND r.hi) THEN EXISTS (SELECT 1 FROM "
                f"{loader._qt(info.name)} AS t JOIN (SELECT unnest(a) FROM b) AS u(x) "
                f"ON t.{k} = u.x) ELSE false END")
    if loader._conn.info.server_version >= 150000:
        # MERGE probes the key's index for each row of the batch and inserts the new
        # rows plainly: about twice as fast as ON CONFLICT's speculative insertion. A batch that
        # meets a concurrent writer of the same key (a unique violation) is written again
        # with ON CONFLICT, so the result is the same.
        on = " AND ".join(f"t.{loader._q(k)} = s.c{info.columns.index(k)}" for k in loader.key)
        rest = [(i, c) for i, c in enumerate(info.columns) if c not in loader.key]
        matched = ("UPDATE SET " + ", ".join(f"{loader._q(c)} = s.c{i}" for i, c in rest)
                   if rest else "DO NOTHING")
        values = ", ".join(f"s.c{i}" for i in range(len(info.columns)))
        info.merge = (f"MERGE INTO {loader._qt(info.name)} AS t USING (SELECT "
                      + ", ".join(f"{e} AS c{i}" for i, e in enumerate(select.split(", ")))
                      + f" FROM {info.stage}) AS s ON {on} WHEN MATCHED THEN {matched} "
                      f"WHEN NOT MATCHED THEN INSERT ({target}) VALUES ({values})")


def key_arrays(loader: SqlLoader, info: _Table,
               rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The batch's key values per key column, as text for the probe's casts."""
    out = []
    for k in loader.key:
        i = info.columns.index(k)
        out.append([v if v is None or type(v) is str else str(v)
                    for v in (row[i] for row in rows)])
    return out


def write_pg(loader: SqlLoader, info: _Table, rows: Sequence[Sequence[Any]],
             careful: bool = False) -> None:
    """One transaction for ``rows``. An upsert whose keys are all new is a COPY into the
    table; else COPY into the stage and MERGE (or ON CONFLICT). ``careful``: a unique
    violation met on the fast ways (a concurrent writer of the same key) made it come
    back, and it goes through ``INSERT ... ON CONFLICT``."""
    import psycopg

    conn = loader._conn
    xid = None
    committing = False
    fast = direct = guessed = False
    try:
        cur = conn.cursor()
        # MERGE of a batch (thousands of rows) into a big table must probe the key's index
        # row by row, not hash the whole table each time (the temporary table has no
        # statistics): no hash or merge joins, for this transaction only (set_config(...,
        # true) is SET LOCAL, so nothing leaks to the session, e.g. behind a pooler), asked
        # in the round trip that takes the transaction id
        xid = cur.execute("SELECT txid_current(), set_config('enable_hashjoin', 'off', true), "
                          "set_config('enable_mergejoin', 'off', true)").fetchone()[0]
        target = info.copy
        if info.direct is not None and info.probe is not None and not careful:
            # optimistic while batches keep being new keys (a first load, appending):
            # no probe at all; after a conflict, probe until a batch is all new again
            guessed = info.optimistic
            direct = guessed or not cur.execute(
                info.probe, loader._key_arrays(info, rows)).fetchone()[0]
            if direct:
                target, fast, info.optimistic = info.direct, True, True
        try:
            with cur.copy(target) as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
        except (psycopg.ProgrammingError, TypeError, ValueError) as exc:
            if isinstance(exc, psycopg.DatabaseError) and exc.sqlstate:
                raise
            # a value psycopg cannot write: this batch's data, not the connection
            conn.rollback()
            raise _RowsFailed(type(exc).__name__, loader._mask(_first_line(exc))) from exc
        if fast:
            pass
        elif info.merge is not None and not careful:
            fast = True
            cur.execute(info.merge)
        elif info.insert is not None:
            cur.execute(info.insert)
        committing = True
        conn.commit()
    except _RowsFailed:
        raise
    except Exception as exc:
        if loader._is_disconnect(exc):
            loader._drop_connection()
            if committing and xid is not None and loader._committed_after_all(xid):
                return
            raise _Disconnected(exc) from exc
        if not conn.closed:
            conn.rollback()
        if fast and loader.mode == "upsert" and \
                isinstance(exc, psycopg.errors.UniqueViolation):
            if direct and guessed:  # some keys exist after all: probe, then MERGE
                info.optimistic = False
                return loader._write_pg(info, rows)
            return loader._write_pg(info, rows, careful=True)
        raise loader._refused(info, exc) from exc


def committed_after_all(loader: SqlLoader, xid: int) -> bool:
    """Whether transaction ``xid``, whose COMMIT lost its answer, committed: asked once
    the server answers again (waiting with the same retries), so a batch is never sent
    twice. An outage that outlasts them is `SqlUnavailableError`."""

    def status() -> Any:
        try:
            conn = loader._connect()
            value = conn.execute("SELECT txid_status(%s)", (xid,)).fetchone()[0]
            conn.commit()
            return value
        except _Disconnected:
            raise
        except Exception as exc:
            if loader._is_disconnect(exc):
                loader._drop_connection()
                raise _Disconnected(exc) from exc
            raise

    value = loader._with_retries(status, "check a commit in doubt")
    log_event("sql_commit_in_doubt", logging.WARNING, host=loader.host, xid=xid,
              status=value)
    return bool(value == "committed")
