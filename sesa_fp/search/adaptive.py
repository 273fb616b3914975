"""Adaptive concurrency for bulk requests: additive increase, multiplicative decrease (AIMD).

The limit starts at ``start`` and moves within ``[1, maximum]``: every ``limit`` requests
answered without a 429 and without latency rising above ``latency_factor`` times the
fastest seen add one; a request with any 429 (an item or the whole request) halves it, at most
once per ``cooldown`` requests so that the answers of one crowded moment count once. Every
change is kept with its time since the start, for the report.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from sesa_fp.errors import ConfigError

__all__ = ["AdaptiveLimit"]


class AdaptiveLimit:
    """A concurrency limit that follows the engine's answers.

    >>> lim = AdaptiveLimit(2, 8)
    >>> for _ in range(2):
    ...     with lim.slot() as s:
    ...         s.latency = 0.01
    >>> lim.limit
    3
    >>> with lim.slot() as s:
    ...     s.throttled = True
    >>> lim.limit, [c for _, c in lim.timeline]
    (1, [2, 3, 1])
    """

    def __init__(self, start: int, maximum: int, *, latency_factor: float = 2.0) -> None:
        if not 1 <= start <= maximum:
            raise ConfigError(f"adaptive concurrency: need 1 <= concurrency <= "
                              f"max_concurrency, got {start} and {maximum}")
        self.start = start
        self.maximum = maximum
        self.latency_factor = latency_factor
        self.limit = start
        self.in_flight = 0
        self.decreases = 0
        self.throttled = 0  # requests with a 429
        self._t0 = time.monotonic()
        self.timeline: list[tuple[float, int]] = [(0.0, start)]
        self._good = 0  # good answers since the last change
        self._since_cut = start  # requests answered since the last decrease
        self._fastest: float | None = None
        self._cond = threading.Condition()

    def _set(self, value: int) -> None:
        self.limit = value
        self._good = 0
        self.timeline.append((round(time.monotonic() - self._t0, 3), value))
        self._cond.notify_all()

    @contextlib.contextmanager
    def slot(self) -> Iterator[_Outcome]:
        """Wait for room under the limit, hold it for one request; the caller sets
        ``throttled`` (any 429 in the answer) and ``latency`` on the yielded outcome."""
        with self._cond:
            while self.in_flight >= self.limit:
                self._cond.wait()
            self.in_flight += 1
        outcome = _Outcome()
        t0 = time.perf_counter()
        try:
            yield outcome
        finally:
            latency = outcome.latency if outcome.latency is not None \
                else time.perf_counter() - t0
            with self._cond:
                self.in_flight -= 1
                self._answered(outcome.throttled, latency)
                self._cond.notify()

    def _answered(self, throttled: bool, latency: float) -> None:
        self._since_cut += 1
        if throttled:
            self.throttled += 1
            if self._since_cut >= self.limit:  # one cut per round of requests
                self._since_cut = 0
                self.decreases += 1
                self._set(max(1, self.limit // 2))
            return
        if self._fastest is None or latency < self._fastest:
            self._fastest = latency
        if latency > self.latency_factor * self._fastest + 0.05:
            return  # the engine is slowing down: hold, do not push harder
        self._good += 1
        if self._good >= self.limit and self.limit < self.maximum:
            self._set(self.limit + 1)

    def describe(self) -> dict[str, Any]:
        """For the report: bounds, the limit over time, how often it was cut."""
        return {"start": self.start, "max": self.maximum, "final": self.limit,
                "min_seen": min(c for _, c in self.timeline),
                "max_seen": max(c for _, c in self.timeline),
                "decreases": self.decreases, "throttled_requests": self.throttled,
                "timeline": list(self.timeline)}


class _Outcome:
    __slots__ = ("latency", "throttled")

    def __init__(self) -> None:
        self.throttled = False
        self.latency: float | None = None
