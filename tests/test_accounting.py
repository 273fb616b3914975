"""The report tells the truth: what the sinks committed, read back from storage, matches it.

Random compositions of a source (plain or merged partitions), stages that fail or drop at
random (inline or under map_concurrent), staging, a files loader and dead-letter writers in
every position the API accepts. Each example reads the target, the staging prefix and the
dead-letter queues back from storage and compares them with the report. Placements the API
refuses are checked to be refused when the pipeline is built.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from typing import Any

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesa_fp import (
    ConfigError,
    batched,
    chain,
    dlq_sink,
    from_storage,
    load_files,
    map_concurrent,
    merge,
    partition,
    pipe,
    run,
    stage,
    tee,
    to_storage,
    unbatched,
)
from sesa_fp.result import Failure, as_record


class Bad(Exception):
    pass


def first(r: dict[str, Any]) -> dict[str, Any] | None:
    if r["k"] == "drop":
        return None
    if r["k"] == "fail1":
        raise Bad("first")
    return r


def second(r: dict[str, Any]) -> dict[str, Any]:
    if r["k"] == "fail2":
        raise Bad("second")
    return {**r, "seen": True}


def _read_all(root: str) -> list[dict[str, Any]]:
    """Every record under every committed prefix below ``root`` (manifests found by glob)."""
    fs, path = fsspec.core.url_to_fs(root)
    out: list[dict[str, Any]] = []
    for manifest in sorted(fs.glob(f"{path}/**/_manifest.json")):
        prefix = fs.unstrip_protocol(manifest.rsplit("/", 1)[0])
        out.extend(from_storage(prefix))
    return out


compositions = st.fixed_dictionaries({
    "kinds": st.lists(st.sampled_from(["ok", "ok", "drop", "fail1", "fail2"]), max_size=60),
    "merged": st.booleans(),
    "concurrent": st.booleans(),
    "workers": st.integers(1, 3),
    "size": st.integers(1, 7),
    "staging": st.sampled_from([None, "first", "after"]),
    "loader": st.booleans(),
    "dlq": st.sampled_from(["end", "before_loader", "both", "default"]),
    "datasets": st.integers(1, 4),
})


@settings(max_examples=60, deadline=None)
@given(compositions)
def test_target_and_dlq_read_back_match_the_report(c: dict[str, Any]) -> None:
    base = f"memory://acct/{uuid.uuid4().hex}"
    records = [{"i": i, "k": k, "d": i % c["datasets"]} for i, k in enumerate(c["kinds"])]
    if c["merged"]:
        half = len(records) // 2
        # the partitions transform on their own threads; sinks come after the merge
        source: Any = merge(pipe(records[:half], stage(first)),
                            pipe(records[half:], stage(first)), window=3)
        transforms: list[Any] = [stage(second)]
    else:
        source = records
        transforms = [stage(first), stage(second)]
    if c["concurrent"]:
        transforms = [batched(c["size"]),
                      map_concurrent(chain(*transforms), workers=c["workers"], window=2),
                      unbatched()]
    stages: list[Any] = []
    if c["staging"] == "first":
        stages.append(tee(to_storage(f"{base}/staging", gzip=False)))
    stages += transforms
    if c["staging"] == "after":
        stages.append(tee(to_storage(f"{base}/staging", gzip=True)))
    if c["dlq"] in ("before_loader", "both"):
        stages.append(partition(dlq_sink(f"{base}/dlq1", per_run=False)))
    if c["loader"]:
        stages.append(load_files(f"{base}/target", dataset="d{d}", run_key="r"))
    if c["dlq"] in ("end", "both"):
        stages.append(partition(dlq_sink(f"{base}/dlq2", per_run=False)))

    report = run(pipe(source, *stages), progress=False, dlq=f"{base}/default")

    kinds = Counter(c["kinds"])
    failed = kinds["fail1"] + kinds["fail2"]
    ok = kinds["ok"]
    loaded = _read_all(f"{base}/target")
    dead = _read_all(f"{base}/dlq1") + _read_all(f"{base}/dlq2") + _read_all(f"{base}/default")
    assert report.read == len(records)
    assert report.conserved is True
    assert report.dropped == kinds["drop"]
    assert report.dead_letters == len(dead) == failed
    assert sorted(d["record"]["i"] for d in dead) == \
        [r["i"] for r in records if r["k"] in ("fail1", "fail2")]
    if c["loader"]:
        assert report.has_loader
        assert report.loaded == len(loaded) == ok
        assert sorted(r["i"] for r in loaded) == [r["i"] for r in records if r["k"] == "ok"]
        assert all(r["seen"] for r in loaded)
    else:
        assert report.loaded == 0 and not loaded
        assert report.emitted == ok
    if c["staging"] is not None:
        if c["staging"] == "after":
            kept = {"ok"}  # dead letters and dropped records are not staged
        elif c["merged"]:
            kept = {"ok", "fail2"}  # staged after the partitions' own first stage
        else:
            kept = {"ok", "drop", "fail1", "fail2"}  # the source as read
        staged = _read_all(f"{base}/staging")
        assert sorted(r["i"] for r in staged) == [r["i"] for r in records if r["k"] in kept]
    default_out = [o for o in report.outputs if o.get("default")]
    assert bool(default_out) == (c["dlq"] == "default" and failed > 0)


def test_failures_without_partition_go_to_the_default_dlq(tmp_path: Any) -> None:
    dlq = tmp_path / "dead"
    records = [{"n": i} for i in range(30)]

    def f(r: dict[str, Any]) -> dict[str, Any]:
        if r["n"] % 3 == 0:
            raise ValueError("bad n")
        return r

    report = run(pipe(records, stage(f)), progress=False, dlq=str(dlq))
    dead = _read_all(str(dlq))
    assert (report.read, report.emitted, report.dead_letters) == (30, 20, 10)
    assert len(dead) == 10 and {d["error_type"] for d in dead} == {"ValueError"}
    assert report.conserved is True
    [out] = [o for o in report.outputs if o.get("default")]
    assert out["records"] == 10 and str(dlq) in out["uri"]


def test_default_dlq_location_from_the_environment(tmp_path: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESA_DLQ", str(tmp_path / "env-dlq"))
    report = run(pipe([{"n": 1}], stage(lambda r: 1 / 0, errors=(ZeroDivisionError,))),
                 progress=False)
    assert report.dead_letters == 1 and len(_read_all(str(tmp_path / "env-dlq"))) == 1


def test_clean_run_writes_no_default_dlq(tmp_path: Any) -> None:
    report = run(pipe([{"n": 1}], stage(lambda r: r)), progress=False,
                 dlq=str(tmp_path / "never"))
    assert report.dead_letters == 0 and not (tmp_path / "never").exists()
    assert not [o for o in report.outputs if o.get("default")]


def test_plain_iterator_read_is_unknown_not_conserved() -> None:
    def gen() -> Any:
        yield {"a": 1}
        yield {"a": 2}

    report = run(gen(), progress=False)
    assert report.read is None and report.conserved is None and report.emitted == 2
    assert "unknown" in report.balance()


def test_report_counts_what_was_committed_not_what_passed() -> None:
    class Flaky:
        """A writer that takes records but commits only half of them."""

        def __init__(self) -> None:
            self.items: list[Any] = []

        def write(self, item: Any) -> None:
            self.items.append(item)

        def commit(self) -> int:
            return len(self.items) // 2

        def abort(self) -> None:
            self.items.clear()

    report = run(pipe([{"n": i} for i in range(10)],
                      stage(lambda r: 1 / 0, errors=(ZeroDivisionError,)),
                      partition(Flaky())), progress=False, check=False)
    assert report.dead_letters == 5 and report.conserved is False
    with pytest.raises(Exception, match="read 10 != emitted 0"):
        run(pipe([{"n": i} for i in range(10)],
                 stage(lambda r: 1 / 0, errors=(ZeroDivisionError,)),
                 partition(Flaky())), progress=False)


@pytest.mark.parametrize("build", [
    lambda: map_concurrent(chain(stage(first), load_files("memory://x", dataset="d")),
                           workers=2),
    lambda: map_concurrent(chain(stage(first), partition(dlq_sink("memory://x/dlq"))),
                           workers=1),
    lambda: chain(tee(to_storage("memory://x/s"))),
    lambda: map_concurrent(load_files("memory://x", dataset="d"), workers=2),
    lambda: merge(pipe([1], load_files("memory://x", dataset="d"))),
    lambda: stage(load_files("memory://x", dataset="d")),
], ids=["loader-in-chain", "partition-in-chain", "tee-in-chain", "loader-as-fn",
        "loader-in-merged-source", "loader-as-record-fn"])
def test_sinks_where_they_would_run_per_batch_are_refused(build: Any) -> None:
    with pytest.raises(ConfigError, match="sink"):
        build()


def test_a_sink_used_twice_is_refused() -> None:
    w = to_storage("memory://x/twice")
    with pytest.raises(ConfigError, match="appears twice"):
        pipe([1], tee(w), tee(w))
    loader = load_files("memory://x/l", dataset="d")
    with pytest.raises(ConfigError, match="appears twice"):
        pipe([{"a": 1}], loader, loader)


def test_a_sink_in_two_streams_at_once_is_refused() -> None:
    loader = load_files(f"memory://x/{uuid.uuid4().hex}", dataset="d", run_key="r")
    a = iter(pipe([{"a": 1}, {"a": 2}], loader))
    next(a)
    with pytest.raises(ConfigError, match="already running"):
        next(iter(pipe([{"a": 3}], loader)))
    assert [as_record(x) for x in itertools.chain([{"a": 1}], a)
            if type(x) is not Failure] == [{"a": 1}, {"a": 2}]


def test_failed_run_keeps_dead_letters_and_reports_what_committed(tmp_path: Any) -> None:
    def source() -> Any:
        for i in range(10):
            yield {"n": i}
        raise RuntimeError("source died")

    dlq_uri = str(tmp_path / "dlq")
    with pytest.raises(Exception, match="source died") as info:
        run(pipe(source(), stage(lambda r: r if r["n"] % 2 else 1 / 0,
                                 errors=(ZeroDivisionError,)),
                 partition(dlq_sink(dlq_uri, per_run=False))), progress=False)
    report = info.value.report  # type: ignore[attr-defined]
    assert report.status == "failed" and "source died" in report.error
    assert report.dead_letters == 5 == len(list(from_storage(dlq_uri)))
    assert report.emitted == 5 and report.unaccounted == 0
    assert report.read == 10 and report.conserved is True


def test_two_writers_on_one_prefix_are_refused(tmp_path: Any) -> None:
    dlq = str(tmp_path / "dlq")
    with pytest.raises(ConfigError, match="both commit to"):
        pipe([{"n": 1}], stage(first), partition(dlq_sink(dlq, per_run=False)),
             load_files(str(tmp_path / "out"), dataset="d"),
             partition(dlq_sink(dlq + "/", per_run=False)))
    with pytest.raises(ConfigError, match="both commit to"):  # the default DLQ, same place
        run(pipe([{"n": 1}], partition(dlq_sink(dlq)), stage(first)), dlq=dlq, progress=False)
    with pytest.raises(ConfigError, match="both commit to"):
        pipe([{"n": 1}], load_files(str(tmp_path / "o"), dataset="a", run_key="r"),
             load_files(str(tmp_path / "o"), dataset="b", run_key="r"))


def test_a_sink_hidden_in_a_function_under_map_concurrent_is_refused_at_run() -> None:
    loader = load_files(f"memory://acct/{uuid.uuid4().hex}", dataset="x", run_key="k")
    with pytest.raises(ConfigError, match="entered twice in one run"):
        run(pipe([{"n": i} for i in range(30)], batched(10),
                 map_concurrent(lambda b: list(loader(b)), workers=1), unbatched()),
            progress=False)


def test_a_stage_used_twice_is_refused_even_across_merged_partitions() -> None:
    s = stage(first)
    with pytest.raises(ConfigError, match="appears twice"):
        pipe([{"k": "ok"}], s, s)
    with pytest.raises(ConfigError, match="appears twice"):
        pipe(merge(pipe([{"k": "ok"}], s), pipe([{"k": "ok"}], s)))


def test_read_counts_the_leaves_of_nested_merges() -> None:
    inner = pipe([{"k": k} for k in ["ok", "drop"] * 5], stage(first))
    report = run(pipe(merge(merge(inner), [{"k": "ok"}])), progress=False)
    assert (report.read, report.emitted, report.dropped, report.conserved) == (11, 6, 5, True)


def test_transforms_after_the_loader_are_refused() -> None:
    with pytest.raises(ConfigError, match="after the loader"):
        pipe([{"k": "ok"}], load_files("memory://acct/x", dataset="d"), stage(first))
    pipe([{"k": "ok"}], load_files("memory://acct/y", dataset="d"),
         tee(to_storage("memory://acct/y-staged")), partition(dlq_sink("memory://acct/y-dlq")))


def test_a_failing_dlq_commit_does_not_hide_what_stopped_the_stream() -> None:
    class BrokenCommit:
        def write(self, item: Any) -> None:
            pass

        def commit(self) -> int:
            raise OSError("disk full")

        def abort(self) -> None:
            pass

    def source() -> Any:
        yield {"k": "fail1"}
        raise RuntimeError("the real cause")

    with pytest.raises(RuntimeError, match="the real cause"):
        run(pipe(source(), stage(first, errors=(Bad,)), partition(BrokenCommit())),
            progress=False)


def test_default_dlq_is_masked_and_checked_before_reading(
        s3_bucket: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    _, opts = s3_bucket
    monkeypatch.setitem(fsspec.config.conf, "s3", opts)  # the S3 server's endpoint and keys
    pulled: list[int] = []

    def source() -> Any:
        for i in range(5):
            pulled.append(i)
            yield {"k": "fail1"}

    with pytest.raises(Exception, match="no-such-bucket-zz") as info:
        run(pipe(source(), stage(first, errors=(Bad,))), progress=False,
            dlq="s3://no-such-bucket-zz/dlq")
    assert pulled == [], "the dead-letter queue must be checked before any record is read"
    assert "PlantedPw" not in repr(partition(dlq_sink("memory://u:PlantedPw@h/dlq")))
    report = run(pipe([{"k": "fail1"}], stage(first, errors=(Bad,))), progress=False,
                 dlq="memory://etl:PlantedPw99@dlqhost/dlq")
    assert "PlantedPw99" not in report.to_json() and report.dead_letters == 1
    del info
