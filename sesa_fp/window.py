"""The bounded window under `map_concurrent`: at most ``window`` items taken from upstream and
not yet yielded, results in input order (or as completed), dead letters passed by. Threads
(`sesa_fp.concurrency`) and processes (`sesa_fp.processes`) share it; each brings its own
way to start an item and its own cleanup."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, Protocol

from returns.result import Failure

__all__ = ["bounded_window"]


class _Peak(Protocol):
    max_in_flight_seen: int


def bounded_window(
    it: Iterator[Any],
    *,
    window: int,
    ordered: bool,
    submit: Callable[[tuple[int, Any]], object],
    results: queue.SimpleQueue[Any],
    fail: Callable[[BaseException], NoReturn],
    counts: list[int],
    peak: _Peak,
    receive: Callable[[Any], Any] | None = None,
) -> Iterator[Any]:
    """Pull up to ``window`` items from ``it``, ``submit((seq, item))`` each (a ``Failure``
    goes straight to ``results`` instead), and yield results as workers put
    ``(seq, ok, value)`` on ``results``: in ``seq`` order, or as completed when not
    ``ordered``. ``it`` is not pulled while the window is full (backpressure). A result with
    ``ok`` false goes to ``fail(error)``, which raises; ``receive(value)``, when given, maps
    each value taken (dead letters included) before it is ordered. ``counts`` becomes
    ``[items taken, items yielded]`` when the generator ends, however it ends (the caller
    adds them to its stats after its own cleanup); ``peak.max_in_flight_seen`` is kept up.

    >>> import queue, types
    >>> from returns.result import Failure
    >>> results = queue.SimpleQueue()
    >>> def submit(task):  # a "worker" that answers at once
    ...     seq, item = task
    ...     results.put((seq, True, item * 10))
    >>> def fail(exc):
    ...     raise exc
    >>> counts, peak = [0, 0], types.SimpleNamespace(max_in_flight_seen=0)
    >>> list(bounded_window(iter([1, Failure("bad"), 3]), window=2, ordered=True,
    ...                     submit=submit, results=results, fail=fail, counts=counts,
    ...                     peak=peak))
    [10, <Failure: bad>, 30]
    >>> counts, peak.max_in_flight_seen
    ([3, 3], 2)
    """
    put, get = results.put, results.get
    in_flight = n_in = n_out = 0
    seq_next = seq_yield = 0
    done: dict[int, Any] = {}
    exhausted = False
    try:
        while True:
            while not exhausted and in_flight < window:
                try:
                    item = next(it)
                except StopIteration:
                    exhausted = True
                    break
                if type(item) is Failure:
                    put((seq_next, True, item))  # dead letters skip workers
                else:
                    submit((seq_next, item))
                seq_next += 1
                in_flight += 1
                n_in += 1
                if in_flight > peak.max_in_flight_seen:
                    peak.max_in_flight_seen = in_flight
            if in_flight == 0:
                break
            seq, ok, value = get()
            if not ok:
                fail(value)
            if receive is not None:
                value = receive(value)
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
    finally:
        counts[:] = [n_in, n_out]
