"""The `Stage` base: a named, printable `Iterable -> Iterator` with counters for the report.

Also the walk over a composition (`walk`, `stats_of`) that the report and the build-time
checks share, and the guard that keeps a sink to one stream at a time.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import attrs

from sesa_fp.errors import ConfigError

__all__ = ["LATENCY_BUCKETS", "Latencies", "Stage", "StageStats", "refuse_sinks", "run_scope",
           "stats_of", "walk"]

_scope: contextvars.ContextVar[object | None] = contextvars.ContextVar("sesa_run_scope",
                                                                        default=None)


@contextlib.contextmanager
def run_scope() -> Iterator[None]:
    """One run (`run` opens it): a sink entered a second time inside it is refused, since it
    would commit once per batch (a sink hidden in a closure under `map_concurrent`).

    >>> with run_scope():
    ...     pass
    """
    token = _scope.set(object())
    try:
        yield
    finally:
        _scope.reset(token)


@attrs.define
class StageStats:
    """Counters one stage keeps; updated once per generator (not per record), thread-safe.

    ``n_in = n_out + dropped`` for a record stage; ``failed`` counts dead letters the stage
    made; ``committed`` counts what a sink's target acknowledged or a writer committed.
    """

    name: str
    kind: str = "stage"
    n_in: int = 0
    n_out: int = 0
    dropped: int = 0
    failed: int = 0
    committed: int = 0
    retries: int = 0
    bytes: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def add(self, **counts: int) -> None:
        """Add counts atomically (stages run in worker threads too)."""
        with self._lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def reset(self) -> None:
        """Zero every counter (a pipeline resets its stages when iterated again)."""
        with self._lock:
            self.n_in = self.n_out = self.dropped = self.failed = 0
            self.committed = self.retries = self.bytes = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict, for the report."""
        return {
            "name": self.name,
            "kind": self.kind,
            "in": self.n_in,
            "out": self.n_out,
            "dropped": self.dropped,
            "failed": self.failed,
            "committed": self.committed,
            "retries": self.retries,
            "bytes": self.bytes,
        }


class Stage:
    """Base of the stages sesa_fp builds: call it on an iterable to get a lazy iterator.

    Subclasses implement ``_iter``; ``children`` lists stages nested inside (a concurrent
    chain, a writer) so a report can walk the whole composition. A stage with ``sink = True``
    (a loader, `tee`, `partition`) commits once per stream: `pipe` places it only at the top
    level, and `exclusive` refuses a second stream while one is running through it.
    """

    kind = "stage"
    sink: ClassVar[bool] = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = StageStats(name=name, kind=self.kind)
        self._busy = threading.Lock()
        self._entered_in: object | None = None

    def __call__(self, upstream: Iterable[Any]) -> Iterator[Any]:
        return self._iter(upstream)

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        raise NotImplementedError

    def children(self) -> tuple[Any, ...]:
        """Stages or writers nested inside this one."""
        return ()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold this sink for one stream; a second stream at the same time is refused."""
        if not self._busy.acquire(blocking=False):
            raise ConfigError(
                f"{self.name} is already running in another stream: a sink commits once per "
                "stream, so make one per pipeline (call the factory again), or close the "
                "earlier iteration (it.close())"
            )
        scope = _scope.get()
        if scope is not None and self._entered_in is scope:
            self._busy.release()
            raise ConfigError(
                f"{self.name} was entered twice in one run, so it would commit once per batch "
                "(is it called inside a function given to map_concurrent?); put it in "
                "pipe(...) itself, after unbatched()"
            )
        self._entered_in = scope
        try:
            yield
        finally:
            self._busy.release()

    def __repr__(self) -> str:
        return self.name


def walk(obj: Any) -> Iterator[Any]:
    """``obj`` and everything nested in it (``children()``), depth first, in order.

    >>> class Box(Stage):
    ...     def children(self): return (Stage("inner"),)
    >>> [repr(s) for s in walk(Box("outer"))]
    ['outer', 'inner']
    """
    yield obj
    children = getattr(obj, "children", None)
    if callable(children):
        for child in children():
            yield from walk(child)


def stats_of(obj: Any) -> Iterator[StageStats]:
    """The counters of ``obj`` and of everything nested in it, in order.

    >>> class Box(Stage):
    ...     def children(self): return (Stage("inner"),)
    >>> [s.name for s in stats_of(Box("outer"))]
    ['outer', 'inner']
    """
    for node in walk(obj):
        stats = getattr(node, "stats", None)
        if isinstance(stats, StageStats):
            yield stats


def refuse_sinks(fn: Any, where: str) -> None:
    """Raise `ConfigError` if ``fn`` is or holds a sink, which cannot run ``where``.

    >>> class Sink(Stage):
    ...     sink = True
    >>> refuse_sinks(Sink("load_x"), "inside chain()")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: load_x is a sink (it commits once per stream) and cannot run inside chain(), ...
    """  # noqa: E501
    for node in walk(fn):
        if getattr(node, "sink", False):
            raise ConfigError(
                f"{node!r} is a sink (it commits once per stream) and cannot run {where}, where "
                "it would run once per batch; put it in pipe(...) after unbatched(), e.g. "
                "pipe(source, batched(n), map_concurrent(chain(...)), unbatched(), <sink>)"
            )


#: upper bounds (seconds) of the latency buckets, Prometheus' own defaults widened to 60 s
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Latencies:
    """A thread-safe latency histogram (cumulative buckets, count, sum) a loader keeps per
    request, shown in its report output and exported as a Prometheus histogram.

    >>> h = Latencies(); h.observe(0.02); h.observe(3.0)
    >>> d = h.as_dict(); d["count"], d["sum"], d["buckets"]["0.025"], d["buckets"]["+Inf"]
    (2, 3.02, 1, 2)
    """

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        """Count one request that took ``seconds``."""
        i = next((i for i, b in enumerate(self.bounds) if seconds <= b), len(self.bounds))
        with self._lock:
            self._counts[i] += 1
            self._sum += seconds

    def reset(self) -> None:
        """Forget every observation (a loader starts each stream afresh)."""
        with self._lock:
            self._counts = [0] * (len(self.bounds) + 1)
            self._sum = 0.0

    def as_dict(self) -> dict[str, Any]:
        """``{"count", "sum", "buckets": {upper bound: cumulative count, ..., "+Inf": n}}``."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        buckets: dict[str, int] = {}
        running = 0
        for bound, n in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
            running += n
            buckets[bound] = running
        return {"count": running, "sum": round(total, 6), "buckets": buckets}
