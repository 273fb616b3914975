"""`retry_call`: what it retries, how often, and what reaches ``give_up``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import pytest
import tenacity

from sesa_fp.retrying import backoff_delay, backoff_wait, retry_call
from sesa_fp.search.base import backoff_delay as base_backoff_delay
from sesa_fp.search.base import backoff_wait as base_backoff_wait


class Flaky(Exception):
    def __init__(self, n: int, retryable: bool = True) -> None:
        super().__init__(f"failure {n}")
        self.n, self.retryable = n, retryable


class GaveUp(Exception):
    pass


def failing(times: int, *, retryable: bool = True,
            then: object = "ok") -> tuple[Callable[[], object], list[int]]:
    calls: list[int] = []

    def fn() -> object:
        calls.append(1)
        if len(calls) <= times:
            raise Flaky(len(calls), retryable)
        return then

    return fn, calls


def give_up(exc: Flaky, attempts: int) -> NoReturn:
    raise GaveUp(f"{exc} after {attempts}") from exc


def call(fn: Callable[[], object], **kw: Any) -> tuple[object, list[int]]:
    slept: list[int] = []
    kw.setdefault("max_retries", 3)
    value = retry_call(fn, on=Flaky, wait=tenacity.wait_none(), give_up=give_up,
                       before_sleep=lambda s: slept.append(s.attempt_number), **kw)
    return value, slept


def test_retries_until_success_and_reports_each_retry() -> None:
    fn, calls = failing(2)
    assert call(fn) == ("ok", [1, 2])
    assert len(calls) == 3


def test_gives_up_after_max_retries_with_the_last_error_and_attempts() -> None:
    fn, calls = failing(10)
    with pytest.raises(GaveUp, match=r"^failure 4 after 4$") as info:
        call(fn)
    assert len(calls) == 4
    assert isinstance(info.value.__cause__, Flaky)


def test_not_retryable_gives_up_at_once() -> None:
    fn, calls = failing(10, retryable=False)
    with pytest.raises(GaveUp, match=r"^failure 1 after 1$"):
        call(fn, retryable=lambda e: e.retryable)
    assert len(calls) == 1


def test_other_errors_propagate_unchanged_without_retry() -> None:
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        raise KeyError("k")

    with pytest.raises(KeyError):
        call(fn)
    assert calls == [1]


def test_zero_retries_is_one_attempt() -> None:
    fn, calls = failing(1)
    with pytest.raises(GaveUp, match=r"after 1$"):
        call(fn, max_retries=0)
    assert len(calls) == 1


def test_backoff_still_importable_from_search_base() -> None:
    assert base_backoff_wait is backoff_wait
    assert base_backoff_delay is backoff_delay
