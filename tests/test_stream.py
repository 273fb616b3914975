"""Laws of the core combinators, checked with hypothesis, and their behaviour on early stop."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesa_fp import (
    ConservationError,
    DeadLetter,
    Failure,
    StageError,
    Success,
    batched,
    chain,
    map_concurrent,
    partition,
    pipe,
    run,
    stage,
    tee,
    unbatched,
)

ints = st.lists(st.integers(), max_size=200)


@given(ints, st.integers(min_value=1, max_value=50))
def test_unbatched_after_batched_is_identity(xs: list[int], n: int) -> None:
    batches = list(batched(n)(xs))
    assert all(1 <= len(b) <= n for b in batches)
    assert all(len(b) == n for b in batches[:-1])
    assert list(unbatched()(batches)) == xs


class Upstream:
    """Counts how many items were pulled, to measure what is in flight."""

    def __init__(self, xs: list[int]) -> None:
        self.xs = xs
        self.pulled = 0

    def __iter__(self) -> Any:
        for x in self.xs:
            self.pulled += 1
            yield x


@settings(max_examples=60, deadline=None)
@given(ints, st.integers(1, 6), st.integers(1, 10), st.booleans())
def test_map_concurrent_is_map_and_respects_window(
    xs: list[int], workers: int, window: int, ordered: bool
) -> None:
    up = Upstream(xs)
    stage_ = map_concurrent(lambda x: x * 3 + 1, workers=workers, window=window, ordered=ordered)
    out = []
    for y in stage_(up):
        out.append(y)
        # taken from upstream and not yet yielded never exceeds the window
        assert up.pulled - len(out) <= window
    expected = [x * 3 + 1 for x in xs]
    if ordered:
        assert out == expected
    else:
        assert Counter(out) == Counter(expected)
    assert stage_.max_in_flight_seen <= window  # type: ignore[attr-defined]


def test_map_concurrent_does_not_pull_while_window_full() -> None:
    release = threading.Event()
    up = Upstream(list(range(100)))

    def slow(x: int) -> int:
        release.wait(5)
        return x

    it = map_concurrent(slow, workers=2, window=3)(up)
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(next(it)))
    t.start()
    t.join(0.3)
    assert up.pulled == 3  # blocked on a full window: the producer is not pulled further
    release.set()
    t.join(5)
    assert got == [0]
    it.close()  # type: ignore[attr-defined]


def _live_workers() -> int:
    return sum(t.name.startswith("sesa-worker") for t in threading.enumerate())


class Res:
    opened: ClassVar[list[int]] = []
    closed: ClassVar[list[int]] = []

    def __init__(self) -> None:
        Res.opened.append(threading.get_ident())

    def close(self) -> None:
        Res.closed.append(threading.get_ident())


def _reset_res() -> None:
    Res.opened = []
    Res.closed = []


def test_setup_gives_each_worker_a_resource_closed_at_end() -> None:
    _reset_res()
    out = list(map_concurrent(lambda x, r: (x, type(r).__name__), workers=3, window=6,
                              setup=Res)(range(50)))
    assert out == [(x, "Res") for x in range(50)]
    assert len(Res.opened) == 3 and sorted(Res.opened) == sorted(Res.closed)
    assert _live_workers() == 0


def test_early_stop_leaves_no_threads_and_closes_resources() -> None:
    _reset_res()
    it = pipe(range(10_000), map_concurrent(lambda x, r: x, workers=4, window=8, setup=Res))
    gen = iter(it)
    assert [next(gen) for _ in range(10)] == list(range(10))
    gen.close()  # type: ignore[attr-defined]
    assert _live_workers() == 0
    assert sorted(Res.opened) == sorted(Res.closed) and len(Res.opened) == 4


def test_error_in_fn_names_the_stage_and_cleans_up() -> None:
    _reset_res()

    def boom(x: int, r: Res) -> int:
        if x == 7:
            raise KeyError("seven")
        return x

    with pytest.raises(StageError, match=r"map_concurrent\(boom.*KeyError"):
        list(map_concurrent(boom, workers=2, window=4, setup=Res)(range(100)))
    assert _live_workers() == 0
    assert sorted(Res.opened) == sorted(Res.closed)


def test_error_downstream_closes_workers() -> None:
    _reset_res()

    def explode(xs: Any) -> Any:
        for x in xs:
            if x == 20:
                raise RuntimeError("downstream")
            yield x

    with pytest.raises(RuntimeError, match="downstream"):
        list(pipe(range(100), map_concurrent(lambda x, r: x, workers=3, window=5, setup=Res),
                  explode))
    assert _live_workers() == 0
    assert sorted(Res.opened) == sorted(Res.closed)


def test_window_zero_rejected_when_built() -> None:
    with pytest.raises(ValueError, match="window"):
        map_concurrent(abs, workers=2, window=0)
    with pytest.raises(ValueError, match="workers"):
        map_concurrent(abs, workers=0, window=2)
    with pytest.raises(ValueError):
        batched(-1)


items = st.lists(
    st.one_of(st.integers().map(lambda i: {"v": i}),
              st.integers().map(lambda i: Failure(DeadLetter(
                  record={"v": i}, error_type="E", error_message="m", stage="s"))),
              st.integers().map(lambda i: Success({"v": i}))),
    max_size=100,
)


@given(items)
def test_partition_keeps_order_and_loses_nothing(xs: list[Any]) -> None:
    dead: list[DeadLetter] = []
    good = list(partition(dead.append)(xs))
    expect_good = [x.unwrap() if isinstance(x, Success) else x for x in xs
                   if not isinstance(x, Failure)]
    expect_dead = [x.failure() for x in xs if isinstance(x, Failure)]
    assert good == expect_good
    assert dead == expect_dead
    assert len(good) + len(dead) == len(xs)


class Boom(Exception):
    pass


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(["ok", "drop", "fail1", "fail2"]), max_size=150),
       st.integers(1, 4), st.integers(1, 5), st.integers(1, 9))
def test_conservation_for_any_mix_of_failures(kinds: list[str], workers: int, window: int,
                                              size: int) -> None:
    records = [{"i": i, "k": k} for i, k in enumerate(kinds)]

    def first(r: dict[str, Any]) -> dict[str, Any] | None:
        if r["k"] == "drop":
            return None
        if r["k"] == "fail1":
            raise Boom("first")
        return r

    def second(r: dict[str, Any]) -> dict[str, Any]:
        if r["k"] == "fail2":
            raise Boom("second")
        return {**r, "seen": True}

    dead: list[DeadLetter] = []
    seen: list[Any] = []
    report = run(pipe(records, tee(seen.append), batched(size),
                      map_concurrent(chain(stage(first), stage(second)), workers=workers,
                                     window=window), unbatched(), partition(dead.append)),
                 progress=False)
    c = Counter(kinds)
    assert report.read == len(records) == len(seen)
    assert report.dropped == c["drop"]
    assert report.dead_letters == c["fail1"] + c["fail2"] == len(dead)
    assert report.emitted == c["ok"] and report.loaded == 0 and not report.has_loader
    assert report.read == report.emitted + report.dropped + report.dead_letters
    assert sorted(d.record["i"] for d in dead) == [r["i"] for r in records
                                                  if r["k"] in ("fail1", "fail2")]
    assert {d.stage for d in dead} <= {"first", "second"}


def test_undeclared_exception_propagates_with_stage_name() -> None:
    def bad(r: Any) -> Any:
        raise ZeroDivisionError("nope")

    with pytest.raises(StageError, match="stage 'risky' failed: ZeroDivisionError: nope"):
        list(pipe([{}], stage(bad, name="risky", errors=(KeyError,))))


def test_declared_exception_becomes_dead_letter_with_context() -> None:
    out = list(pipe([{"a": 1}], stage(lambda r: r["b"], name="get_b", errors=(KeyError,))))
    dl = out[0].failure()
    assert (dl.stage, dl.error_type, dl.record) == ("get_b", "KeyError", {"a": 1})
    assert "lambda" in dl.traceback


def test_run_detects_a_stage_that_loses_records() -> None:
    def lossy(xs: Any) -> Any:
        for i, x in enumerate(xs):
            if i % 2 == 0:
                yield x

    with pytest.raises(ConservationError, match=r"read 4 != emitted 2"):
        run(pipe([{"a": 1}] * 4, lossy), progress=False)


def test_run_ids_reach_dead_letters_in_workers() -> None:
    dead: list[DeadLetter] = []
    report = run(pipe([{"x": "a"}], batched(1),
                      map_concurrent(chain(stage(lambda r: int(r["x"]))), workers=2),
                      unbatched(), partition(dead.append)), progress=False, run_id="R-1")
    assert report.run_id == "R-1" and dead[0].run_id == "R-1"


def test_pipe_is_lazy_and_prints() -> None:
    calls: list[int] = []
    p = pipe(range(3), stage(lambda r: calls.append(r) or r, name="record"), batched(2))
    assert calls == []
    assert repr(p) == "pipe(range(0, 3), stage(record), batched(2))"
    assert list(p) == [[0, 1], [2]] and calls == [0, 1, 2]


def test_tee_aborts_writer_on_error_and_commits_on_success() -> None:
    class W:
        def __init__(self) -> None:
            self.items: list[Any] = []
            self.state = "open"

        def write(self, x: Any) -> None:
            self.items.append(x)

        def commit(self) -> None:
            self.state = "committed"

        def abort(self) -> None:
            self.state = "aborted"

    w = W()
    assert list(pipe([1, 2], tee(w))) == [1, 2] and w.state == "committed"
    w2 = W()
    gen = iter(pipe([1, 2, 3], tee(w2)))
    next(gen)
    gen.close()  # type: ignore[attr-defined]
    assert w2.state == "aborted"
