"""`load_es` under faults, on private OpenSearch nodes: back-pressure (429), oversized bulk
requests (413), the engine stopped and started mid-load, stopped beyond the retries (the load
stops naming the host), an unreachable host."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sesa_fp import pipe, run
from sesa_fp.loaders.search import load_es
from sesa_fp.result import DeadLetter
from sesa_fp.search import SearchUnavailableError
from sesa_fp.stream import partition

pytestmark = pytest.mark.integration


def _records(n: int, pad: int = 0) -> list[dict[str, Any]]:
    return [{"k": f"k{i}", "n": i, "text": f"record {i} " + "x" * pad} for i in range(n)]


def _ids(admin: Any, index: str) -> set[str]:
    return set(admin.docs(index))


def test_back_pressure_429_is_retried_until_everything_arrives(tiny_queue_search: Any,
                                                               search_admin_at: Any) -> None:
    admin = search_admin_at(tiny_queue_search.url)
    target = admin.new_index("bp", number_of_shards=3)
    n = 30_000
    dead: list[DeadLetter] = []
    loader = load_es(hosts=[tiny_queue_search.url], dataset=target,
                     id_strategy={"type": "field", "field": "k"}, actions_per_batch=250,
                     concurrency=8, max_retries=12, retry_backoff=0.1)
    report = run(pipe(_records(n), loader, partition(dead.append)), progress=False)
    assert dead == []
    assert (report.read, report.loaded, report.dead_letters) == (n, n, 0)
    assert report.retries > 0 and loader.stats.retries == report.retries
    assert admin.count(target) == n
    admin.drop(target)


def test_request_too_large_413_is_split_in_halves(tiny_queue_search: Any,
                                                 search_admin_at: Any) -> None:
    admin = search_admin_at(tiny_queue_search.url)
    target = admin.new_index("split")
    n = 1_200
    loader = load_es(hosts=[tiny_queue_search.url], dataset=target,
                     id_strategy={"type": "field", "field": "k"}, actions_per_batch=1_000,
                     max_bytes_mb=1.0, concurrency=1, max_retries=12, retry_backoff=0.1)
    report = run(pipe(_records(n, pad=900), loader), progress=False)  # ~1 MB > 256 kb limit
    assert (report.loaded, report.dead_letters) == (n, 0)
    assert loader.splits > 0
    assert admin.count(target) == n
    admin.drop(target)


def _stop_and_restart_after(node: Any, records: list[dict[str, Any]], at: int,
                            down_s: float, events: list[str]) -> Iterator[dict[str, Any]]:
    """Yields ``records``; after ``at`` of them a thread stops the node, waits ``down_s``
    and starts it again (its data survives)."""

    def bounce() -> None:
        node.stop()
        events.append("stopped")
        threading.Event().wait(down_s)
        node.start()
        events.append("started")

    thread = threading.Thread(target=bounce)
    for i, rec in enumerate(records):
        if i == at:
            thread.start()
            threading.Event().wait(0.5)  # let the stop begin while batches are in flight
        yield rec
    if thread.is_alive():
        thread.join(180)


@pytest.fixture(scope="module")
def bounce_node(search_node_factory: Any) -> Any:
    """A private node the tests below stop and start again."""
    return search_node_factory()


def test_engine_stopped_and_started_mid_load_completes_after_retries(
        bounce_node: Any, search_admin_at: Any) -> None:
    node = bounce_node
    admin = search_admin_at(node.url)
    target = admin.new_index("bounce")
    records = _records(20_000)
    events: list[str] = []
    dead: list[DeadLetter] = []
    loader = load_es(hosts=[node.url], dataset=target, id_strategy={"type": "field",
                                                                   "field": "k"},
                     actions_per_batch=200, concurrency=2, max_retries=12, retry_backoff=0.25,
                     timeout=10)
    report = run(pipe(_stop_and_restart_after(node, records, 5_000, 1.0, events), loader,
                      partition(dead.append)), progress=False)
    assert events == ["stopped", "started"]
    assert report.conserved and report.read == 20_000
    assert report.loaded + report.dead_letters == 20_000
    assert report.retries > 0
    indexed = _ids(admin, target)
    loaded = {r["k"] for r in records} - {d.record["k"] for d in dead}
    assert loaded <= indexed  # everything reported loaded is there
    assert report.dead_letters == 0, [d.error_message for d in dead[:3]]
    admin.drop(target)


def test_engine_down_beyond_the_retries_stops_the_load_naming_the_host(
        bounce_node: Any, search_admin_at: Any) -> None:
    node = bounce_node
    admin = search_admin_at(node.url)
    target = admin.new_index("down")
    records = _records(8_000)
    events: list[str] = []
    dead: list[DeadLetter] = []
    loader = load_es(hosts=[node.url], dataset=target, id_strategy={"type": "field",
                                                                   "field": "k"},
                     actions_per_batch=200, concurrency=2, max_retries=1, retry_backoff=0.05,
                     timeout=5)
    with pytest.raises(SearchUnavailableError,
                       match=f"search host {re.escape(node.url)} (unreachable|unavailable)"):
        run(pipe(_stop_and_restart_after(node, records, 2_000, 4.0, events), loader,
                 partition(dead.append)), progress=False)
    # the outage is not turned into dead letters: only items the node itself rejected
    # with "try later" while it shut down can be (after their own retries)
    for d in dead:
        assert d.status is not None and (d.status >= 500 or d.status == 429)
        assert d.target == target and d.id == d.record["k"] and d.attempt == 2
    committed = loader.stats.committed
    assert committed > 0 and committed + len(dead) < len(records)
    assert loader.stats.n_out == committed + len(dead)
    deadline = time.monotonic() + 180
    while "started" not in events and time.monotonic() < deadline:
        time.sleep(0.2)
    assert events == ["stopped", "started"]
    # everything acknowledged survived the restart (the node may also hold documents of a
    # request it applied but could not answer before it stopped)
    assert admin.count(target) >= committed
    admin.drop(target)


def test_unreachable_host_stops_the_load_with_a_typed_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    loader = load_es(hosts=[url], dataset="x", max_retries=2, retry_backoff=0.01, timeout=2)
    with pytest.raises(SearchUnavailableError, match=f"search host {url} unreachable"):
        run(pipe([{"a": 1}], loader), progress=False)
    assert loader.stats.retries == 2
