"""The core combinators: pipe, batched, unbatched, map_concurrent, chain, tee, partition.

No I/O here. Every stage is a function ``Iterable -> Iterator``; nothing runs until the
result is consumed.
"""

from __future__ import annotations

import contextvars
import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import more_itertools
from returns.result import Failure, Success

from sesa_fp.errors import SesaError, StageError
from sesa_fp.result import DeadLetter
from sesa_fp.stats import Stage, StageStats

__all__ = [
    "Pipeline",
    "WorkerScope",
    "Writer",
    "batched",
    "chain",
    "map_concurrent",
    "merge",
    "partition",
    "pipe",
    "tee",
    "unbatched",
    "worker_scope",
]


@runtime_checkable
class Writer(Protocol):
    """Where `tee` and `partition` send items: written one by one, then committed or aborted."""

    def write(self, item: Any) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class _CallWriter:
    """Adapts a plain callable (``list.append``, ``print``) to the `Writer` protocol."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.write = fn

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def __repr__(self) -> str:
        return getattr(self.write, "__qualname__", repr(self.write))


def _as_writer(target: Any) -> Writer:
    if isinstance(target, Writer):
        return target
    if callable(target):
        return _CallWriter(target)
    raise TypeError(f"expected a Writer (write/commit/abort) or a callable, got {target!r}")


def _stats_of(obj: Any) -> Iterator[StageStats]:
    stats = getattr(obj, "stats", None)
    if isinstance(stats, StageStats):
        yield stats
    children = getattr(obj, "children", None)
    if callable(children):
        for child in children():
            yield from _stats_of(child)


class Pipeline:
    """A lazy composition made by `pipe`: iterate it to run it, print it to read it.

    >>> p = pipe([1, 2, 3], batched(2))
    >>> list(p)
    [[1, 2], [3]]
    >>> p
    pipe([1, 2, 3], batched(2))
    """

    def __init__(self, source: Iterable[Any], stages: tuple[Callable[..., Any], ...]) -> None:
        self.source = source
        self.stages = stages
        self.source_stats = StageStats(name=_short_repr(source), kind="source")

    def stats(self) -> list[StageStats]:
        """Counters of the source and of every stage, nested ones included, in order."""
        out = [self.source_stats, *_stats_of(self.source)]
        for st in self.stages:
            out.extend(_stats_of(st))
        return out

    def __iter__(self) -> Iterator[Any]:
        for s in self.stats():
            s.reset()
        its: list[Iterable[Any]] = [self._counted(self.source)]
        for st in self.stages:
            its.append(st(its[-1]))
        return self._drive(its)

    @staticmethod
    def _drive(its: list[Iterable[Any]]) -> Iterator[Any]:
        # Closing the pipeline closes every stage now, not when the garbage collector
        # gets to them: an itertools object between two generators would not pass it on.
        try:
            yield from its[-1]
        finally:
            for it in reversed(its):
                close = getattr(it, "close", None)
                if close is not None:
                    close()

    def _counted(self, source: Iterable[Any]) -> Iterator[Any]:
        n = 0
        try:
            for item in source:
                n += 1
                yield item
        finally:
            self.source_stats.add(n_out=n)

    def to_python(self) -> str:
        """The whole composition as Python source, one stage per line."""
        inner = "".join(f"    {p},\n" for p in [repr(self.source), *map(repr, self.stages)])
        return f"pipe(\n{inner})"

    def __repr__(self) -> str:
        parts = [_short_repr(self.source), *map(repr, self.stages)]
        one_line = f"pipe({', '.join(parts)})"
        if len(one_line) <= 88:
            return one_line
        inner = "".join(f"    {p},\n" for p in parts)
        return f"pipe(\n{inner})"


def _short_repr(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


def pipe(source: Iterable[Any], *stages: Callable[[Iterable[Any]], Iterable[Any]]) -> Pipeline:
    """Compose a source with stages, data first, like ``toolz.pipe``; lazy until iterated.

    >>> list(pipe(range(5), batched(2), unbatched()))
    [0, 1, 2, 3, 4]
    """
    for st in stages:
        if not callable(st):
            raise TypeError(f"pipe() stages must be callables, got {st!r}")
    if isinstance(source, Pipeline):
        return Pipeline(source.source, source.stages + tuple(stages))
    return Pipeline(source, tuple(stages))


class _Batched(Stage):
    kind = "batch"

    def __init__(self, n: int) -> None:
        super().__init__(f"batched({n})")
        self.n = n

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        return more_itertools.chunked(upstream, self.n)


def batched(n: int) -> Stage:
    """Group items into lists of ``n`` (the last may be shorter).

    >>> list(batched(2)([1, 2, 3]))
    [[1, 2], [3]]
    >>> batched(0)
    Traceback (most recent call last):
    ValueError: batched(n): n must be a positive int, got 0
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"batched(n): n must be a positive int, got {n!r}")
    return _Batched(n)


class _Unbatched(Stage):
    kind = "batch"

    def __init__(self) -> None:
        super().__init__("unbatched()")

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        return itertools.chain.from_iterable(upstream)


def unbatched() -> Stage:
    """Flatten a stream of batches.

    >>> list(unbatched()([[1, 2], [], [3]]))
    [1, 2, 3]
    """
    return _Unbatched()


class Chain:
    """Stages applied, in order, to one batch: ``chain(a, b)(batch) -> list``."""

    def __init__(self, stages: tuple[Callable[..., Any], ...]) -> None:
        self.stages = stages

    def __call__(self, batch: Iterable[Any]) -> list[Any]:
        it: Iterable[Any] = batch
        for st in self.stages:
            it = st(it)
        return list(it)

    def children(self) -> tuple[Any, ...]:
        return self.stages

    def __repr__(self) -> str:
        return f"chain({', '.join(map(repr, self.stages))})"


def chain(*stages: Callable[[Iterable[Any]], Iterable[Any]]) -> Chain:
    """A function from a batch to the list the stages make of it, for `map_concurrent`.

    >>> list(pipe([1, 2, 3], batched(2), map_concurrent(chain(lambda xs: (x * 10 for x in xs)),
    ...                                                 workers=2, window=2), unbatched()))
    [10, 20, 30]
    """
    return Chain(tuple(stages))


class WorkerScope:
    """Resources opened inside one worker thread, closed by that thread when it ends."""

    def __init__(self) -> None:
        self._resources: dict[Any, Any] = {}
        self._closers: list[Callable[[], Any]] = []

    def get(self, key: Any, opener: Callable[[], Any], closer: Callable[[Any], Any]) -> Any:
        """The resource under ``key``, opened on first use in this worker."""
        try:
            return self._resources[key]
        except KeyError:
            resource = opener()
            self._resources[key] = resource
            self._closers.append(lambda: closer(resource))
            return resource

    def close(self) -> None:
        """Close every resource, last opened first; raise the first error after trying all."""
        first: BaseException | None = None
        for closer in reversed(self._closers):
            try:
                closer()
            except BaseException as exc:
                first = first or exc
        self._closers.clear()
        self._resources.clear()
        if first is not None:
            raise first


_local = threading.local()


def worker_scope() -> WorkerScope | None:
    """The scope of the `map_concurrent` worker running this code, or None outside one."""
    return getattr(_local, "scope", None)


_STOP = object()


def _close_resource(resource: Any) -> None:
    close = getattr(resource, "close", None)
    if callable(close):
        close()


class _MapConcurrent(Stage):
    kind = "concurrent"

    def __init__(
        self,
        fn: Callable[..., Any],
        workers: int,
        window: int,
        ordered: bool,
        setup: Callable[[], Any] | None,
    ) -> None:
        name = getattr(fn, "__name__", None) or repr(fn)
        super().__init__(f"map_concurrent({name}, workers={workers}, window={window})")
        self.fn = fn
        self.workers = workers
        self.window = window
        self.ordered = ordered
        self.setup = setup
        self.max_in_flight_seen = 0

    def __repr__(self) -> str:
        extra = "" if self.ordered else ", ordered=False"
        extra += "" if self.setup is None else f", setup={self.setup!r}"
        return (
            f"map_concurrent({self.fn!r}, workers={self.workers}, window={self.window}{extra})"
        )

    def children(self) -> tuple[Any, ...]:
        return (self.fn,)

    def _work(self, tasks: queue.SimpleQueue[Any], results: queue.SimpleQueue[Any],
              stop: threading.Event, close_errors: list[BaseException]) -> None:
        scope = _local.scope = WorkerScope()
        resource: Any = None
        setup_error: BaseException | None = None
        if self.setup is not None:
            try:
                resource = self.setup()
            except BaseException as exc:
                setup_error = exc
        fn, with_resource = self.fn, self.setup is not None
        try:
            while True:
                task = tasks.get()
                if task is _STOP:
                    break
                seq, item = task
                if stop.is_set():
                    continue
                if setup_error is not None:
                    results.put((seq, False, setup_error))
                    continue
                try:
                    value = fn(item, resource) if with_resource else fn(item)
                except BaseException as exc:
                    results.put((seq, False, exc))
                    continue
                results.put((seq, True, value))
        finally:
            try:
                if setup_error is None and self.setup is not None:
                    _close_resource(resource)
                scope.close()
            except BaseException as exc:
                close_errors.append(exc)
            _local.scope = None

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        stop = threading.Event()
        close_errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=contextvars.copy_context().run,
                args=(self._work, tasks, results, stop, close_errors),
                name=f"sesa-worker-{i}",
                daemon=True,
            )
            for i in range(self.workers)
        ]
        for t in threads:
            t.start()
        it = iter(upstream)
        window, ordered = self.window, self.ordered
        in_flight = n_in = n_out = 0
        seq_next = seq_yield = 0
        done: dict[int, Any] = {}
        exhausted = finished = False
        try:
            while True:
                while not exhausted and in_flight < window:
                    try:
                        item = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    if type(item) is Failure:
                        results.put((seq_next, True, item))  # dead letters skip the workers
                    else:
                        tasks.put((seq_next, item))
                    seq_next += 1
                    in_flight += 1
                    n_in += 1
                    if in_flight > self.max_in_flight_seen:
                        self.max_in_flight_seen = in_flight
                if in_flight == 0:
                    break
                seq, ok, value = results.get()
                if not ok:
                    raise StageError(
                        f"{self.name} failed: {type(value).__name__}: {value}"
                    ) from value
                if not ordered:
                    in_flight -= 1
                    n_out += 1
                    yield value
                    continue
                done[seq] = value
                while seq_yield in done:
                    value = done.pop(seq_yield)
                    seq_yield += 1
                    in_flight -= 1
                    n_out += 1
                    yield value
            finished = True
        finally:
            stop.set()
            for _ in threads:
                tasks.put(_STOP)
            for t in threads:
                t.join()
            self.stats.add(n_in=n_in, n_out=n_out)
        if finished and close_errors:
            raise StageError(f"{self.name}: closing a worker resource failed") from close_errors[0]


def map_concurrent(
    fn: Callable[..., Any],
    *,
    workers: int,
    window: int | None = None,
    ordered: bool = True,
    setup: Callable[[], Any] | None = None,
) -> Stage:
    """Map ``fn`` over items on ``workers`` threads with at most ``window`` items taken from
    upstream and not yet yielded (backpressure). ``ordered=False`` yields as completed.
    ``setup()`` makes one resource per worker, passed as ``fn(item, resource)`` and closed
    (``.close()``) by that worker when the stream ends, fails or is abandoned. Dead letters
    (``Failure``) pass by without reaching ``fn``.

    >>> list(pipe(range(6), map_concurrent(lambda x: x * x, workers=3, window=4)))
    [0, 1, 4, 9, 16, 25]
    >>> map_concurrent(abs, workers=2, window=0)
    Traceback (most recent call last):
    ValueError: map_concurrent: window must be a positive int, got 0
    """
    if not callable(fn):
        raise TypeError(f"map_concurrent: fn must be callable, got {fn!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"map_concurrent: workers must be a positive int, got {workers!r}")
    window = workers * 2 if window is None else window
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"map_concurrent: window must be a positive int, got {window!r}")
    if setup is not None and not callable(setup):
        raise TypeError(f"map_concurrent: setup must be callable, got {setup!r}")
    return _MapConcurrent(fn, workers, window, ordered, setup)


class _Tee(Stage):
    kind = "tee"

    def __init__(self, writer: Writer) -> None:
        super().__init__(f"tee({writer!r})")
        self.writer = writer

    def children(self) -> tuple[Any, ...]:
        return (self.writer,)

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        write = self.writer.write
        n_in = failed = 0
        try:
            for item in upstream:
                n_in += 1
                t = type(item)
                if t is Failure:
                    yield item
                    continue
                record = item._inner_value if t is Success else item
                try:
                    write(record)
                except (TypeError, ValueError) as exc:  # the record cannot be encoded
                    failed += 1
                    yield Failure(DeadLetter.from_exception(record, exc, stage=self.name))
                    continue
                yield item
        except BaseException:
            self.writer.abort()
            raise
        finally:
            self.stats.add(n_in=n_in, n_out=n_in, failed=failed)
        self.writer.commit()


def tee(writer: Writer | Callable[[Any], Any]) -> Stage:
    """Pass items on unchanged and write each record to ``writer`` (staging); the writer is
    committed when the stream ends and aborted if it fails or is abandoned.

    >>> seen = []
    >>> list(pipe([1, 2], tee(seen.append))), seen
    ([1, 2], [1, 2])
    """
    return _Tee(_as_writer(writer))


class _Partition(Stage):
    kind = "partition"

    def __init__(self, dlq: Writer) -> None:
        super().__init__(f"partition({dlq!r})")
        self.dlq = dlq

    def children(self) -> tuple[Any, ...]:
        return (self.dlq,)

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        write = self.dlq.write
        n_in = sent = 0
        try:
            for item in upstream:
                n_in += 1
                t = type(item)
                if t is Failure:
                    write(item.failure())
                    sent += 1
                    continue
                yield item._inner_value if t is Success else item
        except BaseException:
            self.dlq.abort()
            raise
        finally:
            self.stats.add(n_in=n_in, n_out=n_in - sent, failed=sent)
        self.dlq.commit()


def partition(dlq: Writer | Callable[[Any], Any]) -> Stage:
    """Pass good records on unwrapped, in order; send each ``Failure``'s dead letter to ``dlq``.

    >>> dead = []
    >>> list(pipe([{"a": 1}, Failure("oops"), Success({"b": 2})], partition(dead.append))), dead
    ([{'a': 1}, {'b': 2}], ['oops'])
    """
    return _Partition(_as_writer(dlq))


_DONE = object()


class Merge:
    """Several sources read at once, one thread each, into one stream (see `merge`)."""

    def __init__(self, sources: tuple[Iterable[Any], ...], window: int) -> None:
        self.sources = sources
        self.window = window

    def __repr__(self) -> str:
        extra = "" if self.window == 1000 else f", window={self.window}"
        return f"merge({', '.join(map(repr, self.sources))}{extra})"

    def children(self) -> tuple[Any, ...]:
        return self.sources

    def __iter__(self) -> Iterator[Any]:
        return self._read()

    @staticmethod
    def _drain(source: Iterable[Any], q: queue.Queue[Any], stop: threading.Event) -> None:
        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)  # wakes to notice a consumer that stopped
                    return True
                except queue.Full:
                    continue
            return False

        it = iter(source)
        try:
            for item in it:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:
            put((_DONE, exc, source))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a generator is closed by the thread that ran it

    def _read(self) -> Iterator[Any]:
        q: queue.Queue[Any] = queue.Queue(maxsize=self.window)
        stop = threading.Event()
        threads = [
            threading.Thread(target=contextvars.copy_context().run,
                             args=(self._drain, src, q, stop), name=f"sesa-merge-{i}",
                             daemon=True)
            for i, src in enumerate(self.sources)
        ]
        for t in threads:
            t.start()
        try:
            running = len(threads)
            while running:
                item = q.get()
                if item is _DONE:
                    running -= 1
                elif type(item) is tuple and len(item) == 3 and item[0] is _DONE:
                    _, exc, source = item
                    if isinstance(exc, SesaError):
                        raise exc  # already typed and named (an unreachable host, ...)
                    raise StageError(f"merge: source {source!r} failed: "
                                     f"{type(exc).__name__}: {exc}") from exc
                else:
                    yield item
        finally:
            stop.set()
            for t in threads:
                t.join()


def merge(*sources: Iterable[Any], window: int = 1000) -> Merge:
    """Read ``sources`` concurrently (a thread each) into one stream: the partitions of a
    sliced extraction, several files. Each source's order is kept; their interleaving is not
    fixed. At most ``window`` items wait in between (backpressure); stopping early or an
    error in any source stops and closes them all.

    >>> sorted(merge(range(3), range(10, 12)))
    [0, 1, 2, 10, 11]
    """
    if not sources:
        raise ValueError("merge() needs at least one source")
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"merge: window must be a positive int, got {window!r}")
    return Merge(sources, window)
