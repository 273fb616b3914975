"""`map_concurrent(..., processes=True)`: the same bounded window over a pool of worker
processes, for CPU-bound transforms the GIL would hold to one core.

The pool is Python's own `concurrent.futures.ProcessPoolExecutor`, started with
``forkserver`` (``spawn`` where there is none): never a fork of this process and its threads
(a pipeline runs several); a new pool forks from a server that has sesa_fp imported. Each
worker process receives the function once, pickled by `sesa_fp.pickling` (so a closure or a
notebook function travels), runs ``setup()`` once, and closes that resource when the pool
shuts down (a failure to close is logged by the worker).
The counters the function's nested stages keep (dropped, failed...) are sent back with each
result and added to the stages in this process, so the run report counts work done in the
workers.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.util
import queue
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

from returns.result import Failure

from sesa_fp.errors import SesaError, StageError
from sesa_fp.pickling import check_picklable, loads
from sesa_fp.stats import Stage, StageStats, stats_of
from sesa_fp.window import bounded_window

__all__ = ["ProcessMap"]

_COUNTERS = ("n_in", "n_out", "dropped", "failed", "committed", "retries", "bytes")


# -- inside a worker process ---------------------------------------------------------------
class _Worker:
    fn: Any = None
    resource: Any = None
    with_resource = False
    setup_error: BaseException | None = None
    stats: list[StageStats] = []  # noqa: RUF012 (one worker per process)


def _close_worker() -> None:
    from sesa_fp.concurrency import _close_resource, _local
    from sesa_fp.logs import log_event

    try:
        if _Worker.with_resource:
            _close_resource(_Worker.resource)
        scope = getattr(_local, "scope", None)
        if scope is not None:
            scope.close()
    except Exception as exc:  # no caller left to raise to: the pool is shutting down
        log_event("worker_close_failed", error=f"{type(exc).__name__}: {exc}")


def _init_worker(payload: bytes, run_id: str | None) -> None:
    from sesa_fp.concurrency import WorkerScope, _local
    from sesa_fp.result import _run_id

    # Ctrl-C reaches the whole process group: the parent stops the run and shuts the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if run_id is not None:
        _run_id.set(run_id)
    fn, setup = loads(payload)
    _Worker.fn = fn
    _Worker.stats = list(stats_of(fn))
    _local.scope = WorkerScope()
    if setup is not None:
        try:
            _Worker.resource = setup()
            _Worker.with_resource = True
        except Exception as exc:  # raised by each call, as on threads
            _Worker.setup_error = exc
    multiprocessing.util.Finalize(None, _close_worker, exitpriority=10)


def _call(item: Any) -> tuple[Any, list[tuple[int, tuple[int, ...]]]]:
    if _Worker.setup_error is not None:
        raise _Worker.setup_error
    stats = _Worker.stats
    before = [tuple(getattr(s, c) for c in _COUNTERS) for s in stats]
    fn = _Worker.fn
    value = fn(item, _Worker.resource) if _Worker.with_resource else fn(item)
    deltas = []
    for i, s in enumerate(stats):
        now = tuple(getattr(s, c) for c in _COUNTERS)
        if now != before[i]:
            deltas.append((i, tuple(a - b for a, b in zip(now, before[i], strict=True))))
    return value, deltas


# -- in the process that drives the stream ----------------------------------------------------
def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sesa_fp"])
        return ctx
    return multiprocessing.get_context("spawn")


class ProcessMap(Stage):
    """The stage `map_concurrent` returns with ``processes=True``."""

    kind = "concurrent"

    def __init__(self, fn: Callable[..., Any], workers: int, window: int, ordered: bool,
                 setup: Callable[[], Any] | None) -> None:
        name = getattr(fn, "__name__", None) or repr(fn)
        super().__init__(f"map_concurrent({name}, workers={workers}, window={window}, "
                         "processes=True)")
        self.fn = fn
        self.workers = workers
        self.window = window
        self.ordered = ordered
        self.setup = setup
        self.max_in_flight_seen = 0
        check_picklable((fn, setup), "map_concurrent(processes=True): the function")

    def __repr__(self) -> str:
        extra = "" if self.ordered else ", ordered=False"
        extra += "" if self.setup is None else f", setup={self.setup!r}"
        return (f"map_concurrent({self.fn!r}, workers={self.workers}, window={self.window}"
                f"{extra}, processes=True)")

    def children(self) -> tuple[Any, ...]:
        return (self.fn,)

    def _fail(self, exc: BaseException) -> NoReturn:
        if isinstance(exc, SesaError):
            raise exc
        if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
            raise StageError(f"{self.name}: a worker process died ({exc}); the run stops "
                             "here") from exc
        raise StageError(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        from sesa_fp.result import current_run_id

        payload = check_picklable((self.fn, self.setup),
                                  "map_concurrent(processes=True): the function")
        local_stats = list(stats_of(self.fn))
        results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=_context(),
            initializer=_init_worker, initargs=(payload, current_run_id()))
        futures: set[concurrent.futures.Future[Any]] = set()
        it = iter(upstream)
        counts = [0, 0]

        def deliver(seq: int) -> Callable[[concurrent.futures.Future[Any]], None]:
            def callback(fut: concurrent.futures.Future[Any]) -> None:
                futures.discard(fut)
                if fut.cancelled():
                    return
                exc = fut.exception()
                results.put((seq, False, exc) if exc is not None else (seq, True, fut.result()))
            return callback

        def submit(task: tuple[int, Any]) -> None:
            seq, item = task
            fut = pool.submit(_call, item)
            futures.add(fut)
            fut.add_done_callback(deliver(seq))

        def receive(value: Any) -> Any:
            if type(value) is Failure:
                return value  # a dead letter passed by: no worker, no counters
            value, deltas = value
            for i, delta in deltas:
                local_stats[i].add(**dict(zip(_COUNTERS, delta, strict=True)))
            return value

        try:
            yield from bounded_window(it, window=self.window, ordered=self.ordered,
                                      submit=submit, results=results, fail=self._fail,
                                      counts=counts, peak=self, receive=receive)
        finally:
            for fut in list(futures):
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            self.stats.add(n_in=counts[0], n_out=counts[1])
