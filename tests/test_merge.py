"""`merge`: several sources read at once into one stream, nothing lost, nothing leaked."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesa_fp import SesaError, StageError, merge, pipe, run
from sesa_fp.errors import StorageError


def _merge_threads() -> int:
    return sum(t.name.startswith("sesa-merge") for t in threading.enumerate())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(), max_size=60), min_size=1, max_size=5),
       st.integers(1, 8))
def test_merge_is_the_union_and_keeps_each_source_in_order(sources: list[list[int]],
                                                           window: int) -> None:
    tagged = [[(i, x) for x in src] for i, src in enumerate(sources)]
    out = list(merge(*tagged, window=window))
    assert Counter(out) == Counter(x for src in tagged for x in src)
    for i, src in enumerate(tagged):
        assert [x for x in out if x[0] == i] == src
    assert _merge_threads() == 0


class Tracked:
    """A source that counts what was pulled from it and whether it was closed."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pulled = 0
        self.closed = False

    def __iter__(self) -> Any:
        try:
            for i in range(self.n):
                self.pulled += 1
                yield i
        finally:
            self.closed = True


def test_merge_bounds_what_waits_between_sources_and_consumer() -> None:
    sources = [Tracked(10_000) for _ in range(3)]
    it = iter(merge(*sources, window=5))
    got = [next(it) for _ in range(10)]
    # let the readers fill the window: they block, they do not run ahead
    for _ in range(200):
        if sum(s.pulled for s in sources) - len(got) >= 5:
            break
        threading.Event().wait(0.01)
    ahead = sum(s.pulled for s in sources) - len(got)
    assert 5 <= ahead <= 5 + len(sources)  # the queue, plus one item in each reader's hand
    it.close()  # type: ignore[attr-defined]
    assert all(s.closed for s in sources) and _merge_threads() == 0


def test_a_failing_source_stops_the_others() -> None:
    def bad() -> Any:
        yield 1
        raise KeyError("broken")

    healthy = Tracked(1_000_000)
    with pytest.raises(StageError, match=r"merge: source .* failed: KeyError"):
        list(merge(healthy, bad(), window=3))
    assert healthy.closed and _merge_threads() == 0


def test_a_typed_error_is_raised_as_is(tmp_path: Path) -> None:
    from sesa_fp import read_jsonl

    (tmp_path / "a.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(StorageError, match="no file matches"):
        list(merge(read_jsonl(str(tmp_path / "a.jsonl")), read_jsonl(str(tmp_path / "nope*"))))
    assert issubclass(StorageError, SesaError)


def test_run_counts_a_merged_source(tmp_path: Path) -> None:
    from sesa_fp import read_jsonl

    for i in range(3):
        (tmp_path / f"{i}.jsonl").write_text("".join(f'{{"f": {i}, "n": {n}}}\n'
                                                     for n in range(100 * (i + 1))))
    sources = [read_jsonl(str(tmp_path / f"{i}.jsonl")) for i in range(3)]
    report = run(pipe(merge(*sources)), progress=False)
    assert (report.read, report.emitted, report.loaded) == (600, 600, 0)
    assert repr(merge(*sources)).startswith("merge(read_jsonl(")


def test_merge_rejects_bad_arguments_when_built() -> None:
    with pytest.raises(ValueError, match="at least one source"):
        merge()
    with pytest.raises(ValueError, match="window"):
        merge([1], window=0)


@pytest.mark.integration
def test_yaml_slices_read_in_parallel_and_completely(search_admin: Any, tmp_path: Path) -> None:
    from sesa_fp.config import build_job, load_job

    index = search_admin.new_index("sliced", number_of_shards=3)
    search_admin.seed(index, [(str(i), {"n": i}) for i in range(5_000)])
    job = tmp_path / "job.yaml"
    job.write_text(f"""
job_name: sliced
extractor:
  type: elasticsearch
  connection: {{hosts: ["{search_admin.url}"]}}
  index: "{index}"
  fields: ["_id", "n"]
  slices: 3
loader: {{type: files, dataset: "out", connection: {{root: "{tmp_path / 'out'}"}}}}
""")
    built = build_job(load_job(job, {}))
    assert repr(built.pipeline.source).startswith("merge(es_source(")
    report = run(built.pipeline, progress=False)
    from sesa_fp import read_jsonl

    rows = list(read_jsonl(str(tmp_path / "out/out/*/part-*.jsonl")))
    assert report.read == report.loaded == 5_000
    assert sorted(r["n"] for r in rows) == list(range(5_000))
    assert {r["_id"] for r in rows} == {str(i) for i in range(5_000)}
    search_admin.drop(index)
