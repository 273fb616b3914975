"""`load_sql`: records into a SQL table (PostgreSQL fast path, SQLite, any SQLAlchemy 2 URL).

One result per input record, in input order; input failures pass through. Records are taken
``batch_size`` at a time and each batch (per target table, when ``table`` is a per-record
template) is one transaction; ``stats.committed`` grows by a batch's rows once its COMMIT
has returned.

PostgreSQL (``postgresql://``, ``postgresql+psycopg://``; psycopg 3; `sql_postgres`): no
row-by-row INSERT. With one target table, each record is written into an open ``COPY ...
FROM STDIN`` (text format) straight into the table as it is read, so the server parses and
inserts a batch while the rest of it is read; after its last record the batch's ``COPY`` ends
and commits in the loader's worker thread while the next batch is read (`sql_stream`). That
is how ``insert``/``replace`` batches go (the server's input functions convert the values),
and ``upsert`` batches while batches keep being new keys (a first load, appending). A batch
that fails that way (bad data, a lost connection, a unique violation: rolled back) is
written again from its records by the collected path below, with bisection and retries. In
``upsert`` mode a batch that met an existing key is probed and written as below, and so are
the next ones until a probe finds a batch all new again (for a single key, one index range
probe first). A batch with existing keys is sent with ``COPY`` into a temporary table of
``text`` columns, then written by one statement: ``MERGE`` on PostgreSQL 15+ (it probes the
key's index per row and inserts new rows plainly, about twice as fast as ON CONFLICT's
speculative insertion; hash and merge joins are turned off for that transaction only), else
``INSERT INTO t (...) SELECT ... ON CONFLICT (key) DO UPDATE``. The server converts each
value with an explicit cast to its column's type without the modifier
(``::character varying``, ``::numeric``), so a value too long for ``varchar(10)`` is an
error, not a silent truncation. A per-record table name (a template) collects each batch
and writes it this way, in one worker thread while the next batch is read.

Concurrent writers (READ COMMITTED): a key another transaction inserts meanwhile makes the
COPY straight into the table, or MERGE's insert, a unique violation (after waiting for that
transaction when it is still open); the batch is then written again with ``INSERT ... ON
CONFLICT (key) DO UPDATE``, which is safe against concurrent inserts, so the loader's values
win as with any upsert. MERGE updates a row another transaction updated meanwhile in its
new version, and inserts one deleted meanwhile (as PostgreSQL documents it). A unique
constraint other than ``key`` that a record violates is a unique violation ON CONFLICT (key)
cannot absorb: that record becomes a dead letter (bisected), the rest commit. ``replace``
empties the table in its own transaction first: readers see an empty or partial table
meanwhile.

Values go through psycopg's text adapters (the server does the typing): ``str`` as is (ISO
dates and datetimes, ISO-8601 intervals, UUIDs, numbers in strings all parse server-side),
``int``/``float``/``Decimal``/``bool``/``datetime``/``date``/``UUID`` as psycopg writes them,
``list`` as an array literal for array columns, ``dict`` and ``list`` as JSON for
``json``/``jsonb`` columns (any value there is JSON-encoded: ``"abc"`` becomes the JSON
string), a ``str`` for a ``bytea`` column is standard base64 (as `sql_source` reads it),
``None`` is NULL. Several records with one key in an upsert batch: the last one wins, as if
written one by one (when it is refused, the one before it is written instead).

SQLite and other SQLAlchemy URLs: ``executemany`` of ``INSERT ... ON CONFLICT (key) DO
UPDATE`` (``mode="upsert"`` needs a dialect that has it: SQLite, PostgreSQL); ``dict``/
``list`` become JSON text, dates and datetimes ISO strings, ``Decimal`` a string, bytes
stay bytes.

Bad rows: when a batch fails with a data error (a value of the wrong type, NOT NULL, CHECK,
a value too long, a unique violation in insert mode), the batch is bisected until exactly
the offending records are left; each becomes a dead letter carrying the database's error
(SQLSTATE and message), the rest commit. A record with fields the table lacks is a dead
letter at once (nothing is dropped silently). A lost connection is retried with exponential
backoff and jitter, and a batch whose COMMIT was in flight is checked with ``txid_status``
after reconnecting, so nothing is written or counted twice; an outage that outlasts
``max_retries`` raises `SqlUnavailableError` naming the host (credentials masked).

``mode``: ``upsert`` (needs ``key``), ``insert`` (a duplicate key is a dead letter, except
in a resumed run a record the table holds as it is: the stopped attempt loaded it),
``replace`` (the table is emptied in its own transaction when the run first writes to it,
then rows are inserted; not atomic with the load). ``create=True`` creates a missing table
from ``columns`` (name -> SQL type, with ``PRIMARY KEY (key)``); ``infer_columns=True``
instead takes the types from the first record of each table (asked for explicitly, never
by default). Without ``columns`` every column of the table is written (a field a record
lacks is NULL); with ``columns`` only those.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar, NoReturn

import more_itertools
from returns.result import Failure, Success

from sesa_fp.dataset import DatasetTemplate, Target
from sesa_fp.errors import ConfigError, RecordError
from sesa_fp.loaders import sql_check, sql_generic, sql_postgres, sql_stored, sql_stream
from sesa_fp.loaders.sql_errors import (
    SqlLoadError,
    SqlUnavailableError,
    _Disconnected,
    _first_line,
    _RowsFailed,
)
from sesa_fp.loaders.sql_generic import _generic_value
from sesa_fp.loaders.sql_postgres import _bytea, _json_text
from sesa_fp.loaders.sql_table import (
    _check_columns,
    _Done,
    _ident_parts,
    _ident_parts_config,
    _infer_type,
    _Table,
)
from sesa_fp.logs import log_event
from sesa_fp.result import DeadLetter
from sesa_fp.retrying import backoff_wait, retry_call
from sesa_fp.secrets import Secret, mask_url, redact, secret_strings, to_secret
from sesa_fp.stats import Stage

__all__ = ["MODES", "SqlLoadError", "SqlLoader", "SqlUnavailableError", "load_sql"]

MODES = ("upsert", "insert", "replace")


class SqlLoader(Stage):
    """The `load_sql` stage: yields the record (committed) or ``Failure(DeadLetter)`` per
    input item, in input order; input failures pass through. A sink."""

    kind = "loader"
    sink: ClassVar[bool] = True

    # the PostgreSQL way (records streamed into a COPY: sql_stream.py; a collected batch, COPY
    # and MERGE: sql_postgres.py) and the SQLAlchemy one (sql_generic.py)
    _prepare_pg = sql_postgres.prepare_pg
    _key_arrays = sql_postgres.key_arrays
    _write_pg = sql_postgres.write_pg
    _committed_after_all = sql_postgres.committed_after_all
    _iter_streamed = sql_stream.iter_streamed
    _open_stream = sql_stream.open_stream
    _abort_stream = sql_stream.abort_stream
    _finish_stream = sql_stream.finish_stream
    #: the sample records a PostgreSQL table would refuse (`sql_check`, for pre-flight checks)
    check_values = sql_check.check_values
    _prepare_generic = sql_generic.prepare_generic
    _write_generic = sql_generic.write_generic
    #: in a resumed insert, a duplicate the table holds as it is (`sql_stored`)
    _loaded_before = sql_stored.loaded_before

    def __init__(self, url: Any, table: str, *, key: Sequence[str], mode: str, create: bool,
                 columns: Mapping[str, str] | None, infer_columns: bool, batch_size: int,
                 max_retries: int, retry_backoff: float, connect_timeout: float,
                 password: Secret | None) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url.reveal() if isinstance(url, Secret) else url)
        except (ArgumentError, ValueError, TypeError) as exc:
            raise ConfigError(f"load_sql: not a SQLAlchemy URL: {mask_url(str(url))!r}") from exc
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        url_password = parsed.password
        self._password = to_secret(password) or to_secret(
            str(url_password) if url_password is not None else None)
        self.url = parsed.set(password=None)  # the secret lives only in self._password
        self.table = DatasetTemplate(table)
        if self.table.is_static:
            _ident_parts_config(table)
        self.key = list(key) if not isinstance(key, str) else [key]
        if not all(isinstance(k, str) and k for k in self.key):
            raise ConfigError(f"load_sql: key must be a list of column names, got {key!r}")
        if mode not in MODES:
            raise ConfigError(f"load_sql: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "upsert" and not self.key:
            raise ConfigError("load_sql: mode='upsert' needs key=[...] (the conflict target); "
                              "use mode='insert' to only insert")
        self.mode = mode
        #: a record it yields is committed, and what passes through it (a staged part's mark)
        #: comes after the records before it committed: a resumed run may trust it. Not in
        #: ``replace`` mode, which empties the table when a run first writes to it.
        self.resume_safe = mode != "replace"
        self.columns = _check_columns(columns)
        if create and self.columns is None and not infer_columns:
            raise ConfigError("load_sql: create=True needs columns={name: sql_type} "
                              "(or infer_columns=True to take types from the first record)")
        if self.columns is not None and not set(self.key) <= set(self.columns):
            raise ConfigError(f"load_sql: key {self.key} must be among columns "
                              f"{list(self.columns)}")
        self.create = bool(create)
        self.infer_columns = bool(infer_columns)
        for name, value in (("batch_size", batch_size), ("max_retries", max_retries + 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"load_sql: {name} must be a positive int, got {value!r}")
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.retry_backoff = float(retry_backoff)
        self.connect_timeout = float(connect_timeout)
        self.dialect = self.url.get_backend_name()
        self.fast = self.url.drivername == "postgresql+psycopg"
        if mode == "upsert" and self.dialect not in ("postgresql", "sqlite"):
            raise ConfigError(f"load_sql: mode='upsert' needs PostgreSQL or SQLite "
                              f"(ON CONFLICT), not {self.dialect}; use mode='insert'")
        # the URL without the secret; "***" where a password is set
        shown = self.url if self._password is None else self.url.set(password="x")
        self.host = shown.render_as_string(hide_password=True)
        super().__init__(self._repr())
        self.last_counts: dict[str, int] = {}
        self._secrets = secret_strings(self._password) if self._password else set()
        self._conn: Any = None
        self._engine: Any = None
        self._tables: dict[str, _Table] = {}
        self._prepared: set[str] = set()
        self._bisects = 0
        #: set by `sesa_fp.resume` for a run that continues a stopped one (until it ends): in
        #: ``insert`` mode a duplicate stored as it is then counts as loaded (`sql_stored`)
        self.resumed = False
        self._stored: dict[str, str] = {}  # the look-up's temporary table per target
        self._since: int | None = None  # the run's first transaction id (resumed, PostgreSQL)
        #: per table, the keys of the records found stored before the run (counted loaded)
        self._found_keys: dict[str, set[Any]] = {}
        self._lookup_failed = False  # a look-up failed this run (logged once)

    def target(self, rec: Mapping[str, Any]) -> Target:
        """The table ``rec`` would be written to and its key (``col=value`` pairs, None
        without a key), with no I/O; `RecordError` when the table name needs a missing field.

        >>> load_sql("sqlite://", "rfi_{kind}", key=["k"]).target({"kind": "a", "k": 7})
        Target(dataset='rfi_a', id='k=7', routing=None)
        """
        name = self.table.render(rec)
        _ident_parts(name)
        key = ",".join(f"{k}={rec.get(k)!r}" for k in self.key) if self.key else None
        return Target(name, key)

    def table_columns(self, table: str) -> list[str] | None:
        """The columns of ``table`` in order, None when it does not exist: reads the catalog
        only (for pre-flight checks), on a connection closed again before returning."""
        def read() -> list[tuple[str, str, bool]] | None:
            self._connect()
            return self._reflect(table)

        try:
            cols = self._with_retries(read, f"read table {table!r}")
        finally:
            self._drop_connection()
        return None if cols is None else [c for c, _, _ in cols]

    # -- presentation -------------------------------------------------------------------------
    def _repr(self) -> str:
        opts = [repr(self.host), f"table={self.table.template!r}"]
        if self.key:
            opts.append(f"key={self.key!r}")
        for name, value, default in (
            ("mode", self.mode, "upsert"), ("create", self.create, False),
            ("columns", self.columns, None), ("infer_columns", self.infer_columns, False),
            ("batch_size", self.batch_size, 10_000), ("max_retries", self.max_retries, 5),
            ("retry_backoff", self.retry_backoff, 0.5),
            ("connect_timeout", self.connect_timeout, 10.0),
        ):
            if value != default:
                opts.append(f"{name}={value!r}")
        return f"load_sql({', '.join(opts)})"

    def __repr__(self) -> str:
        return self._repr()

    def describe(self) -> dict[str, Any]:
        """Where the records went (for the run report)."""
        return {"kind": "sql", "uri": self.host, "records": sum(self.last_counts.values()),
                "tables": dict(self.last_counts)}

    def _mask(self, text: str) -> str:
        return redact(text, self._secrets)

    # -- connections --------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
        if self.fast:
            import psycopg

            u = self.url
            kwargs: dict[str, Any] = {k: v for k, v in u.query.items() if isinstance(v, str)}
            kwargs.update(host=u.host, port=u.port, user=u.username, dbname=u.database,
                          connect_timeout=max(1, int(self.connect_timeout)))
            if self._password is not None:
                kwargs["password"] = self._password.reveal()
            try:
                conn = psycopg.connect(**{k: v for k, v in kwargs.items() if v is not None})
            except psycopg.OperationalError as exc:
                raise _Disconnected(exc) from exc
            from psycopg.types.json import JsonDumper

            conn.adapters.register_dumper(dict, JsonDumper)
            if self.resumed and self._since is None:
                # every row this run writes comes after this: a duplicate found stored
                # from before it was loaded by the attempt the run resumes (`sql_stored`)
                try:
                    [self._since] = conn.execute("SELECT txid_current()").fetchall()[0]
                    conn.commit()
                except psycopg.OperationalError as exc:
                    with contextlib.suppress(Exception):
                        conn.close()
                    raise _Disconnected(exc) from exc
        else:
            import sqlalchemy

            if self._engine is None:
                u = self.url if self._password is None \
                    else self.url.set(password=self._password.reveal())
                self._engine = sqlalchemy.create_engine(u, poolclass=sqlalchemy.pool.NullPool)
            try:
                conn = self._engine.connect()
            except sqlalchemy.exc.OperationalError as exc:
                raise _Disconnected(exc) from exc
        self._conn = conn
        self._tables = {}
        self._stored = {}
        return conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._tables = {}
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close too
                conn.close()

    def _is_disconnect(self, exc: BaseException) -> bool:
        if self.fast:
            import psycopg

            return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) \
                or bool(self._conn is not None and self._conn.broken)
        import sqlalchemy

        if not isinstance(exc, sqlalchemy.exc.DBAPIError):
            return False
        if exc.connection_invalidated:
            return True
        # SQLite says OperationalError for a missing table too: not a connection there
        return self.dialect != "sqlite" and isinstance(exc, sqlalchemy.exc.OperationalError)

    def _row_error(self, exc: BaseException) -> _RowsFailed | None:
        """The data error a batch failed with, or None when the error is not about data."""
        if self.fast:
            import psycopg

            if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
                diag = exc.diag
                msg = diag.message_primary or _first_line(exc)
                if diag.message_detail:
                    msg = f"{msg} ({diag.message_detail})"
                return _RowsFailed(type(exc).__name__,
                                   self._mask(f"SQLSTATE {exc.sqlstate}: {msg}"))
            return None
        import sqlalchemy

        if isinstance(exc, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.DataError)):
            orig = exc.orig
            code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
            text = _first_line(orig) if orig is not None else _first_line(exc)
            return _RowsFailed(type(orig).__name__ if orig is not None else type(exc).__name__,
                               self._mask(f"{code}: {text}" if code else text))
        return None

    def _refused(self, info: _Table, exc: BaseException) -> Exception:
        """What a batch that ``exc`` refused is: its data error (bisected), else
        `SqlLoadError` naming the host and table (credentials masked)."""
        err = self._row_error(exc)
        if err is not None:
            return err
        return SqlLoadError(self._mask(f"load_sql: {self.host} refused the batch for "
                                       f"{info.name!r}: {type(exc).__name__}: "
                                       f"{_first_line(exc)}"))

    def _unavailable(self, exc: BaseException, what: str, attempts: int) -> SqlUnavailableError:
        return SqlUnavailableError(
            self.host, self._mask(f"SQL host {self.host} unavailable after {attempts} "
                                  f"attempt(s) ({what}): {type(exc).__name__}: "
                                  f"{_first_line(exc)}"))

    def _with_retries(self, fn: Any, what: str) -> Any:
        """``fn()`` (which uses ``self._connect()``), retried after a lost connection with
        backoff and jitter; an outage that outlasts the retries is `SqlUnavailableError`."""
        def give_up(exc: _Disconnected, attempts: int) -> NoReturn:
            log_event("sql_load_unavailable", logging.ERROR, host=self.host,
                      attempts=attempts, error=self._mask(_first_line(exc.cause)))
            raise self._unavailable(exc.cause, what, attempts) from exc.cause

        return retry_call(fn, on=_Disconnected, max_retries=self.max_retries,
                          wait=backoff_wait(self.retry_backoff),
                          before_sleep=lambda state: self.stats.add(retries=1),
                          give_up=give_up)

    # -- tables -------------------------------------------------------------------------------
    def _q(self, name: str) -> str:
        if self.fast:
            return '"' + name.replace('"', '""') + '"'
        return str(self._engine.dialect.identifier_preparer.quote(name))

    def _qt(self, table: str) -> str:
        return ".".join(self._q(p) for p in _ident_parts(table))

    def _reflect(self, table: str) -> list[tuple[str, str, bool]] | None:
        """``[(column, type, is_array)]`` of ``table`` in order, None when it is missing."""
        conn = self._conn
        if self.fast:
            row = conn.execute("SELECT to_regclass(%s)::oid", (self._qt(table),)).fetchone()
            if row is None or row[0] is None:
                return None
            cols = conn.execute(
                "SELECT a.attname, format_type(a.atttypid, NULL), t.typcategory = 'A' "
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped "
                "AND a.attgenerated = '' ORDER BY a.attnum", (row[0],)).fetchall()
            conn.commit()
            return [(str(n), str(t), bool(arr)) for n, t, arr in cols]
        import sqlalchemy

        parts = _ident_parts(table)
        schema, name = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
        insp = sqlalchemy.inspect(conn)
        if not insp.has_table(name, schema=schema):
            conn.rollback()
            return None
        cols = [(c["name"], str(c["type"]), False) for c in insp.get_columns(name, schema)]
        conn.rollback()
        return cols

    def _create(self, table: str, columns: Mapping[str, str]) -> None:
        defs = [f"{self._q(c)} {t}" for c, t in columns.items()]
        if self.key:
            defs.append(f"PRIMARY KEY ({', '.join(self._q(k) for k in self.key)})")
        ddl = f"CREATE TABLE IF NOT EXISTS {self._qt(table)} ({', '.join(defs)})"
        self._execute_ddl(ddl)
        log_event("sql_table_created", host=self.host, table=table, columns=list(columns))

    def _execute_ddl(self, sql: str) -> None:
        conn = self._conn
        if self.fast:
            conn.execute(sql)
            conn.commit()
        else:
            import sqlalchemy

            conn.execute(sqlalchemy.text(sql))
            conn.commit()

    def _table(self, table: str, first: Mapping[str, Any]) -> _Table:
        """The target as a `_Table` for the current connection (created, emptied as the
        options say, the first time the run writes to it)."""
        info = self._tables.get(table)
        if info is not None:
            return info
        reflected = self._reflect(table)
        if reflected is None:
            if not self.create:
                raise SqlLoadError(f"load_sql: table {table!r} does not exist on {self.host} "
                                   "(create=True with columns=... creates it)")
            cols = self.columns or {k: _infer_type(v) for k, v in first.items()}
            self._create(table, cols)
            reflected = self._reflect(table)
            if reflected is None:  # pragma: no cover - just created
                raise SqlLoadError(f"load_sql: table {table!r} was not created on {self.host}")
        if table not in self._prepared and self.mode == "replace":
            self._execute_ddl(f"DELETE FROM {self._qt(table)}")
        self._prepared.add(table)
        known = {n: (t, arr) for n, t, arr in reflected}
        names = list(self.columns) if self.columns is not None else [n for n, _, _ in reflected]
        missing = [c for c in [*names, *self.key] if c not in known]
        if missing:
            raise SqlLoadError(f"load_sql: table {table!r} on {self.host} has no column(s) "
                               f"{', '.join(map(repr, missing))}")
        info = _Table(table, names, [known[n][0] for n in names])
        for i, name in enumerate(names):
            typ, _arr = known[name]
            if self.fast and typ in ("json", "jsonb"):
                info.convert.append((i, _json_text))
            elif self.fast and typ == "bytea":
                info.convert.append((i, _bytea))
        if self.fast:
            self._prepare_pg(info)
        else:
            self._prepare_generic(info)
        self._tables[table] = info
        return info

    def _conflict(self, info: _Table) -> str:
        if self.mode != "upsert":
            return ""
        keys = ", ".join(self._q(k) for k in self.key)
        rest = [c for c in info.columns if c not in self.key]
        if not rest:
            return f" ON CONFLICT ({keys}) DO NOTHING"
        sets = ", ".join(f"{self._q(c)} = EXCLUDED.{self._q(c)}" for c in rest)
        return f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"

    # -- writing one batch --------------------------------------------------------------------
    def _row(self, rec: Any, info: _Table) -> Sequence[Any]:
        if type(rec) is not dict and not isinstance(rec, Mapping):
            raise RecordError(f"a record must be a mapping, got {type(rec).__name__}")
        if not rec.keys() <= info.colset:
            extra = sorted(str(k) for k in rec if k not in info.colset)
            raise RecordError(f"field(s) {', '.join(map(repr, extra))} not in table "
                              f"{info.name!r}'s columns")
        row = list(map(rec.get, info.columns))
        for i, fn in info.convert:
            row[i] = fn(row[i])
        if not self.fast:
            row = [_generic_value(v) for v in row]
        return row

    def _attempt(self, table: str, recs: Sequence[Any], done: _Done) -> None:
        """One try at writing ``recs`` to ``table``: connects, prepares the table, converts
        (bad records become dead letters) and writes the rest. Outcomes go to ``done`` as
        they become final, so a retry after a lost connection skips them."""
        self._connect()
        info = self._table(table, recs[0])
        rows: list[Sequence[Any]] = []
        keep: list[int] = []
        cols, colset = info.columns, info.colset
        plain = self.fast and not info.convert  # the common case, inlined: no conversion
        for i, rec in enumerate(recs):
            if plain and type(rec) is dict and rec.keys() <= colset:
                rows.append(list(map(rec.get, cols)))
                keep.append(i)
                continue
            try:
                rows.append(self._row(rec, info))
                keep.append(i)
            except (RecordError, TypeError, ValueError) as exc:
                done.dead.append((i, DeadLetter.from_exception(rec, exc, stage=self.name,
                                                               target=table)))
        if rows:
            shadows = self._dedupe(info, rows, keep)
            self._bisect(info, recs, rows, keep, shadows, done)

    def _dedupe(self, info: _Table, rows: list[Sequence[Any]],
                keep: list[int]) -> dict[int, list[int]]:
        """Upsert sends one row per key in a batch, the last one (as if applied in order):
        one statement cannot touch a row twice. ``rows`` and ``keep`` are reduced in place;
        the result maps a kept record to the earlier ones with its key, which share its
        outcome (when it commits they were loaded and overwritten, as one by one)."""
        if self.mode != "upsert":
            return {}
        idx = [info.columns.index(k) for k in self.key]

        def key_of(row: Sequence[Any]) -> Any:
            return tuple(row[i] for i in idx) if len(idx) > 1 else row[idx[0]]

        last: dict[Any, int] = {}
        try:
            for n, row in enumerate(rows):
                last[key_of(row)] = n
        except TypeError:
            return {}  # an unhashable key (a list): the database will say what it thinks
        if len(last) == len(rows):
            return {}
        chosen = set(last.values())
        shadows: dict[int, list[int]] = {}
        for n, row in enumerate(rows):
            if n not in chosen:
                shadows.setdefault(keep[last[key_of(row)]], []).append(keep[n])
        order = sorted(chosen)
        rows[:] = [rows[n] for n in order]
        keep[:] = [keep[n] for n in order]
        return shadows

    def _bisect(self, info: _Table, recs: Sequence[Any], rows: list[Sequence[Any]],
                keep: list[int], shadows: dict[int, list[int]], done: _Done,
                looked: bool = False) -> None:
        """Writes ``rows`` or, refused for their data, splits them until exactly the bad
        records are dead letters. ``looked``: a resumed insert already looked these records
        up among the rows stored before the run (`sql_stored`)."""
        write = self._write_pg if self.fast else self._write_generic
        try:
            write(info, rows)
        except _RowsFailed as err:
            found = None if looked else self._loaded_before(info, rows, err)
            looked = looked or found is not None
            if found:  # committed by the attempt this run resumes: counted as loaded
                done.ok.append([keep[i] for i in found])
                self._committed(info.name, len(found))
                rest = sorted(set(range(len(rows))) - set(found))
                if rest:
                    self._bisect(info, recs, [rows[i] for i in rest], [keep[i] for i in rest],
                                 shadows, done, looked)
                return
            if len(rows) == 1:
                done.dead.append((keep[0], DeadLetter(
                    record=recs[keep[0]], error_type=err.error_type,
                    error_message=err.message, stage=self.name, target=info.name)))
                earlier = shadows.get(keep[0])
                if earlier:  # the previous record with this key stands on its own now
                    last, rest = earlier[-1], earlier[:-1]
                    self._bisect(info, recs, [self._row(recs[last], info)], [last],
                                 {last: rest} if rest else {}, done)
                return
            mid = len(rows) // 2
            self._bisects += 1
            self._bisect(info, recs, rows[:mid], keep[:mid], shadows, done, looked)
            self._bisect(info, recs, rows[mid:], keep[mid:], shadows, done, looked)
            return
        done.ok.append(keep)
        n = len(keep)
        if shadows:
            extra = [j for i in keep for j in shadows.get(i, ())]
            done.ok.append(extra)
            n += len(extra)
        self._committed(info.name, n)

    def _committed(self, table: str, n: int) -> None:
        """Counts ``n`` records of ``table`` as loaded (the stage's stats, the last
        iteration's count per table)."""
        self.stats.add(committed=n)
        self.last_counts[table] = self.last_counts.get(table, 0) + n

    def _load_group(self, table: str, recs: list[Any]) -> list[DeadLetter | None]:
        """``recs`` written to ``table``: per record None (committed) or its dead letter.
        Retried after a lost connection, without the records whose outcome is final (their
        sub-batch committed, or they are dead letters)."""
        results: list[DeadLetter | None] = [None] * len(recs)
        todo: list[int] | None = None  # None: all of them

        def attempt() -> None:
            nonlocal todo
            batch = recs if todo is None else [recs[i] for i in todo]
            if not batch:
                return
            done = _Done()
            try:
                self._attempt(table, batch, done)
            except _Disconnected:
                raise
            except Exception as exc:
                if self._is_disconnect(exc) and self._row_error(exc) is None:
                    self._drop_connection()
                    raise _Disconnected(exc) from exc
                raise
            finally:
                where = todo
                for j, dl in done.dead:
                    results[j if where is None else where[j]] = dl
                finished = sum(map(len, done.ok)) + len(done.dead)
                if finished == len(batch):
                    todo = []
                elif finished:
                    fin = {j for j, _ in done.dead}
                    for group in done.ok:
                        fin.update(group)
                    todo = [j if where is None else where[j]
                            for j in range(len(batch)) if j not in fin]

        self._with_retries(attempt, f"load into {table!r}")
        return results

    # -- the stage ----------------------------------------------------------------------------
    def _split(self, chunk: list[Any]) -> tuple[list[Any], dict[str, list[int]], int]:
        """A chunk as ``(out, groups, failed)``: ``out`` holds each input item (records
        unwrapped, a dead letter for a record whose table name cannot be made), ``groups``
        the positions of the records per target table."""
        out: list[Any] = list(chunk)
        failed = 0
        if self.table.is_static:
            idx = []
            for i, item in enumerate(chunk):
                t = type(item)
                if t is Failure:
                    continue
                if t is Success:
                    out[i] = item.unwrap()
                idx.append(i)
            return out, ({self.table.template: idx} if idx else {}), 0
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(chunk):
            t = type(item)
            if t is Failure:
                continue
            rec = item.unwrap() if t is Success else item
            out[i] = rec
            try:
                name = self.table.render(rec)
                _ident_parts(name)
            except (RecordError, TypeError, ValueError) as exc:
                failed += 1
                out[i] = Failure(DeadLetter.from_exception(
                    rec, exc, stage=self.name, target=self.table.template))
                continue
            groups.setdefault(name, []).append(i)
        return out, groups, failed

    def _load_chunk(self, out: list[Any], groups: dict[str, list[int]]) -> int:
        """Write a split chunk (in the loader's one worker thread, which alone holds the
        connection); its dead letters replace their records in ``out``."""
        failed = 0
        for name, idx in groups.items():
            results = self._load_group(name, [out[i] for i in idx])
            for i, dl in zip(idx, results, strict=True):
                if dl is not None:
                    failed += 1
                    out[i] = Failure(dl)
        return failed

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        with self.exclusive():
            self.last_counts = {}
            self._prepared = set()
            self._bisects = 0
            self._since = None
            self._found_keys = {}
            self._lookup_failed = False
            counts = [0, 0, 0]  # read, emitted, dead letters
            t0 = time.monotonic()
            try:
                if self.fast and self.table.is_static:
                    yield from self._iter_streamed(upstream, counts)
                else:
                    yield from self._iter_pooled(upstream, counts)
                found = sum(map(len, self._found_keys.values()))
                if found:
                    log_event("sql_load_found_loaded", host=self.host, records=found,
                              detail="duplicates of a resumed insert stored as they are: "
                                     "loaded by the attempt this run continues")
                log_event("sql_load_done", logging.DEBUG, host=self.host,
                          committed=self.stats.committed, failed=counts[2],
                          bisects=self._bisects, seconds=round(time.monotonic() - t0, 3))
            finally:
                self.resumed = False  # told again by the next run that resumes
                self._drop_connection()
                if self._engine is not None:
                    self._engine.dispose()
                    self._engine = None
                self.stats.add(n_in=counts[0], n_out=counts[1], failed=counts[2])

    def _iter_pooled(self, upstream: Iterable[Any], counts: list[int]) -> Iterator[Any]:
        """Batches collected, then written by one worker thread (the only one that touches
        the connection) while the next is read from upstream: the source's work and the
        database's overlap. At most two batches are held."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load_sql")
        pending: tuple[list[Any], Future[int]] | None = None

        def settled() -> list[Any]:
            """The batch in flight, once written (its dead letters and items counted)."""
            nonlocal pending
            if pending is None:
                return []
            done, fut = pending
            pending = None
            counts[2] += fut.result()
            counts[1] += len(done)
            return done

        try:
            for chunk in more_itertools.chunked(upstream, self.batch_size):
                counts[0] += len(chunk)
                out, groups, bad_names = self._split(chunk)
                counts[2] += bad_names
                yield from settled()
                pending = (out, pool.submit(self._load_chunk, out, groups))
            yield from settled()
        finally:
            if pending is not None:  # stopped early: let the batch in flight finish
                with contextlib.suppress(Exception):
                    counts[2] += pending[1].result()
            pool.shutdown(wait=True)


def load_sql(
    url: str | Secret,
    table: str,
    *,
    key: Sequence[str] = (),
    mode: str = "upsert",
    create: bool = False,
    columns: Mapping[str, str] | None = None,
    infer_columns: bool = False,
    batch_size: int = 10_000,
    max_retries: int = 5,
    retry_backoff: float = 0.5,
    connect_timeout: float = 10.0,
    password: str | Secret | None = None,
) -> SqlLoader:
    """A loader stage writing records into ``table`` (a name, ``schema.name``, or a
    per-record template like ``events_{day:%Y%m}``) at a SQLAlchemy 2 ``url``: PostgreSQL
    through ``COPY`` and one ``INSERT ... ON CONFLICT``, SQLite and others by
    ``executemany``. ``password`` may also sit in the URL; it is masked everywhere.

    >>> load_sql("postgresql://etl:pw@127.0.0.1:5432/db", "t", key=["id"])
    load_sql('postgresql+psycopg://etl:***@127.0.0.1:5432/db', table='t', key=['id'])
    >>> load_sql("sqlite:///out.db", "events", mode="insert", create=True,
    ...          columns={"id": "integer", "name": "text"})
    load_sql('sqlite:///out.db', table='events', mode='insert', create=True, columns={'id': 'integer', 'name': 'text'})
    """  # noqa: E501
    return SqlLoader(url, table, key=key, mode=mode, create=create, columns=columns,
                     infer_columns=infer_columns, batch_size=batch_size,
                     max_retries=max_retries, retry_backoff=retry_backoff,
                     connect_timeout=connect_timeout, password=to_secret(password))
