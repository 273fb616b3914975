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

import more_itertools
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


#: records are read (and written into a batch's COPY) this many at a time; while the last
#: batch is still ending they are kept, and whether the connection is free is looked at
#: once per chunk
CHUNK = 256

_DICTS = {dict}


class _Batch:
    """One batch: its items in input order, in chunks (records unwrapped, failures as they
    are), how many items, how many are records to write and how many of those became dead
    letters on the way in, the ``COPY`` they go into (None: not open yet, or collected once
    ``opened``), whether the worker has it (``handed``) and is done with it (``ended``)."""

    __slots__ = ("chunks", "dead", "ended", "good", "handed", "n", "opened", "stream")

    def __init__(self) -> None:
        self.chunks: list[list[Any]] = []
        self.n = 0
        self.good = 0
        self.dead = 0
        self.stream: _CopyStream | None = None
        self.opened = False
        self.handed = False
        self.ended = False


class _Chunk:
    """Up to `CHUNK` items read in a row, with how many are failures passed through and
    whether every item is a plain dict (the common case, written without a look at each)."""

    __slots__ = ("failures", "items", "plain")

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.failures = 0
        self.plain = set(map(type, items)) == _DICTS
        if not self.plain:
            for j, item in enumerate(items):
                t = type(item)
                if t is Failure:
                    self.failures += 1
                elif t is Success:
                    items[j] = item.unwrap()
            self.plain = not self.failures and set(map(type, items)) == _DICTS

    def first(self) -> Any:
        """The first record (the chunk has one)."""
        return next(x for x in self.items if type(x) is not Failure)


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
    pending: list[_Chunk] = []  # chunks with records not written yet

    def settled() -> list[list[Any]]:
        """The chunks of the batch the worker ended, once it is done with the connection
        (counted); [] when there is none."""
        nonlocal ending
        if ending is None:
            return []
        done, fut = ending
        dead = fut.result()
        ending = None
        counts[2] += done.dead + dead
        counts[1] += done.n
        return done.chunks

    def write_pending() -> None:
        """Writes the pending chunks into the batch's COPY, opened first if it is not (the
        batch before it settled and yielded: the connection is free)."""
        if not batch.opened:
            batch.opened = True
            batch.stream = loader._open_stream(name, pending[0].first())
        for c in pending:
            _write(batch, c)
        pending.clear()

    try:
        while True:
            batch = _Batch()
            chunks = batch.chunks
            left = size
            while left > 0:
                items = list(itertools.islice(it, min(CHUNK, left)))
                if not items:
                    break
                left -= len(items)
                chunk = _Chunk(items)
                chunks.append(items)
                batch.n += len(items)
                batch.good -= chunk.failures  # (plus the records, once the batch is read)
                if chunk.failures == len(items):
                    continue
                pending.append(chunk)
                if not batch.opened:
                    if ending is not None and not ending[0].ended:
                        continue  # the worker still has the connection: kept for now
                    for done in settled():
                        yield from done
                write_pending()
            if not chunks:
                break
            counts[0] += batch.n
            if pending:  # the worker was still ending the last batch: wait for it
                for done in settled():
                    yield from done
                write_pending()
            for done in settled():
                yield from done
            batch.good += batch.n - batch.dead
            batch.handed = True  # from here on only the worker touches its COPY
            ending = (batch, pool.submit(_end, loader, batch, name))
        for done in settled():
            yield from done
    except Exception:
        # upstream failed: the batch being read commits nothing; the one ending is kept
        # (and yielded) once it is settled
        _abandon(loader, batch, ending)
        for done in settled():
            yield from done
        raise
    except BaseException:  # the run stopped (closed early, interrupted): nothing yielded
        _abandon(loader, batch, ending)
        raise
    finally:
        # the worker may still hold the connection (a stop while a batch was ending, or
        # during the hand-over): the loader closes it only after this
        pool.shutdown(wait=True)


def _write(batch: _Batch, chunk: _Chunk) -> None:
    """Writes ``chunk``'s records into the batch's COPY: a chunk of plain dicts with every
    column and no other field at once, any other record the careful way
    (`_CopyStream.put`: a dead letter replaces it). Stops at the first write that fails (the
    batch is then collected)."""
    stream = batch.stream
    if stream is None or stream.error is not None:
        return
    items = chunk.items
    if chunk.plain and stream._plain and set(map(len, items)) == {stream.ncols}:
        try:
            rows = list(map(stream._get, items))
        except KeyError:  # some record lacks a column: the careful way below
            pass
        else:
            try:
                more_itertools.consume(map(stream.write, rows))
            except Exception as exc:  # the collected path says which record
                stream.error = exc
            return
    for j, rec in enumerate(items):
        if type(rec) is Failure:
            continue
        dead = stream.put(rec)
        if dead is not None:
            items[j] = Failure(dead)
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
    the number of dead letters that found (they replace their records in its chunks)."""
    try:
        if not batch.good:
            if batch.stream is not None:
                loader._abort_stream(batch.stream)
            return 0
        if batch.stream is not None and loader._finish_stream(batch.stream):
            loader._committed(name, batch.good)
            return 0
        out = list(itertools.chain.from_iterable(batch.chunks))
        batch.chunks[:] = [out]
        idx = [i for i, item in enumerate(out) if type(item) is not Failure]
        return loader._load_chunk(out, {name: idx})
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
