"""Threads with a bounded window: `map_concurrent` (workers over one stream) and `merge`
(one reader per source into one stream).

Both are built on `_ThreadGroup`: threads started with the caller's context (so the run id
travels), a stop event they watch, and a join when the consumer finishes, fails or walks
away — so no thread outlives the stream and nothing more than the window is ever pulled.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

from sesa_fp.errors import ConfigError, SesaError, StageError
from sesa_fp.stats import Stage, refuse_sinks
from sesa_fp.window import bounded_window

__all__ = ["Merge", "WorkerScope", "map_concurrent", "merge", "worker_scope"]


class _ThreadGroup:
    """Threads running ``target(*args, stop)`` each, in copies of the caller's context."""

    def __init__(self, name: str, target: Callable[..., None], args: list[tuple[Any, ...]]):
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=contextvars.copy_context().run,
                             args=(target, *a, self.stop), name=f"{name}-{i}", daemon=True)
            for i, a in enumerate(args)
        ]

    def __enter__(self) -> _ThreadGroup:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()

    def join(self) -> None:
        """Wait for every thread (after ``stop`` is set or their work ran out)."""
        for t in self.threads:
            t.join()


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
              close_errors: list[BaseException], stop: threading.Event) -> None:
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

    def _fail(self, exc: BaseException) -> NoReturn:
        if isinstance(exc, SesaError):
            raise exc  # already typed and named (an unreachable host...)
        raise StageError(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        close_errors: list[BaseException] = []
        group = _ThreadGroup("sesa-worker", self._work,
                             [(tasks, results, close_errors)] * self.workers)
        it = iter(upstream)
        counts = [0, 0]
        finished = False
        try:
            with group:
                yield from bounded_window(it, window=self.window,
                                          ordered=self.ordered, submit=tasks.put,
                                          results=results, fail=self._fail, counts=counts,
                                          peak=self)
                finished = True
        finally:
            for _ in group.threads:
                tasks.put(_STOP)
            group.join()
            self.stats.add(n_in=counts[0], n_out=counts[1])
        if finished and close_errors:
            raise StageError(f"{self.name}: closing a worker resource failed") from close_errors[0]


def map_concurrent(
    fn: Callable[..., Any],
    *,
    workers: int,
    window: int | None = None,
    ordered: bool = True,
    setup: Callable[[], Any] | None = None,
    processes: bool = False,
) -> Stage:
    """Map ``fn`` over items on ``workers`` threads with at most ``window`` items taken from
    upstream and not yet yielded (backpressure). ``ordered=False`` yields as completed.
    ``setup()`` makes one resource per worker, passed as ``fn(item, resource)`` and closed
    (``.close()``) by that worker when the stream ends, fails or is abandoned. Dead letters
    (``Failure``) pass by without reaching ``fn``. Sinks (loaders, `tee`, `partition`) are
    refused inside ``fn``: they belong in `pipe` itself.

    ``processes=True`` runs ``fn`` in a pool of ``workers`` processes instead (CPU-bound
    work), with the same window, order and dead-letter behaviour; ``fn`` and ``setup`` must
    pickle (checked now, with the reason if not), ``setup()`` runs once per process, and the
    counters of stages inside ``fn`` are sent back to this process.

    >>> from sesa_fp import pipe
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
    refuse_sinks(fn, "inside map_concurrent")
    if processes:  # CPU-bound work: the same window over worker processes (see processes.py)
        from sesa_fp.processes import ProcessMap

        return ProcessMap(fn, workers, window, ordered, setup)
    return _MapConcurrent(fn, workers, window, ordered, setup)


_DONE = object()


class _At:
    """An item on its way through a merge's queue, with its source's position after it."""

    __slots__ = ("i", "item", "pos")

    def __init__(self, i: int, pos: Any, item: Any) -> None:
        self.i, self.pos, self.item = i, pos, item


class Merge:
    """Several sources read at once, one thread each, into one stream (see `merge`).

    When every source has a position (`sesa_fp.position`), so has the merge: the list of
    their positions as of the last item it yielded, items waiting in its queue not counted.
    """

    def __init__(self, sources: tuple[Iterable[Any], ...], window: int) -> None:
        from sesa_fp.position import resumable

        self.sources = sources
        self.window = window
        self.counts = [0] * len(sources)  # items read from each source (last iteration)
        self._lock = threading.Lock()
        self.resumable = all(resumable(s) for s in sources)
        self._pos: list[Any] = [getattr(s, "position", None) for s in sources] \
            if self.resumable else []

    @property
    def position(self) -> list[Any] | None:
        """Each source's position after the last item this merge yielded (None when a
        source has none)."""
        return list(self._pos) if self.resumable else None

    def resume(self, start: list[Any]) -> Merge:
        """The same merge, each source resumed from its entry of ``start``."""
        if not isinstance(start, list) or len(start) != len(self.sources):
            raise ConfigError(f"merge: start={start!r} is not a position of "
                              f"{len(self.sources)} sources")
        return Merge(tuple(s if p is None else s.resume(p)  # type: ignore[attr-defined]
                           for s, p in zip(self.sources, start, strict=True)), self.window)

    def __repr__(self) -> str:
        extra = "" if self.window == 1000 else f", window={self.window}"
        return f"merge({', '.join(map(repr, self.sources))}{extra})"

    def children(self) -> tuple[Any, ...]:
        return self.sources

    def __iter__(self) -> Iterator[Any]:
        return self._read()

    def _drain(self, i: int, q: queue.Queue[Any], stop: threading.Event) -> None:
        source = self.sources[i]

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)  # wakes to notice a consumer that stopped
                    return True
                except queue.Full:
                    continue
            return False

        it = iter(source)
        n = 0
        try:
            if self.resumable:
                pos_of = type(source).position.fget  # type: ignore[attr-defined]
                for item in it:
                    n += 1
                    if not put(_At(i, pos_of(source), item)):
                        return
            else:
                for item in it:
                    n += 1
                    if not put(item):
                        return
            put(_DONE)
        except BaseException as exc:
            put((_DONE, exc, source))
        finally:
            with self._lock:
                self.counts[i] += n
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a generator is closed by the thread that ran it

    def _read(self) -> Iterator[Any]:
        q: queue.Queue[Any] = queue.Queue(maxsize=self.window)
        self.counts = [0] * len(self.sources)
        if self.resumable:
            self._pos = [getattr(s, "position", None) for s in self.sources]
        group = _ThreadGroup("sesa-merge", self._drain,
                             [(i, q) for i in range(len(self.sources))])
        try:
            with group:
                running = len(group.threads)
                while running:
                    item = q.get()
                    if type(item) is _At:
                        self._pos[item.i] = item.pos
                        yield item.item
                    elif item is _DONE:
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
            group.join()


def merge(*sources: Iterable[Any], window: int = 1000) -> Merge:
    """Read ``sources`` concurrently (a thread each) into one stream: the partitions of a
    sliced extraction, several files. Each source's order is kept; their interleaving is not
    fixed. At most ``window`` items wait in between (backpressure); stopping early or an
    error in any source stops and closes them all. A source may be a `pipe` of its own
    (transforms per partition), but without sinks: those go after the merge.

    >>> sorted(merge(range(3), range(10, 12)))
    [0, 1, 2, 10, 11]
    """
    if not sources:
        raise ValueError("merge() needs at least one source")
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"merge: window must be a positive int, got {window!r}")
    for src in sources:
        refuse_sinks(src, "inside a merged source")
    return Merge(sources, window)
