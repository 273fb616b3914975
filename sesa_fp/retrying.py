"""The retry policy every connector uses: exponential backoff with jitter (`backoff_wait`,
`backoff_delay`) and one tenacity loop around a call (`retry_call`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, TypeVar

import tenacity

__all__ = ["backoff_delay", "backoff_wait", "retry_call"]

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


def backoff_wait(base: float, cap: float = 30.0) -> tenacity.wait.wait_base:
    """Exponential backoff with jitter over the upper half, as a tenacity wait: attempt ``n``
    waits between half and all of ``min(cap, base * 2 ** (n - 1))`` (a fixed half plus
    tenacity's full-jitter half, so retries spread out but never fire at once).

    >>> import tenacity
    >>> wait = backoff_wait(0.5)
    >>> state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    >>> state.attempt_number = 3
    >>> 1.0 <= wait(state) <= 2.0
    True
    """
    half, half_cap = base / 2, cap / 2
    return (tenacity.wait_exponential(multiplier=half, max=half_cap)
            + tenacity.wait_random_exponential(multiplier=half, max=half_cap))


def backoff_delay(attempt: int, base: float, cap: float = 30.0) -> float:
    """Seconds to wait before retry ``attempt`` (1 = the first retry): `backoff_wait`'s
    value, for retry loops that are not a tenacity ``Retrying`` (per-item bulk retries).

    >>> 0.25 <= backoff_delay(1, 0.5) <= 0.5
    True
    >>> 15.0 <= backoff_delay(20, 0.5) <= 30.0
    True
    """
    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return float(backoff_wait(base, cap)(state))


def _always(exc: BaseException) -> bool:
    return True


def retry_call(
    fn: Callable[[], T],
    *,
    on: type[E] | tuple[type[E], ...],
    max_retries: int,
    wait: Callable[[tenacity.RetryCallState], float],
    give_up: Callable[[E, int], NoReturn],
    retryable: Callable[[E], bool] = _always,
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
) -> T:
    """``fn()``, called again after an error of type ``on`` (that ``retryable`` accepts) up to
    ``max_retries`` times, sleeping ``wait(state)`` seconds before each retry and calling
    ``before_sleep(state)`` first (count the retry, log it). An error of type ``on`` that
    ends the loop (retries used up, or not retryable) goes to ``give_up(error, attempts)``,
    which raises the caller's typed error (chained as the caller chooses); any other error
    propagates as it is.

    >>> calls = []
    >>> def flaky() -> str:
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionError("refused")
    ...     return "up"
    >>> def give_up(exc: ConnectionError, attempts: int) -> NoReturn:
    ...     raise RuntimeError(f"host down after {attempts} attempt(s): {exc}") from exc
    >>> retry_call(flaky, on=ConnectionError, max_retries=5, wait=backoff_wait(0.001),
    ...            give_up=give_up)
    'up'
    >>> len(calls)
    3
    >>> calls.clear()
    >>> retry_call(flaky, on=ConnectionError, max_retries=1, wait=backoff_wait(0.001),
    ...            give_up=give_up)
    Traceback (most recent call last):
    RuntimeError: host down after 2 attempt(s): refused
    """
    retry: tenacity.retry_base = tenacity.retry_if_exception_type(on)
    if retryable is not _always:
        retry = tenacity.retry_if_exception(lambda e: isinstance(e, on) and retryable(e))
    retrying = tenacity.Retrying(
        retry=retry,
        stop=tenacity.stop_after_attempt(max_retries + 1),
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )
    attempts = 0
    try:
        for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number
                return fn()
    except on as exc:
        give_up(exc, attempts)
    raise AssertionError("unreachable")  # pragma: no cover
