"""Replaying dead letters: `read_dead_letters`, `replay_dead_letters` and the resolved marks,
on local and in-memory storage (the real search engine and S3 are in
test_dlq_replay_integration.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesa_fp import (
    ConfigError,
    DeadLetter,
    dlq_sink,
    load_files,
    partition,
    pipe,
    read_dead_letters,
    read_jsonl,
    replay_dead_letters,
    run,
    stage,
    tee,
    to_storage,
)
from sesa_fp.errors import CorruptPartError
from sesa_fp.replay import job_parts, start_stage
from sesa_fp.stats import Stage
from sesa_fp.storage.resolved import read_marks


def _mem() -> str:
    return f"memory://replay-{uuid.uuid4().hex[:8]}"


def _loaded(root: str) -> list[dict[str, Any]]:
    """Every record the files loader committed under ``root`` (read back from its parts)."""
    fs, path = fsspec.core.url_to_fs(root)
    out: list[dict[str, Any]] = []
    for p in sorted(fs.glob(f"{path}/**/part-*.jsonl")):
        out += [json.loads(line) for line in fs.cat_file(p).splitlines() if line.strip()]
    return out


def _bang(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "s": r["s"] + "!"}  # not idempotent: applied twice it shows


def _strict(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "n": int(r["n"])}


def _lenient(r: dict[str, Any]) -> dict[str, Any] | None:
    if r["n"] == "drop":
        return None
    return {**r, "n": int(str(r["n"]).rstrip("x"))}


def _chain(fix: bool) -> list[Stage]:
    return [stage(_bang, name="bang"), stage(_lenient if fix else _strict, name="to_int"),
            stage(lambda r: {**r, "tail": True}, name="tail")]


def _first_run(base: str, records: Iterable[dict[str, Any]]) -> Any:
    return run(pipe(list(records), *_chain(fix=False),
                    load_files(f"{base}/out", dataset="d", id_strategy={"type": "field",
                                                                         "field": "k"}),
                    partition(dlq_sink(f"{base}/dlq/"))), progress=False, run_id="run1")


def _replay(base: str, fix: bool = True, run_id: str = "replay1") -> Any:
    p = replay_dead_letters(f"{base}/dlq/", transforms=_chain(fix),
                            loader=load_files(f"{base}/out", dataset="d",
                                              id_strategy={"type": "field", "field": "k"}),
                            dlq=dlq_sink(f"{base}/dlq/"), workers=2)
    return run(p, progress=False, run_id=run_id)


def _outputs(report: Any) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in report.outputs}


RECORDS = [{"k": "a", "s": "a", "n": "1"}, {"k": "b", "s": "b", "n": "2x"},
           {"k": "c", "s": "c", "n": "3"}, {"k": "d", "s": "d", "n": "drop"},
           {"k": "e", "s": "e", "n": "bad"}]


def test_replay_starts_at_the_failing_stage_and_resolves() -> None:
    base = _mem()
    first = _first_run(base, RECORDS)
    assert (first.read, first.loaded, first.dead_letters) == (5, 2, 3)
    report = _replay(base)
    # b is fixed and loaded, d is dropped by the fix on purpose, e fails again
    assert (report.read, report.loaded, report.dropped, report.dead_letters) == (3, 1, 1, 1)
    assert report.conserved is True
    out = _outputs(report)
    assert out["dead_letters_read"] | {"uri": ""} == {
        "kind": "dead_letters_read", "uri": "", "runs": 1, "letters": 3,
        "skipped_resolved": 0, "yielded": 3}
    assert (out["dead_letters_replayed"]["loaded"], out["dead_letters_replayed"]["dropped"],
            out["dead_letters_replayed"]["failed_again"]) == (1, 1, 1)
    rows = {r["k"]: r for r in _loaded(f"{base}/out")}
    # "bang" ran once on b: the letter re-entered at to_int, where it failed
    assert rows["b"] == {"k": "b", "s": "b!", "n": 2, "tail": True, "_id": "b"}
    assert sorted(rows) == ["a", "b", "c"]


def test_second_replay_loads_nothing_again_and_a_failing_letter_stays_once() -> None:
    base = _mem()
    _first_run(base, RECORDS)
    _replay(base, run_id="replay1")
    loaded_after_first = _loaded(f"{base}/out")
    second = _replay(base, run_id="replay2")
    out = _outputs(second)["dead_letters_read"]
    # 3 originals (all marked) + the copy of e that replay1's DLQ committed
    assert (out["letters"], out["skipped_resolved"], out["yielded"]) == (4, 3, 1)
    assert (second.read, second.loaded, second.dropped, second.dead_letters) == (1, 0, 0, 1)
    assert sorted(r["k"] for r in _loaded(f"{base}/out")) == \
        sorted(r["k"] for r in loaded_after_first)
    pending = list(read_dead_letters(f"{base}/dlq/", letters=True))
    assert [x.record["k"] for x in pending] == ["e"]  # once, in replay2's folder
    assert "run_id=replay2" in pending[0].folder
    assert pending[0].letter["replay_of"] is not None
    everything = list(read_dead_letters(f"{base}/dlq/", skip_resolved=False))
    assert sorted(r["k"] for r in everything) == ["b", "d", "e", "e", "e"]


def test_a_folder_whose_letters_are_all_resolved_is_not_read_again() -> None:
    """The first run's folder is wholly resolved after one replay: a second replay counts its
    letters as skipped from the marks alone. Its part gets bytes appended here, which a read
    would refuse (checksum), and nothing fails."""
    base = _mem()
    _first_run(base, RECORDS)
    _replay(base, run_id="replay1")
    fs = fsspec.filesystem("memory")
    [folder] = [p.rsplit("/", 1)[0] for p in fs.glob(f"{base}/dlq/run_id=run1/_manifest.json")]
    for part in fs.glob(f"{folder}/part-*"):
        fs.pipe_file(part, fs.cat_file(part) + b"garbage")
    second = _replay(base, run_id="replay2")
    out = _outputs(second)["dead_letters_read"]
    assert (out["runs"], out["letters"], out["skipped_resolved"], out["yielded"]) == (2, 4, 3, 1)
    # without the marks the same folder is read, and its damage found
    with pytest.raises(CorruptPartError, match="fails its checksum"):
        list(read_dead_letters(f"{base}/dlq/", skip_resolved=False))


def test_marks_record_each_outcome_beside_its_letters() -> None:
    base = _mem()
    _first_run(base, RECORDS)
    _replay(base)
    fs, root = fsspec.core.url_to_fs(f"{base}/dlq/run_id=run1")
    letters = {x.record["k"]: x.id for x in
               read_dead_letters(f"{base}/dlq/run_id=run1", skip_resolved=False, letters=True)}
    marks = read_marks(fs, root)
    assert {k: marks[i] for k, i in letters.items()} == \
        {"b": "loaded", "d": "dropped", "e": "failed_again"}


def test_unfixed_replay_keeps_every_letter_pending_once() -> None:
    base = _mem()
    _first_run(base, RECORDS)
    report = _replay(base, fix=False)
    assert (report.read, report.loaded, report.dead_letters) == (3, 0, 3)
    pending = [x.record["k"] for x in read_dead_letters(f"{base}/dlq/", letters=True)]
    assert sorted(pending) == ["b", "d", "e"]


def test_loader_letters_go_straight_to_the_fixed_loader(tmp_path: Path) -> None:
    root = str(tmp_path / "out")
    dlq = str(tmp_path / "dlq")
    first = run(pipe([{"k": "a", "m": "x"}, {"k": "b"}], stage(_bang_s, name="bang"),
                     load_files(root, dataset="d-{m}"), partition(dlq_sink(dlq))),
                progress=False)
    assert (first.loaded, first.dead_letters) == (1, 1)
    # the fix: a dataset every record can name; the loader's name changed with it
    report = run(replay_dead_letters(dlq, transforms=[stage(_bang_s, name="bang")],
                                     loader=load_files(root, dataset="d-fixed"),
                                     dlq=dlq_sink(dlq)), progress=False)
    assert (report.read, report.loaded, report.dead_letters) == (1, 1, 0)
    fixed = _loaded(f"{root}/d-fixed")
    assert [r["s"] for r in fixed] == ["!"]  # bang ran once, before the first load


def _bang_s(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "s": r.get("s", "") + "!"}


def test_staging_letters_start_from_the_top_and_source_letters_fail_again(
        tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"k": "a", "s": "a", "n": "1"}\n{oops\n{"k": "b", "s": "b", "n": "2"}\n')
    dlq = str(tmp_path / "dlq")

    def refuse_b(rec: Any) -> None:
        if rec["k"] == "b":
            raise TypeError("cannot encode b")

    class Picky:  # a staging writer that cannot encode one record: a `tee` dead letter
        def write(self, rec: Any) -> None:
            refuse_b(rec)

        def commit(self) -> int:
            return 0

        def abort(self) -> None:
            pass

    first = run(pipe(read_jsonl(str(src)), tee(Picky()), *_chain(fix=True),
                     load_files(str(tmp_path / "out"), dataset="d"),
                     partition(dlq_sink(dlq))), progress=False)
    assert (first.read, first.loaded, first.dead_letters) == (3, 1, 2)
    report = run(replay_dead_letters(dlq, transforms=_chain(fix=True),
                                     loader=load_files(str(tmp_path / "out"), dataset="d"),
                                     dlq=dlq_sink(dlq)), progress=False)
    assert (report.read, report.loaded, report.dead_letters) == (2, 1, 1)
    rows = [r for r in _loaded(str(tmp_path / "out")) if r["k"] == "b"]
    assert rows == [{"k": "b", "s": "b!", "n": 2, "tail": True}]  # the whole chain, once
    again = list(read_dead_letters(dlq, letters=True))
    assert len(again) == 1 and again[0].letter["error_message"].startswith("not replayed")


def test_start_stage_rules() -> None:
    ts = _chain(fix=True)
    assert start_stage({"stage": "to_int"}, ts, None) == (1, "")
    assert start_stage({"stage": "load_es('x')"}, ts, None) == (3, "")
    assert start_stage({"stage": "custom", "target": "idx"}, ts, None) == (3, "")
    twice = [stage(_bang, name="bang"), stage(_bang, name="bang")]
    k, why = start_stage({"stage": "bang"}, twice, None)
    assert k is None and "appears 2 times" in why
    k, why = start_stage({"stage": "gone"}, ts, None)
    assert k is None and "not a transform or the loader" in why


def test_only_committed_folders_are_read_and_old_letters_stay_readable() -> None:
    base = _mem()
    fs = fsspec.filesystem("memory")
    # an older dead letter without replay_of, committed by hand; and an uncommitted part
    w = dlq_sink(f"{base}/dlq/", per_run=False)
    old = DeadLetter(record={"k": "z", "s": "z", "n": "9x"}, error_type="ValueError",
                     error_message="m", stage="to_int").to_dict()
    del old["replay_of"]
    w.write(old)
    w.commit()
    fs.pipe(f"{base.split('://')[1]}/dlq/run_id=half/part-00000.jsonl",
            json.dumps({"record": {}, "error_type": "E", "stage": "s"}).encode() + b"\n")
    assert [r["k"] for r in read_dead_letters(f"{base}/dlq/")] == ["z"]
    report = _replay(base)
    assert (report.read, report.loaded) == (1, 1)


def test_position_resumes_a_read() -> None:
    base = _mem()
    for run_id in ("r1", "r2"):
        run(pipe([{"n": f"{run_id}-{i}"} for i in range(3)],
                 stage(lambda r: int(r["n"]), name="to_int"),
                 partition(dlq_sink(f"{base}/dlq/"))), progress=False, run_id=run_id)
    src = read_dead_letters(f"{base}/dlq/")
    assert src.position is None
    it = iter(src)
    first = [next(it) for _ in range(4)]
    pos = src.position
    assert pos == {"run": "run_id=r2", "part": 0, "record": 1}
    rest = list(read_dead_letters(f"{base}/dlq/", start=pos))
    assert [r["n"] for r in first + rest] == [f"r{j}-{i}" for j in (1, 2) for i in range(3)]
    assert list(it) == rest and src.position == {"done": True}
    assert list(read_dead_letters(f"{base}/dlq/", start={"done": True})) == []
    with pytest.raises(ConfigError, match="not a position"):
        read_dead_letters(f"{base}/dlq/", start={"part": 1})


def test_a_staging_prefix_or_a_missing_one_is_a_clear_error(tmp_path: Path) -> None:
    staging = str(tmp_path / "staging")
    run(pipe([{"a": 1}], tee(to_storage(staging))), progress=False)
    with pytest.raises(ConfigError, match="holds a 'staging' commit, not dead letters"):
        list(read_dead_letters(staging))
    with pytest.raises(ConfigError, match="does not exist"):
        list(read_dead_letters(str(tmp_path / "nowhere")))


def test_secrets_are_masked_in_the_source_repr() -> None:
    src = read_dead_letters("s3://AKIAXX:s3cr3t-value@bucket/dlq/",
                            storage_options={"secret": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(src) and "s3cr3t-value" not in str(src.describe())


def test_job_parts_finds_transforms_loader_and_dlq() -> None:
    base = _mem()
    ts = _chain(fix=True)
    loader = load_files(f"{base}/out", dataset="d")
    writer = dlq_sink(f"{base}/dlq/")
    from sesa_fp import batched, chain, map_concurrent, unbatched

    parts = job_parts(pipe([], batched(2), map_concurrent(chain(*ts), workers=1), unbatched(),
                           loader, partition(writer)))
    assert parts == (tuple(ts), loader, writer)


class _MissOne(Stage):
    """A loader that breaks the contract: it yields nothing for its last record."""

    kind = "loader"
    sink = True

    def _iter(self, upstream: Iterable[Any]) -> Iterator[Any]:
        items = list(upstream)
        self.stats.add(committed=len(items) - 1)
        yield from items[:-1]


def test_a_loader_that_loses_a_result_marks_nothing() -> None:
    base = _mem()
    _first_run(base, [{"k": "a", "s": "a", "n": "1x"}, {"k": "b", "s": "b", "n": "2x"}])
    with pytest.raises(Exception, match="yielded no result"):
        run(replay_dead_letters(f"{base}/dlq/", transforms=_chain(fix=True),
                                loader=_MissOne("miss_one"), dlq=dlq_sink(f"{base}/dlq/")),
            progress=False)
    assert len(list(read_dead_letters(f"{base}/dlq/"))) == 2  # nothing marked resolved


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["1", "2x", "drop", "bad"]), max_size=12))
def test_every_letter_is_accounted_for(values: list[str]) -> None:
    base = _mem()
    records = [{"k": str(i), "s": "", "n": v} for i, v in enumerate(values)]
    first = _first_run(base, records)
    failing = sum(v != "1" for v in values)
    assert first.dead_letters == failing
    if not failing:
        return  # no DLQ was written at all
    r1 = _replay(base, run_id="replay1")
    read1 = _outputs(r1)["dead_letters_read"]
    # every letter read is skipped, or loaded + dropped + failed again, by what was committed
    assert read1["letters"] == read1["skipped_resolved"] + r1.read
    assert r1.read == r1.loaded + r1.dropped + r1.dead_letters == failing
    assert (r1.loaded, r1.dropped, r1.dead_letters) == \
        (values.count("2x"), values.count("drop"), values.count("bad"))
    r2 = _replay(base, run_id="replay2")
    assert (r2.read, r2.loaded, r2.dead_letters) == (values.count("bad"), 0,
                                                      values.count("bad"))
    assert len(_loaded(f"{base}/out")) == values.count("1") + values.count("2x")


# -- the command line, on a local job --------------------------------------------------------

def _local_job(tmp_path: Path) -> Path:
    from dlq_replay_job import records, write_job

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records()))
    loader = (f'  type: files\n  connection: {{ root: "{tmp_path}/out" }}\n'
              '  dataset: "items"\n  options: { id_strategy: { type: field, field: k } }')
    return write_job(tmp_path, source=str(src), loader=loader, dlq=f"{tmp_path}/dlq/",
                     storage=f'storage: {{ backend: local, uri: "{tmp_path}/staging/" }}')


def test_cli_replays_dead_letters_once(tmp_path: Path) -> None:
    from dlq_replay_job import outputs, sesa

    job = _local_job(tmp_path)
    proc, first = sesa("run", "--config", str(job), "--set", "mode=strict", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (first["read"], first["loaded"], first["dead_letters"]) == (30, 24, 6)
    proc, rep = sesa("replay", "--config", str(job), "--dead-letters", f"{tmp_path}/dlq/",
                     "--set", "mode=lenient", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (rep["read"], rep["loaded"], rep["dropped"], rep["dead_letters"], rep["conserved"]) \
        == (6, 4, 0, 2, True)
    assert outputs(rep)["dead_letters_read"]["letters"] == 6
    rows = {r["k"]: r for r in _loaded(f"{tmp_path}/out")}
    assert len(rows) == 28 and all(rows[k]["qty"] is None for k in ("3", "10", "17", "24"))
    assert rows["3"]["name"] == "item 3"  # normalize ran once, in the first run
    proc, again = sesa("replay", "--config", str(job), "--dead-letters", f"{tmp_path}/dlq/",
                       "--set", "mode=lenient", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    read = outputs(again)["dead_letters_read"]
    assert (read["letters"], read["skipped_resolved"], again["read"], again["loaded"],
            again["dead_letters"]) == (8, 6, 2, 0, 2)
    assert sorted(x["k"] for x in read_dead_letters(f"{tmp_path}/dlq/")) == ["20", "5"]
    proc, _ = sesa("dlq", f"{tmp_path}/dlq/", cwd=tmp_path)
    summary = json.loads(proc.stdout)
    assert (summary["dead_letters"], summary["resolved"]) == (10, 8)  # 2 pending


def test_cli_refuses_a_staging_prefix_and_two_sources(tmp_path: Path) -> None:
    from dlq_replay_job import sesa

    job = _local_job(tmp_path)
    proc, _ = sesa("run", "--config", str(job), "--set", "mode=lenient", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc, _ = sesa("replay", "--config", str(job), "--dead-letters", f"{tmp_path}/staging/",
                   "--set", "mode=lenient", cwd=tmp_path)
    assert proc.returncode == 2
    assert "holds a 'staging' commit, not dead letters" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc, _ = sesa("replay", "--config", str(job), "--dead-letters", f"{tmp_path}/dlq/",
                   "--from", f"{tmp_path}/staging/", "--set", "mode=lenient", cwd=tmp_path)
    assert proc.returncode == 2 and "not both" in proc.stderr
    proc, _ = sesa("replay", "--config", str(job), "--dead-letters",
                   "s3://AKIAEXAMPLE:sup3r-s3cret@nobucket/dlq/", "--set", "mode=lenient",
                   cwd=tmp_path)
    assert proc.returncode in (1, 2) and "sup3r-s3cret" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_replay_killed_before_its_failed_marks_leaves_no_duplicate() -> None:
    base = _mem()
    _first_run(base, RECORDS)
    _replay(base, run_id="replay1")
    fs = fsspec.filesystem("memory")
    root = base.split("://")[1]
    removed = 0
    for path in fs.glob(f"{root}/dlq/*/_resolved/*.json"):
        if b"failed_again" in fs.cat_file(path):
            fs.rm_file(path)  # as if the replay died right after its DLQ commit
            removed += 1
    assert removed == 1
    # e's original is unmarked now, but replay1's committed copy names it in replay_of
    assert [x.record["k"] for x in read_dead_letters(f"{base}/dlq/", letters=True)] == ["e"]
    second = _replay(base, run_id="replay2")
    assert (second.read, second.dead_letters) == (1, 1)


def test_a_dlq_that_would_replace_the_letters_it_replays_is_refused() -> None:
    base = _mem()
    _first_run(base, RECORDS)
    with pytest.raises(ConfigError, match="would replace them"):
        replay_dead_letters(f"{base}/dlq/run_id=run1", transforms=_chain(True),
                            loader=load_files(f"{base}/out", dataset="d"),
                            dlq=dlq_sink(f"{base}/dlq/run_id=run1", per_run=False))
    with pytest.raises(ConfigError, match="would replace them"):
        replay_dead_letters(f"{base}/dlq/", transforms=_chain(True),
                            loader=load_files(f"{base}/out", dataset="d"),
                            dlq=dlq_sink(f"{base}/dlq/x", per_run=False))
