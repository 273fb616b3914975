"""The `Stage` base: a named, printable `Iterable -> Iterator` with counters for the report."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

__all__ = ["Stage", "StageStats"]


@attrs.define
class StageStats:
    """Counters one stage keeps; updated once per generator (not per record), thread-safe.

    ``n_in = n_out + dropped`` for a record stage; ``failed`` counts dead letters the stage made.
    """

    name: str
    kind: str = "stage"
    n_in: int = 0
    n_out: int = 0
    dropped: int = 0
    failed: int = 0
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
            self.n_in = self.n_out = self.dropped = self.failed = self.retries = self.bytes = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict, for the report."""
        return {
            "name": self.name,
            "kind": self.kind,
            "in": self.n_in,
            "out": self.n_out,
            "dropped": self.dropped,
            "failed": self.failed,
            "retries": self.retries,
            "bytes": self.bytes,
        }


class Stage:
    """Base of the stages sesa_fp builds: call it on an iterable to get a lazy iterator.

    Subclasses implement ``_iter``; ``children`` lists stages nested inside (a concurrent
    chain, a writer) so a report can walk the whole composition.
    """

    kind = "stage"

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = StageStats(name=name, kind=self.kind)

    def __call__(self, upstream: Iterable[Any]) -> Iterator[Any]:
        return self._iter(upstream)

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        raise NotImplementedError

    def children(self) -> tuple[Any, ...]:
        """Stages or writers nested inside this one."""
        return ()

    def __repr__(self) -> str:
        return self.name
