"""Stopping a run from outside: SIGTERM (how Airflow, Kubernetes and systemd stop a task) and
Ctrl-C end a run the same way.

The signal raises `Interrupted` in the thread draining the stream, so the stream unwinds
as it does for any error: points in time are closed, uncommitted staging parts removed,
committed parts and dead letters kept, and the exception carries the partial report.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any

from sesa_fp.stream import Pipeline

__all__ = ["Interrupted", "exit_code", "stop_on_signals", "stoppable"]


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (a `KeyboardInterrupt`, so nothing catches it as an error).

    >>> str(Interrupted(signal.SIGTERM))
    'interrupted by SIGTERM'
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def exit_code(exc: BaseException) -> int:
    """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).

    >>> exit_code(Interrupted(signal.SIGTERM)), exit_code(KeyboardInterrupt())
    (143, 130)
    """
    return 128 + (exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals(*signums: int) -> Iterator[None]:
    """Within the block, each of ``signums`` (default SIGTERM and SIGINT) raises
    `Interrupted`; the previous handlers come back after it. Outside the main thread,
    where Python cannot set handlers, it does nothing.

    >>> with stop_on_signals():
    ...     signal.getsignal(signal.SIGTERM) is _raise
    True
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = signums or (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, _raise) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _StopCheck:
    """The first stage of a `stoppable` pipeline: raises `Interrupted` once ``event`` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, upstream: Iterable[Any]) -> Iterator[Any]:
        is_set = self.event.is_set
        for item in upstream:
            if is_set():
                raise Interrupted(signal.SIGTERM)
            yield item

    def __repr__(self) -> str:
        return "stop_check()"


def stoppable(pipeline: Pipeline, event: threading.Event) -> Pipeline:
    """``pipeline`` that stops, as SIGTERM would, before the next record once ``event`` is
    set from another thread (an Airflow operator's ``on_kill``).

    >>> from sesa_fp import pipe
    >>> stop = threading.Event()
    >>> list(stoppable(pipe([1, 2]), stop))
    [1, 2]
    >>> stop.set()
    >>> try:
    ...     list(stoppable(pipe([1, 2]), stop))
    ... except Interrupted as exc:  # a KeyboardInterrupt: caught by name only
    ...     print(exc)
    interrupted by SIGTERM
    """
    return Pipeline(pipeline.source, (_StopCheck(event), *pipeline.stages))
