"""Adaptive bulk concurrency (AIMD) on a real node with a tiny write queue: everything arrives,
429s are retried, the limit stays within its bounds and comes down after 429s."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesa_fp import ConfigError, pipe, run
from sesa_fp.loaders.search import load_es
from sesa_fp.result import DeadLetter
from sesa_fp.search.adaptive import AdaptiveLimit
from sesa_fp.stream import partition


@pytest.mark.integration
def test_adaptive_concurrency_backs_off_on_429_and_loads_everything(
        tiny_queue_search: Any, search_admin_at: Any) -> None:
    admin = search_admin_at(tiny_queue_search.url)
    target = admin.new_index("aimd", number_of_shards=3)
    n = 20_000
    dead: list[DeadLetter] = []
    loader = load_es(hosts=[tiny_queue_search.url], dataset=target,
                     id_strategy={"type": "field", "field": "k"}, actions_per_batch=250,
                     concurrency=6, max_concurrency=8, max_retries=12, retry_backoff=0.1)
    records = [{"k": f"k{i}", "n": i} for i in range(n)]
    report = run(pipe(records, loader, partition(dead.append)), progress=False)
    assert dead == []
    assert (report.read, report.loaded, report.dead_letters) == (n, n, 0)
    assert admin.count(target) == n
    assert report.retries > 0  # the queue did reject items, and they were sent again
    out = next(o for o in report.outputs if o.get("kind") == "search")
    conc = out["concurrency"]
    limits = [c for _, c in conc["timeline"]]
    assert limits[0] == 6 and all(1 <= c <= 8 for c in limits)
    assert conc["throttled_requests"] > 0 and conc["decreases"] > 0
    assert out["throttled_items"] >= conc["throttled_requests"]
    # after the first 429 the limit went below where it started
    assert conc["min_seen"] < 6
    lat = out["bulk_latency"]
    assert lat["count"] >= n // 250 and lat["buckets"]["+Inf"] == lat["count"]
    admin.drop(target)


def test_max_concurrency_below_concurrency_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_concurrency"):
        load_es(dataset="x", concurrency=4, max_concurrency=2)


@settings(max_examples=50, deadline=None)
@given(start=st.integers(1, 8), extra=st.integers(0, 8),
       answers=st.lists(st.tuples(st.booleans(), st.floats(0.001, 5.0)), max_size=200))
def test_limit_stays_in_bounds_and_halves_on_429(start: int, extra: int,
                                                 answers: list[tuple[bool, float]]) -> None:
    lim = AdaptiveLimit(start, start + extra)
    for throttled, latency in answers:
        before = lim.limit
        with lim.slot() as s:
            s.throttled, s.latency = throttled, latency
        assert 1 <= lim.limit <= start + extra
        if throttled:
            assert lim.limit in (before, max(1, before // 2))
        else:
            assert lim.limit in (before, before + 1)
    assert lim.in_flight == 0
    assert lim.timeline[0][1] == start
