"""`load_sql` on PostgreSQL with one target table: records streamed into an open ``COPY``.

Each batch is one transaction with a ``COPY`` straight into the table open while its records
are read: the server parses and inserts them meanwhile, and nothing waits for a whole batch to
be collected. When a batch is full its ``COPY`` is ended and committed by the loader's one
worker thread while the next batch's records are read (and kept until the connection is free
again, then written), so the client reads while the server finishes; a batch's results are
yielded once its COMMIT has returned, in input order. At most two batches are held.

A batch that cannot go this way (an upsert after a conflict, an array key) or that fails (bad
data, a unique violation, a lost connection: rolled back, or a COMMIT in doubt that did not
commit) is written again from its records by the collected path (`SqlLoader._load_chunk`:
probe and MERGE, bisection, retries), in the same worker thread.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from returns.result import Failure, Success

from sesa_fp.errors import RecordError
from sesa_fp.loaders.sql_errors import SqlLoadError, _Disconnected
from sesa_fp.loaders.sql_table import _Table
from sesa_fp.result import DeadLetter

if TYPE_CHECKING:
    from sesa_fp.loaders.sql import SqlLoader


class _CopyStream:
    """One batch's transaction with a ``COPY`` into the table open: rows are written as the
    records are read, and the server parses and inserts them meanwhile. ``error`` is the
    first write that failed (the batch is then aborted and written the collected way)."""

    __slots__ = ("_get", "_plain", "copy", "error", "info", "loader", "ncols", "stack", "write",
                 "xid")

    def __init__(self, loader: SqlLoader, info: _Table, statement: str) -> None:
        self.loader = loader
        self.info = info
        self.error: BaseException | None = None
        cur = loader._conn.cursor()
        self.xid = cur.execute("SELECT txid_current()").fetchone()[0]
        self.stack = contextlib.ExitStack()
        self.copy = self.stack.enter_context(cur.copy(statement))
        self.write = self.copy.write_row
        cols = info.columns
        self.ncols = len(cols)
        self._plain = not info.convert
        # all of a record's fields at C speed; a record lacking some takes rec.get
        self._get = operator.itemgetter(*cols) if len(cols) > 1 else \
            (lambda rec, _c=cols[0]: (rec[_c],))

    def put(self, rec: Any) -> DeadLetter | None:
        """Writes ``rec``'s row; its dead letter when it cannot be a row of the table."""
        info = self.info
        row: Any = None
        if self._plain and type(rec) is dict:
            try:
                row = self._get(rec)
            except KeyError:
                row = None
            if row is None or len(rec) != self.ncols:
                # a field missing is NULL; a field the table lacks: the dead letter below
                row = list(map(rec.get, info.columns)) if rec.keys() <= info.colset else None
        if row is None:
            try:
                row = self.loader._row(rec, info)
            except (RecordError, TypeError, ValueError) as exc:
                return DeadLetter.from_exception(rec, exc, stage=self.loader.name,
                                                 target=info.name)
        try:
            self.write(row)
        except Exception as exc:  # a value psycopg cannot write: bisected the collected way
            self.error = exc
        return None

    def close(self) -> None:
        """Ends the ``COPY``: the server's verdict on the batch's data is raised here."""
        self.stack.close()

    def abort(self) -> None:
        """Ends the ``COPY`` with a failure (nothing is written)."""
        exc = self.error or RuntimeError("batch aborted")
        with contextlib.suppress(BaseException):
            self.stack.__exit__(type(exc), exc, exc.__traceback__)


#: records are written into a batch's COPY this many at a time (and, while the last batch is
#: still ending, kept that many at a time before looking whether the connection is free)
CHUNK = 256


class _Batch:
    """One batch: its items in input order (records unwrapped, failures as they are), how
    many are records to write and how many of those became dead letters on the way in, the
    ``COPY`` they go into (None: not open yet, or collected once ``opened``), whether the
    worker has it (``handed``) and is done with it (``ended``)."""

    __slots__ = ("dead", "ended", "good", "handed", "opened", "out", "stream")

    def __init__(self) -> None:
        self.out: list[Any] = []
        self.good = 0
        self.dead = 0
        self.stream: _CopyStream | None = None
        self.opened = False
        self.handed = False
        self.ended = False


def iter_streamed(loader: SqlLoader, upstream: Iterable[Any],
                  counts: list[int]) -> Iterator[Any]:
    """The stage's items for one static table on PostgreSQL (see the module docstring);
    ``counts`` is ``[read, emitted, dead letters]``: a batch's items and dead letters are
    counted as it is yielded."""
    it = iter(upstream)
    name = loader.table.template
    size = loader.batch_size
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load_sql")
    # the batch whose COPY the worker is ending and committing, and its future (the number
    # of its dead letters found on the collected path)
    ending: tuple[_Batch, Future[int]] | None = None
    batch = _Batch()
    pending: list[int] = []  # places in batch.out of the records not written yet

    def settled() -> Iterator[Any]:
        nonlocal ending
        if ending is not None:
            done, fut = ending
            dead = fut.result()  # the worker is done with the connection
            ending = None
            counts[2] += done.dead + dead
            counts[1] += len(done.out)
            yield from done.out

    def flush(wait: bool) -> Iterator[Any]:
        """Writes the pending records into the batch's COPY, opening it (after yielding the
        last batch) once the worker is done with the connection; while it is not, and not
        ``wait``, they stay pending."""
        if not pending:
            return
        if not batch.opened:
            if ending is not None and not ending[0].ended and not wait:
                return
            yield from settled()
            batch.opened = True
            batch.stream = loader._open_stream(name, batch.out[pending[0]])
        _write(batch, pending)
        pending.clear()

    try:
        while True:
            batch = _Batch()
            out = batch.out
            passed = 0  # failures passed through
            limit = CHUNK  # flush when this many are pending (again CHUNK later if kept)
            for item in itertools.islice(it, size):
                t = type(item)
                if t is Failure:
                    out.append(item)
                    passed += 1
                    continue
                out.append(item.unwrap() if t is Success else item)
                pending.append(len(out) - 1)
                if len(pending) >= limit:
                    yield from flush(False)
                    limit = len(pending) + CHUNK
            if not out:
                break
            counts[0] += len(out)
            yield from flush(True)
            yield from settled()
            batch.good = len(out) - passed - batch.dead
            batch.handed = True  # from here on only the worker touches its COPY
            ending = (batch, pool.submit(_end, loader, batch, name))
        yield from settled()
    except Exception:
        # upstream failed: the batch being read commits nothing; the one ending is kept
        # (and yielded) once it is settled
        _abandon(loader, batch, ending)
        yield from settled()
        raise
    except BaseException:  # the run stopped (closed early, interrupted): nothing yielded
        _abandon(loader, batch, ending)
        raise
    finally:
        # the worker may still hold the connection (a stop while a batch was ending, or
        # during the hand-over): the loader closes it only after this
        pool.shutdown(wait=True)


def _write(batch: _Batch, idx: list[int]) -> None:
    """Writes the records at ``idx`` of ``batch.out`` into its COPY: the common record
    (a dict with every column and no other field) straight, the rest the careful way
    (`_CopyStream.put`). Stops at the first write that fails (the batch is then collected)."""
    stream = batch.stream
    if stream is None or stream.error is not None:
        return
    out = batch.out
    plain, get, write, ncols = stream._plain, stream._get, stream.write, stream.ncols
    for i in idx:
        rec = out[i]
        if plain and type(rec) is dict:
            try:
                row = get(rec)
            except KeyError:
                row = None
            if row is not None and len(rec) == ncols:
                try:
                    write(row)
                except Exception as exc:  # the collected path says which record
                    stream.error = exc
                    return
                continue
        dead = stream.put(rec)
        if dead is not None:
            out[i] = Failure(dead)
            batch.dead += 1
        elif stream.error is not None:
            return


def _abandon(loader: SqlLoader, batch: _Batch,
             ending: tuple[_Batch, Future[int]] | None) -> None:
    """The run stopped while ``batch`` was read: the batch ending in the worker finishes
    first (committed or not, and counted so by the loader's stats), then ``batch``'s COPY
    (open only once the batch before it was settled) is aborted, unless the worker has it.
    A second interrupt while waiting is not held back (the pool is still waited for)."""
    if ending is not None:
        with contextlib.suppress(Exception):
            ending[1].result()
    if batch.stream is not None and not batch.handed:
        loader._abort_stream(batch.stream)


def _end(loader: SqlLoader, batch: _Batch, name: str) -> int:
    """In the worker: ends and commits ``batch``'s COPY, or writes it the collected way;
    the number of dead letters that found (they replace their records in ``batch.out``)."""
    try:
        if not batch.good:
            if batch.stream is not None:
                loader._abort_stream(batch.stream)
            return 0
        if batch.stream is not None and loader._finish_stream(batch.stream):
            loader.stats.add(committed=batch.good)
            loader.last_counts[name] = loader.last_counts.get(name, 0) + batch.good
            return 0
        idx = [i for i, item in enumerate(batch.out) if type(item) is not Failure]
        return loader._load_chunk(batch.out, {name: idx})
    finally:
        batch.ended = True


def open_stream(loader: SqlLoader, name: str, first: Any) -> _CopyStream | None:
    """A transaction with a ``COPY`` straight into ``name`` open, for the batch that
    starts with ``first``; None when the batch must be collected first (an upsert after
    a conflict is probed and MERGEd; an array key is never COPYed straight)."""

    def open_() -> _CopyStream | None:
        try:
            loader._connect()
            info = loader._table(name, first)
            if loader.mode == "upsert":
                if info.direct is None or not info.optimistic:
                    return None
                return _CopyStream(loader, info, info.direct)
            return _CopyStream(loader, info, info.copy)
        except (_Disconnected, SqlLoadError):
            raise
        except Exception as exc:
            if loader._is_disconnect(exc):
                loader._drop_connection()
                raise _Disconnected(exc) from exc
            if loader._conn is None or loader._tables.get(name) is None:
                raise
            # the COPY itself was refused: the collected path says why
            with contextlib.suppress(Exception):
                loader._conn.rollback()
            return None

    stream: _CopyStream | None = loader._with_retries(open_, f"load into {name!r}")
    return stream


def abort_stream(loader: SqlLoader, stream: _CopyStream) -> None:
    """Ends ``stream``'s COPY with a failure and rolls its transaction back."""
    stream.abort()
    conn = loader._conn
    if conn is None or conn.broken or conn.closed:
        loader._drop_connection()
        return
    with contextlib.suppress(Exception):  # a failure here is a lost connection
        conn.rollback()
    if conn.broken:
        loader._drop_connection()


def finish_stream(loader: SqlLoader, stream: _CopyStream) -> bool:
    """Ends the ``COPY`` and commits: True when the batch committed. False after a data
    error, a unique violation or a lost connection (rolled back, or a COMMIT in doubt
    that did not commit): the batch is then written by the collected path."""
    import psycopg

    if stream.error is not None:
        loader._abort_stream(stream)
        return False
    committing = False
    try:
        stream.close()
        committing = True
        loader._conn.commit()
        return True
    except Exception as exc:
        if loader._is_disconnect(exc):
            loader._drop_connection()
            return committing and loader._committed_after_all(stream.xid)
        with contextlib.suppress(Exception):
            loader._conn.rollback()
        if isinstance(exc, psycopg.errors.UniqueViolation) and loader.mode == "upsert":
            stream.info.optimistic = False  # some keys exist: probe and MERGE for now
        return False
