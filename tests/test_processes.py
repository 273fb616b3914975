"""`map_concurrent(..., processes=True)`: the thread version's laws, on worker processes."""

from __future__ import annotations

import os
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesa_fp import (
    ConfigError,
    StageError,
    batched,
    chain,
    map_concurrent,
    partition,
    pipe,
    run,
    stage,
    unbatched,
)
from sesa_fp.processes import ProcessMap
from sesa_fp.transforms import Transformer, python_class


def triple_plus_one(x: int) -> int:
    return x * 3 + 1


class Upstream:
    """Counts how many items were pulled, to measure what is in flight."""

    def __init__(self, xs: list[int]) -> None:
        self.xs = xs
        self.pulled = 0

    def __iter__(self) -> Any:
        for x in self.xs:
            self.pulled += 1
            yield x


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(), max_size=60), st.integers(1, 2), st.integers(1, 6),
       st.booleans())
def test_process_map_is_map_and_respects_window(
    xs: list[int], workers: int, window: int, ordered: bool
) -> None:
    up = Upstream(xs)
    stage_ = map_concurrent(triple_plus_one, workers=workers, window=window, ordered=ordered,
                            processes=True)
    out = []
    for y in stage_(up):
        out.append(y)
        assert up.pulled - len(out) <= window  # taken and not yet yielded
    expected = [triple_plus_one(x) for x in xs]
    if ordered:
        assert out == expected
    else:
        assert Counter(out) == Counter(expected)
    assert stage_.max_in_flight_seen <= window  # type: ignore[attr-defined]


def test_closures_travel_and_counters_come_back() -> None:
    """A closure made here runs in the workers; what its stages drop and fail is counted in
    this process's report, and dead letters pass by the workers."""
    limit = 10

    def check(r: dict[str, int]) -> dict[str, int] | None:
        if r["n"] % 5 == 0:
            return None
        if r["n"] > limit:
            raise ValueError("too big")
        return {"n": r["n"] * 2}

    dead: list[Any] = []
    report = run(pipe([{"n": i} for i in range(20)], batched(3),
                      map_concurrent(chain(stage(check)), workers=2, window=3,
                                     processes=True),
                      unbatched(), partition(dead.append)), progress=False)
    assert (report.read, report.emitted, report.dropped, report.dead_letters) == (20, 8, 4, 8)
    assert report.conserved
    assert {d.error_message for d in dead} == {"too big"}


def test_unpicklable_function_is_refused_when_built() -> None:
    sock = socket.socket()
    try:
        with pytest.raises(ConfigError, match=r"cannot be sent to a worker process.*setup="):
            map_concurrent(lambda x: sock.send(x), workers=2, processes=True)
    finally:
        sock.close()


def failing(x: int) -> int:
    raise RuntimeError(f"boom {x}")


def test_worker_error_stops_the_stream_naming_the_stage() -> None:
    with pytest.raises(StageError, match=r"processes=True.*RuntimeError: boom"):
        list(pipe([1, 2, 3], map_concurrent(failing, workers=2, processes=True)))


class _Resource:
    def __init__(self, log: Path) -> None:
        self.log = log
        with log.open("a") as f:
            f.write(f"open {os.getpid()}\n")

    def close(self) -> None:
        with self.log.open("a") as f:
            f.write(f"close {os.getpid()}\n")


def pid_of(x: int, resource: _Resource) -> int:
    return os.getpid()


def test_setup_runs_once_per_process_and_is_closed(tmp_path: Path) -> None:
    log = tmp_path / "setup.log"
    out = list(pipe(range(40), map_concurrent(pid_of, workers=2, window=4,
                                              setup=lambda: _Resource(log), processes=True)))
    lines = log.read_text().split()
    opened = Counter(lines[i + 1] for i in range(0, len(lines), 2) if lines[i] == "open")
    closed = Counter(lines[i + 1] for i in range(0, len(lines), 2) if lines[i] == "close")
    assert set(opened.values()) == {1} and opened == closed  # once per process, all closed
    assert {str(p) for p in out} <= set(opened)
    assert str(os.getpid()) not in opened


class Upper(Transformer):
    opened = 0

    def open(self) -> None:
        type(self).opened += 1
        self.pid = os.getpid()
        self.calls = type(self).opened

    def map_record(self, rec: dict[str, Any]) -> dict[str, Any]:
        return {**rec, "t": rec["t"].upper(), "pid": self.pid, "opens": self.calls}


def test_transformer_opens_once_per_process() -> None:
    recs = [{"t": f"x{i}"} for i in range(30)]
    out = list(pipe(recs, batched(2), map_concurrent(chain(python_class(Upper)), workers=2,
                                                     window=4, processes=True), unbatched()))
    assert [r["t"] for r in out] == [r["t"].upper() for r in recs]
    assert all(r["opens"] == 1 for r in out)  # one open per worker process, never per batch
    assert os.getpid() not in {r["pid"] for r in out}


def test_yaml_runtime_executor_processes(tmp_path: Path) -> None:
    from sesa_fp.config import build_job, load_job

    src = tmp_path / "in.jsonl"
    src.write_text("".join(f'{{"id": {i}, "t": " a{i} "}}\n' for i in range(50)))
    job = tmp_path / "job.yaml"
    job.write_text(f"""
job_name: procs
runtime: {{batch_size: 7, max_workers: 2, executor: processes}}
extractor: {{type: jsonl, path: "{src}"}}
transform:
  chain:
    - {{type: normalize}}
loader:
  type: files
  dataset: out
  connection: {{root: "{tmp_path / 'out'}"}}
""")
    built = build_job(load_job(job))
    assert any(isinstance(s, ProcessMap) for s in built.pipeline.stages)
    report = run(built.pipeline, progress=False)
    assert (report.read, report.loaded, report.conserved) == (50, 50, True)


def test_yaml_runtime_executor_rejects_unknown(tmp_path: Path) -> None:
    from sesa_fp.config.spec import RuntimeSpec, structure

    with pytest.raises(ConfigError, match=r"runtime.executor: expected threads, processes"):
        structure({"executor": "gpu"}, RuntimeSpec, "runtime")
