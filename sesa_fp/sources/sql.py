"""`sql_source`: records from a SQL query (PostgreSQL, SQLite, any SQLAlchemy 2 URL), streamed.

The query is a SQLAlchemy ``text()`` with bound parameters (``:name``); values are never
pasted into the SQL. Rows come from a server-side cursor (PostgreSQL: a named cursor) in
chunks of ``chunk_size``, so memory does not depend on the size of the result.

With ``partition_on`` (a unique, non-null, orderable column of the result) the query is
wrapped as ``SELECT * FROM (query) WHERE key > :after [AND key < :upper] ORDER BY key``: the
source then has a keyset ``position`` (the last key read), resumes after it (``after=``),
continues after a lost connection, and ``partitions=N`` splits the key range in N parts read
in parallel by `merge` (``source.partitions()``). Each partition reads in a transaction of its
own, so each sees its own snapshot of the table.

Values are mapped as `sesa_fp.sources.sql_values` documents (``Decimal`` kept exact,
datetimes as objects, intervals as ISO-8601, UUIDs as strings, bytes as base64, arrays as
lists, JSON parsed; NaN and infinities as strings; an unmapped type is an error naming the
column).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import uuid
from collections.abc import Iterator, Mapping
from operator import itemgetter
from typing import Any, NoReturn

import tenacity

from sesa_fp.errors import ConfigError, SesaError
from sesa_fp.logs import log_event
from sesa_fp.retrying import backoff_wait, retry_call
from sesa_fp.secrets import (
    MASK,
    Secret,
    mask_mapping,
    mask_url,
    redact,
    secret_strings,
    to_secret,
)
from sesa_fp.sources.sql_values import RowMapper, adapt_psycopg, sql_value
from sesa_fp.stats import StageStats

__all__ = [
    "SqlError",
    "SqlQueryError",
    "SqlSource",
    "SqlUnavailableError",
    "sql_source",
    "sql_value",
]


class SqlError(SesaError):
    """A SQL extraction failed."""


class SqlUnavailableError(SqlError):
    """The database could not be reached (or was lost) after the retries; names the host."""


class SqlQueryError(SqlError):
    """The database refused the query, or a value has no record mapping."""


def _first_line(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's wrapping and background links."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"


# -- the source --------------------------------------------------------------------------------
def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"sql_source: {name} must be a positive int, got {value!r}")
    return value


class _Range:
    """One partition's key range: ``lower <= key < upper`` (``None``: unbounded)."""

    __slots__ = ("empty", "lower", "upper")

    def __init__(self, lower: Any = None, upper: Any = None, empty: bool = False) -> None:
        self.lower, self.upper, self.empty = lower, upper, empty


class _Shared:
    """What the partitions of one source share: the engine and the key ranges (planned once,
    at the first read, so building a source does no I/O)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.plan_lock = threading.Lock()  # held while planning: the partitions wait for one
        self.engine: Any = None
        self.ranges: list[_Range] | None = None


class SqlSource:
    """Iterate to read (lazy, re-iterable). With ``partition_on``, ``position`` is the key of
    the last record yielded; pass it back as ``after=`` to resume."""

    def __init__(self, *, url: Any, password: Secret | None, query: str,
                 params: Mapping[str, Any] | None, chunk_size: int, partition_on: str | None,
                 partitions: int, after: Any, part: int | None, max_retries: int,
                 retry_backoff: float, connect_args: Mapping[str, Any] | None,
                 connect_timeout: float = 10.0,
                 shared: _Shared | None = None) -> None:
        import sqlalchemy as sa

        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"sql_source: query must be a non-empty string, got {query!r}")
        if params is not None and not isinstance(params, Mapping):
            raise ConfigError(f"sql_source: params must be a mapping of bound parameters, got "
                              f"{type(params).__name__}")
        if partition_on is not None and (not isinstance(partition_on, str) or
                                         not partition_on):
            raise ConfigError(f"sql_source: partition_on must be a column name, got "
                              f"{partition_on!r}")
        self.url = url
        self.password = password
        self.query = query.strip().rstrip(";").rstrip()
        self.params = dict(params or {})
        self.chunk_size = _positive("chunk_size", chunk_size)
        self.partition_on = partition_on
        self.partitions_n = _positive("partitions", partitions)
        if self.partitions_n > 1 and partition_on is None:
            raise ConfigError("sql_source: partitions > 1 needs partition_on (a unique, "
                              "orderable column to split the key range on)")
        if after is not None and partition_on is None:
            raise ConfigError("sql_source: after= resumes after a key: it needs partition_on")
        if after is not None and self.partitions_n > 1 and part is None:
            raise ConfigError("sql_source: after= resumes one partition; with partitions > 1 "
                              "pass it to .partition(i, after=...) (a partition's position)")
        if part is not None and not 0 <= part < self.partitions_n:
            raise ConfigError(f"sql_source: partition {part} out of range(0, "
                              f"{self.partitions_n})")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"sql_source: max_retries must be an int >= 0, got "
                              f"{max_retries!r}")
        self.after = after
        self.part = part
        self.max_retries = max_retries
        self.retry_backoff = float(retry_backoff)
        self.connect_args = dict(connect_args or {})
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, (int, float)) \
                or connect_timeout <= 0:
            raise ConfigError(f"sql_source: connect_timeout must be a positive number of "
                              f"seconds, got {connect_timeout!r}")
        self.connect_timeout = float(connect_timeout)
        self._shared = shared if shared is not None else _Shared()
        self._secrets = secret_strings(password, self.connect_args)
        if url.password is not None:
            self._secrets |= secret_strings(Secret(str(url.password)))
        # checks that every bound parameter has a value, before any I/O
        stmt = sa.text(self.query)
        missing = sorted(set(stmt.compile().params) - set(self.params))
        if missing:
            raise ConfigError(f"sql_source: no value for bound parameter(s) "
                              f"{', '.join(':' + m for m in missing)} (pass params=...)")
        self._done = 0  # records handed out by the chunks passed, in this iteration
        self._cur: tuple[int, Any, list[Any] | None] | None = None  # the chunk being read
        self._key_before: Any = None  # the last key of the chunks passed
        self._fetched_key: Any = None  # the last key fetched (where a reconnect resumes)
        self._read_any = False
        self.fetches = 0  # fetchmany calls of the last iteration (chunks)
        label = "sql_source" if part is None else f"sql_source[{part}/{self.partitions_n}]"
        self.stats = StageStats(name=f"{label}({self.shown_url!r})", kind="sql")

    # -- construction helpers ---------------------------------------------------------------
    @property
    def shown_url(self) -> str:
        """The URL with its password masked (and ``***`` where ``password=`` supplies one)."""
        text = self.url.render_as_string(hide_password=True)
        return redact(mask_url(text), self._secrets)

    @property
    def host(self) -> str:
        """Where the database is, for messages: host:port, or the file of SQLite."""
        u = self.url
        if u.host:
            return f"{u.host}:{u.port}" if u.port else str(u.host)
        return str(u.database or u.drivername)

    def _kwargs(self) -> dict[str, Any]:
        return {"url": self.url, "password": self.password, "query": self.query,
                "params": self.params, "chunk_size": self.chunk_size,
                "partition_on": self.partition_on, "partitions": self.partitions_n,
                "after": self.after, "part": self.part, "max_retries": self.max_retries,
                "retry_backoff": self.retry_backoff, "connect_args": self.connect_args,
                "connect_timeout": self.connect_timeout,
                "shared": self._shared}

    def partitions(self) -> list[SqlSource]:
        """``partitions`` independent sources, one per key range, each with its own
        ``position``; together they read every row once. Read them in parallel with
        ``merge(*source.partitions())``."""
        if self.part is not None:
            return [self]
        if self.partitions_n == 1:
            return [SqlSource(**self._kwargs())]
        return [SqlSource(**{**self._kwargs(), "after": None, "part": i})
                for i in range(self.partitions_n)]

    def partition(self, part: int, *, after: Any = None) -> SqlSource:
        """Partition ``part``, resumed after the key ``after`` (a saved ``position``)."""
        if self.partitions_n == 1:
            if part != 0:
                raise ConfigError(f"sql_source: partition {part} out of range(0, 1)")
            return SqlSource(**{**self._kwargs(), "after": after, "part": None})
        return SqlSource(**{**self._kwargs(), "after": after, "part": part})

    def __repr__(self) -> str:
        items = [("url", repr(self.shown_url)), ("query", repr(self.query))]
        if self.params:
            items.append(("params", repr(self.params)))
        if self.password is not None:
            items.append(("password", repr(MASK)))
        if self.chunk_size != 5000:
            items.append(("chunk_size", repr(self.chunk_size)))
        if self.partition_on is not None:
            items.append(("partition_on", repr(self.partition_on)))
        if self.partitions_n != 1:
            items.append(("partitions", repr(self.partitions_n)))
        if self.max_retries != 5:
            items.append(("max_retries", repr(self.max_retries)))
        if self.retry_backoff != 0.5:
            items.append(("retry_backoff", repr(self.retry_backoff)))
        if self.connect_timeout != 10.0:
            items.append(("connect_timeout", repr(self.connect_timeout)))
        if self.connect_args:
            items.append(("connect_args", repr(mask_mapping(self.connect_args))))
        if self.part is None and self.after is not None:
            items.append(("after", repr(self.after)))
        base = "sql_source(" + ", ".join(f"{k}={v}" for k, v in items) + ")"
        if self.part is None:
            return base
        extra = "" if self.after is None else f", after={self.after!r}"
        return f"{base}.partition({self.part}{extra})"

    @property
    def position(self) -> Any:
        """The key of the last record yielded (``after`` before the first); ``None`` without
        ``partition_on``, where a read cannot be resumed."""
        if self.partition_on is None:
            return None
        return self._last_key if self._read_any else self.after

    @property
    def resumable(self) -> bool:
        """True with ``partition_on``: the key is a position any later read understands."""
        return self.partition_on is not None and (self.partitions_n == 1
                                                  or self.part is not None)

    def resume(self, start: Any) -> SqlSource:
        """This source (or partition) resumed after the key ``start`` (`sesa_fp.position`)."""
        if not self.resumable:
            raise ConfigError("sql_source: only a source with partition_on (one partition, "
                              "or one of .partitions()) can be resumed")
        return self.partition(self.part or 0, after=start)

    # -- connections ------------------------------------------------------------------------
    def _mask(self, text: str) -> str:
        return redact(mask_url(text), self._secrets)

    def _connect_args(self) -> dict[str, Any]:
        args = dict(self.connect_args)
        if self.url.get_backend_name() == "postgresql":  # libpq takes whole seconds
            args.setdefault("connect_timeout", max(1, math.ceil(self.connect_timeout)))
        return args

    def _engine(self) -> Any:
        with self._shared.lock:
            if self._shared.engine is None:
                import sqlalchemy as sa
                from sqlalchemy.pool import NullPool

                url = self.url
                if self.password is not None:
                    url = url.set(password=self.password.reveal())
                self._shared.engine = sa.create_engine(url, poolclass=NullPool,
                                                       connect_args=self._connect_args())
            return self._shared.engine

    def _connect(self) -> Any:
        """A DBAPI connection, retried with backoff; `SqlUnavailableError` after the retries."""
        import sqlalchemy as sa

        engine = self._engine()

        def before_sleep(state: tenacity.RetryCallState) -> None:
            self.stats.add(retries=1)
            exc = state.outcome.exception() if state.outcome else None
            log_event("sql_connect_retry", logging.WARNING, host=self.host,
                      attempt=state.attempt_number,
                      error=self._mask(f"{type(exc).__name__}: {exc}"))

        dbapi_errors = engine.dialect.loaded_dbapi
        unreachable = (sa.exc.OperationalError, dbapi_errors.OperationalError)

        def give_up(exc: Exception, attempts: int) -> NoReturn:
            raise SqlUnavailableError(
                f"sql_source: cannot connect to {self.host} ({self.shown_url}) after "
                f"{self.max_retries + 1} attempts: {self._mask(_first_line(exc))}"
            ) from None

        try:
            dbapi = retry_call(engine.raw_connection, on=unreachable,
                               max_retries=self.max_retries,
                               wait=backoff_wait(self.retry_backoff),
                               before_sleep=before_sleep, give_up=give_up)
        except (sa.exc.DBAPIError, dbapi_errors.Error) as exc:
            raise SqlQueryError(f"sql_source: {self.host} refused the connection: "
                                f"{self._mask(_first_line(exc))}") from None
        if self.url.get_driver_name() == "psycopg":
            try:
                adapt_psycopg(dbapi.driver_connection)
            except dbapi_errors.Error as exc:
                self._close(dbapi)
                raise self._db_error(exc, dbapi, "set up the session for") from None
        return dbapi

    def _execute(self, cursor: Any, sql: str, params: dict[str, Any]) -> None:
        import sqlalchemy as sa

        dialect = self._engine().dialect
        compiled = sa.text(sql).compile(dialect=dialect)
        values = compiled.construct_params(params)
        if dialect.positional:
            cursor.execute(compiled.string, tuple(values[n] for n in compiled.positiontup or ()))
        else:
            cursor.execute(compiled.string, values)

    def _scalar_rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        dbapi = self._connect()
        try:
            cur = dbapi.cursor()
            try:
                self._execute(cur, sql, params)
                return list(cur.fetchall())
            finally:
                cur.close()
        except self._engine().dialect.loaded_dbapi.Error as exc:
            raise self._db_error(exc, dbapi, "plan the partitions of") from None
        finally:
            self._close(dbapi)

    def _close(self, dbapi: Any) -> None:
        # a read: nothing to keep; ends the cursor's transaction (if the connection is
        # gone, closing is all that is left)
        with contextlib.suppress(Exception):
            dbapi.rollback()
        try:
            dbapi.close()
        except Exception as exc:  # best effort
            log_event("sql_close_failed", logging.DEBUG, host=self.host,
                      error=self._mask(f"{type(exc).__name__}: {exc}"))

    def _is_disconnect(self, exc: BaseException, dbapi: Any) -> bool:
        dialect = self._engine().dialect
        try:
            conn = getattr(dbapi, "dbapi_connection", dbapi)
            return bool(dialect.is_disconnect(exc, conn, None))
        except Exception:
            return False

    def _db_error(self, exc: BaseException, dbapi: Any, what: str) -> SqlError:
        msg = self._mask(f"{type(exc).__name__}: {exc}".strip())
        if self._is_disconnect(exc, dbapi):
            return SqlUnavailableError(f"sql_source: lost the connection to {self.host} "
                                       f"({self.shown_url}): {msg}")
        first = self.query.splitlines()[0][:120]
        hint = ""
        if self.partition_on is not None and self.partition_on in str(exc):
            hint = (f" (partition_on={self.partition_on!r} must be a column of the query's "
                    "result)")
        return SqlQueryError(f"sql_source: {self.host} refused to {what} the query "
                             f"{first!r}: {msg}{hint}")

    # -- planning ---------------------------------------------------------------------------
    def _q(self, name: str) -> str:
        return str(self._engine().dialect.identifier_preparer.quote(name))

    def _ranges(self) -> list[_Range]:
        with self._shared.plan_lock:
            if self._shared.ranges is None:
                self._shared.ranges = self._plan()
            return self._shared.ranges

    def _plan(self) -> list[_Range]:
        """Key ranges of the partitions: equal widths between min and max of an integer key,
        ntile quantiles of any other; the first and last ranges are open-ended."""
        n, k = self.partitions_n, self._q(str(self.partition_on))
        if n == 1:
            return [_Range()]
        rows = self._scalar_rows(f"SELECT min({k}), max({k}) FROM ({self.query}\n) AS _sesa_q",
                                 self.params)
        lo, hi = rows[0] if rows else (None, None)
        if lo is None:
            return [_Range()] + [_Range(empty=True) for _ in range(n - 1)]
        if type(lo) is int and type(hi) is int:
            span = hi - lo + 1
            cuts = [lo + span * i // n for i in range(1, n)]
        else:
            rows = self._scalar_rows(
                f"SELECT min({k}) FROM (SELECT {k}, ntile({n}) OVER (ORDER BY {k}) AS _sesa_t "
                f"FROM ({self.query}\n) AS _sesa_q) AS _sesa_n GROUP BY _sesa_t ORDER BY _sesa_t",
                self.params)
            cuts = [r[0] for r in rows[1:]]
        out = []
        for i in range(n):
            if i > len(cuts):
                out.append(_Range(empty=True))
                continue
            lower = cuts[i - 1] if i > 0 else None
            upper = cuts[i] if i < len(cuts) else None
            out.append(_Range(lower, upper, empty=lower is not None and lower == upper))
        log_event("sql_partitions", logging.INFO, host=self.host, key=self.partition_on,
                  partitions=n, cuts=[repr(c) for c in cuts])
        return out

    def _sql(self, rng: _Range, after: Any) -> tuple[str, dict[str, Any]]:
        if self.partition_on is None:
            return self.query, dict(self.params)
        k = self._q(self.partition_on)
        where, params = [], dict(self.params)
        if after is not None:
            where.append(f"{k} > :_sesa_after")
            params["_sesa_after"] = after
        elif rng.lower is not None:
            where.append(f"{k} >= :_sesa_lower")
            params["_sesa_lower"] = rng.lower
        if rng.upper is not None:
            where.append(f"{k} < :_sesa_upper")
            params["_sesa_upper"] = rng.upper
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        return f"SELECT * FROM ({self.query}\n) AS _sesa_q{cond} ORDER BY {k}", params

    # -- reading ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._read()

    def _read(self) -> Iterator[dict[str, Any]]:
        # One generator level per record: chunks arrive as lists and are handed out by a list
        # iterator, whose length hint tells how far the consumer got (position, count).
        self._done, self._cur, self._key_before, self.fetches = 0, None, None, 0
        self._read_any = False
        parts = [self.part] if self.part is not None else list(range(self.partitions_n))
        try:
            ranges = self._ranges() if self.partition_on is not None else [_Range()]
            for i in parts:
                rng = ranges[i] if self.partition_on is not None else ranges[0]
                if rng.empty:
                    continue
                # a whole source read partition after partition resumes only the one it names
                after = self.after if self.part is not None or self.partitions_n == 1 \
                    else None
                for records, keys in self._read_range(rng, after):
                    self._finish_chunk()
                    it = iter(records)
                    self._cur = (len(records), it, keys)
                    yield from it
                self._finish_chunk()
        finally:
            self._finish_chunk()
            self.stats.add(n_out=self._done)

    def _finish_chunk(self) -> None:
        cur, self._cur = self._cur, None
        if cur is None:
            return
        n, it, keys = cur
        got = n - it.__length_hint__()
        self._done += got
        if keys is not None and got:
            self._key_before, self._read_any = keys[got - 1], True

    @property
    def _last_key(self) -> Any:
        cur = self._cur
        if cur is not None:
            n, it, keys = cur
            got = n - it.__length_hint__()
            if keys is not None and got:
                return keys[got - 1]
        return self._key_before

    def _read_range(self, rng: _Range, after: Any) -> Iterator[tuple[list[Any], Any]]:
        lost = 0
        self._fetched_key = None
        while True:
            dbapi = self._connect()
            try:
                yield from self._stream(dbapi, rng, after)
                return
            except SqlUnavailableError:
                # keyset: a lost connection resumes after the last key fetched, not from the top
                if self.partition_on is None or lost >= self.max_retries:
                    raise
                lost += 1
                self.stats.add(retries=1)
                if self._fetched_key is not None:
                    after = self._fetched_key
                log_event("sql_connection_lost", logging.WARNING, host=self.host,
                          resume_after=repr(after), attempt=lost)
            finally:
                self._close(dbapi)

    def _stream(self, dbapi: Any, rng: _Range, after: Any
                ) -> Iterator[tuple[list[dict[str, Any]], Any]]:
        sql, params = self._sql(rng, after)
        dialect = self._engine().dialect
        errors = dialect.loaded_dbapi.Error
        named = self.url.get_driver_name() in ("psycopg", "psycopg2")
        try:
            # a named cursor is a server-side cursor: rows arrive as they are fetched
            cur = dbapi.cursor(name=f"sesa_{uuid.uuid4().hex[:12]}") if named \
                else dbapi.cursor()
            if named and hasattr(cur, "itersize"):
                cur.itersize = self.chunk_size
            self._execute(cur, sql, params)
            desc = cur.description
        except errors as exc:
            raise self._db_error(exc, dbapi, "run") from None
        try:
            names = [d[0] for d in desc]
            key_at = None
            if self.partition_on is not None:
                if self.partition_on not in names:
                    raise SqlQueryError(f"sql_source: partition_on={self.partition_on!r} is "
                                        f"not a column of the query's result ({names})")
                key_at = names.index(self.partition_on)
            # SQLite types values, not columns: only a typed column can skip later checks
            mapper = RowMapper(names, static=self.url.get_backend_name() != "sqlite")
            fetch, size = cur.fetchmany, self.chunk_size
            while True:
                try:
                    rows = fetch(size)
                except errors as exc:
                    raise self._db_error(exc, dbapi, "read") from None
                if not rows:
                    return
                self.fetches += 1
                try:
                    records = mapper.records(rows)
                except TypeError as exc:  # a value without a record mapping
                    raise SqlQueryError(f"sql_source: {exc}") from exc
                if key_at is None:
                    yield records, None
                    continue
                keys = list(map(itemgetter(key_at), rows))
                self._fetched_key = keys[-1]
                yield records, keys
        finally:
            # if the connection is gone, the server dropped the cursor with it
            with contextlib.suppress(Exception):
                cur.close()


def sql_source(
    url: str | Any,
    query: str,
    params: Mapping[str, Any] | None = None,
    *,
    chunk_size: int = 5000,
    partition_on: str | None = None,
    partitions: int = 1,
    after: Any = None,
    password: str | Secret | None = None,
    max_retries: int = 5,
    retry_backoff: float = 0.5,
    connect_args: Mapping[str, Any] | None = None,
    connect_timeout: float = 10.0,
    start: Any = None,
) -> SqlSource:
    """Records of ``query`` (SQL with ``:name`` bound parameters from ``params``) on the
    database at ``url`` (SQLAlchemy 2: ``postgresql+psycopg://user@host/db``,
    ``sqlite:///path.db``; plain ``postgresql://`` means psycopg 3); nothing runs until
    iterated.

    Rows are fetched ``chunk_size`` at a time from a server-side cursor. ``partition_on``
    names a unique, non-null column of the result: the read is ordered by it, ``position``
    is the last key read, ``after=`` resumes after one, and ``partitions=N`` splits it into
    N key ranges (`partitions`, for `merge`). Connecting (``connect_timeout`` seconds per
    attempt on PostgreSQL) is retried ``max_retries`` times with exponential backoff, then
    `SqlUnavailableError` names the host. ``connect_args`` go to the driver's ``connect``.

    >>> src = sql_source("postgresql://etl:s3cret@db.example:5432/crm",
    ...                  "SELECT * FROM rfi WHERE day = :ds", {"ds": "2025-09-06"},
    ...                  partition_on="id", partitions=2)
    >>> src
    sql_source(url='postgresql+psycopg://etl:***@db.example:5432/crm', query='SELECT * FROM rfi WHERE day = :ds', params={'ds': '2025-09-06'}, partition_on='id', partitions=2)
    >>> src.partitions()[1].position is None, src.partition(1, after=41)
    (True, sql_source(url='postgresql+psycopg://etl:***@db.example:5432/crm', query='SELECT * FROM rfi WHERE day = :ds', params={'ds': '2025-09-06'}, partition_on='id', partitions=2).partition(1, after=41))
    >>> sql_source("sqlite:///x.db", "SELECT * FROM t WHERE day = :ds")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: sql_source: no value for bound parameter(s) :ds (pass params=...)
    """  # noqa: E501
    try:
        import sqlalchemy as sa
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("sql_source needs SQLAlchemy 2 and a driver: "
                          "pip install 'SQLAlchemy>=2' 'psycopg[binary]>=3.1'") from exc
    secret = to_secret(password)
    shown = mask_url(url) if isinstance(url, str) else repr(url)
    try:
        u = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError) as exc:
        raise ConfigError(f"sql_source: not a database URL: {shown!r}") from exc
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    try:
        u.get_dialect().import_dbapi()
    except ImportError as exc:
        raise ConfigError(f"sql_source: the driver for {u.drivername!r} is not installed "
                          f"({exc.name or exc}); for PostgreSQL: pip install "
                          "'psycopg[binary]>=3.1'") from exc
    except sa.exc.NoSuchModuleError as exc:
        raise ConfigError(f"sql_source: unknown database URL scheme {u.drivername!r}") from exc
    return SqlSource(url=u, password=secret, query=query, params=params, chunk_size=chunk_size,
                     partition_on=partition_on, partitions=partitions,
                     after=after if start is None else start, part=None,
                     max_retries=max_retries, retry_backoff=retry_backoff,
                     connect_args=connect_args, connect_timeout=connect_timeout)
