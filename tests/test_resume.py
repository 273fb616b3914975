"""Resume: staged parts commit one by one, a killed run continues from them.

The kill tests run each attempt in a subprocess (`resume_job.py`) that dies by SIGKILL at a
seeded random crash point (`sesa_fp.faults`): during extraction, between a part and its
commit record, during loading, before the manifest. They are resumed until one finishes,
then the target, the dead-letter queue and the records read are checked against a clean run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fsspec
import orjson
import pytest

from sesa_fp import pipe, read_jsonl, run, stage, tee
from sesa_fp.storage import dlq_sink, from_storage, to_storage
from sesa_fp.storage.journal import read_commits
from sesa_fp.storage.ledger import LoadLedger
from sesa_fp.stream import partition

JOB = Path(__file__).with_name("resume_job.py")
N = 600
#: crash points an attempt on S3 can reach (``manifest_tmp`` is local storage only)
POINTS = ("flush", "flush", "part_closed", "part_committed", "marked", "marked", "manifest")


def _write_input(path: Path, n: int = N) -> int:
    """JSONL with ``n`` records and a bad line every 400; returns the bad lines."""
    bad = 0
    with path.open("wb") as f:
        for i in range(n):
            f.write(orjson.dumps({"n": i, "text": f"record {i} " + "x" * (i % 40)}) + b"\n")
            if i % 400 == 7:
                f.write(b"{not json\n")
                bad += 1
    return bad


# -- in process, local files -----------------------------------------------------------------


def _local_job(tmp: Path, out: list[Any], fail_at: int | None = None) -> Any:
    def keep(rec: dict[str, Any]) -> dict[str, Any]:
        if fail_at is not None and rec["n"] == fail_at:
            raise RuntimeError("the job stops here")  # not a record error: the run fails
        out.append(rec["n"])
        return rec

    return pipe(read_jsonl(str(tmp / "in.jsonl")),
                tee(to_storage(str(tmp / "staging"), gzip=False, part_max_mb=0.004)),
                stage(keep, errors=(ValueError,)), partition(dlq_sink(str(tmp / "dlq"))))


def test_a_failed_run_resumes_from_its_committed_parts(tmp_path: Path) -> None:
    bad = _write_input(tmp_path / "in.jsonl")
    first: list[Any] = []
    with pytest.raises(Exception, match="the job stops here") as info:
        run(_local_job(tmp_path, first, fail_at=400), progress=False)
    fs = fsspec.filesystem("file")
    commits = read_commits(fs, str(tmp_path / "staging"))
    assert commits and commits[-1].position["line"] < 400 + 3  # committed before the failure
    assert all(c.position is not None for c in commits)
    ledger = LoadLedger(str(tmp_path / "staging"))
    loaded = ledger.totals()
    assert 0 < loaded["records"] <= info.value.report.read  # type: ignore[attr-defined]

    second: list[Any] = []
    report = run(_local_job(tmp_path, second), progress=False)
    assert report.skipped_records == loaded["records"] and report.skipped_parts > 0
    assert report.resumed_parts >= 0 and report.conserved
    # nothing before the first part not loaded is emitted again, nothing is missing
    assert sorted(set(first) | set(second)) == list(range(N))
    assert len(second) <= N - loaded["loaded"]
    assert report.read == report.resumed_records + (N + bad - sum(c.records for c in commits))
    dead = list(from_storage(next(str(p.parent) for p in (tmp_path / "dlq").rglob(
        "_manifest.json"))))
    assert len(dead) == bad  # the bad lines, each once, over both attempts

    # a third run of the same finished run does nothing; --fresh does it all again
    again: list[Any] = []
    assert run(_local_job(tmp_path, again), progress=False).read == 0 and again == []
    fresh = run(_local_job(tmp_path, again), progress=False, fresh=True)
    assert fresh.read == N + bad and sorted(again) == list(range(N))


def test_replay_skips_what_was_loaded(tmp_path: Path) -> None:
    _write_input(tmp_path / "in.jsonl", 600)
    run(pipe(read_jsonl(str(tmp_path / "in.jsonl")),
             tee(to_storage(str(tmp_path / "staging"), gzip=False, part_max_mb=0.002)),
             partition(dlq_sink(str(tmp_path / "dlq")))), progress=False)
    ledger = LoadLedger(str(tmp_path / "staging"))
    assert ledger.totals()["records"] == 602  # every line it staged (2 bad ones) is done
    ledger.clear()  # as if it had staged only
    seen: list[Any] = []

    def replay(fail_at: int | None) -> Any:
        def keep(rec: dict[str, Any]) -> dict[str, Any]:
            if rec["n"] == fail_at:
                raise RuntimeError("stop")
            seen.append(rec["n"])
            return rec
        return pipe(from_storage(str(tmp_path / "staging")), stage(keep, errors=(ValueError,)))

    with pytest.raises(Exception, match="stop"):
        run(replay(400), progress=False, dlq=str(tmp_path / "dlq2"))
    done = LoadLedger(str(tmp_path / "staging")).totals()["records"]
    assert 0 < done <= 400
    seen.clear()
    report = run(replay(None), progress=False, dlq=str(tmp_path / "dlq2"))
    assert report.skipped_records == done and report.read == 600 - done
    assert sorted(seen) == list(range(done, 600)) and report.conserved


def test_positions_of_files_and_prefixes_resume_exactly(tmp_path: Path) -> None:
    _write_input(tmp_path / "in.jsonl", 50)
    src = read_jsonl(str(tmp_path / "in.jsonl"))
    it = iter(src)
    head = [next(it) for _ in range(20)]
    pos = src.position
    assert json.loads(json.dumps(pos)) == pos
    it.close()
    rest = list(src.resume(pos))
    assert [r["n"] for r in head + rest if isinstance(r, dict)] == list(range(50))
    run(pipe(read_jsonl(str(tmp_path / "in.jsonl")),
             tee(to_storage(str(tmp_path / "st"), gzip=True, part_max_mb=0.0005))),
        progress=False, dlq=str(tmp_path / "dlq"))
    staged = from_storage(str(tmp_path / "st"))
    it = iter(staged)
    head = [next(it) for _ in range(33)]
    pos = staged.position
    it.close()
    assert [r["n"] for r in head + list(staged.resume(pos))] == list(range(50))


# -- killed with SIGKILL, real S3 and search engine ----------------------------------------


def _attempt(cfg: dict[str, Any], kill: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SESA_KILL_AT": kill or ""}
    return subprocess.run([sys.executable, str(JOB), json.dumps(cfg)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _dead_letters(uri: str, so: dict[str, Any]) -> list[tuple[str, str]]:
    fs, root = fsspec.core.url_to_fs(uri, **so)
    fs.invalidate_cache()
    manifests = fs.glob(f"{root}/*/_manifest.json")
    assert len(manifests) <= 1, manifests  # one logical run, one place
    out = []
    for m in manifests:
        for d in from_storage(fs.unstrip_protocol(m.rsplit("/", 1)[0]), storage_options=so):
            out.append((d["stage"], orjson.dumps(d["record"]).decode()))
    return out


def _check(cfg: dict[str, Any], clean: dict[str, Any], landed: int, search_admin: Any,
           so: dict[str, Any]) -> None:
    """A finished logical run against the clean run: same target, each dead letter once,
    and the records read over all its attempts within one part and the in-flight window
    per kill of the total."""
    assert search_admin.docs(cfg["target_index"]) == clean["docs"]
    dead = _dead_letters(cfg["dlq"], so)
    assert sorted(dead) == clean["dead"] and len(set(dead)) == len(dead)
    commits = read_commits(*fsspec.core.url_to_fs(cfg["staging"], **so))
    part = max(c.records for c in commits)
    window = 32 + 2 if cfg["mode"] == "es" else 0  # the merge's queue and one per thread
    assert Path(cfg["reads"]).stat().st_size <= clean["reads"] + landed * (part + window)


def _kill_runs(make_cfg: Any, kills: list[str], clean: dict[str, Any], search_admin: Any,
               so: dict[str, Any]) -> int:
    """Attempts killed at ``kills`` in turn, each resuming the one before; a logical run
    that finishes is checked and the next kill starts a new one. Returns the kills that
    landed."""
    landed = run_kills = 0
    k = 0
    cfg = make_cfg(k)
    pending = list(kills)
    while True:
        kill = pending.pop(0) if pending else None
        proc = _attempt(cfg, kill)
        if proc.returncode == -9:
            landed += 1
            run_kills += 1
            continue
        assert proc.returncode == 0, proc.stderr[-2000:]
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report["conserved"], report
        _check(cfg, clean, run_kills, search_admin, so)
        if not pending:
            return landed
        k, run_kills = k + 1, 0
        cfg = make_cfg(k)


@pytest.mark.timeout(420)
def test_killed_runs_resume_to_the_clean_result(tmp_path: Path, s3_bucket: Any,
                                                search_url: str, search_admin: Any) -> None:
    bucket, so = s3_bucket
    rng = random.Random(8)
    bad = _write_input(tmp_path / "in.jsonl")
    src_index = search_admin.new_index("resume-src", number_of_shards=2)
    search_admin.seed(src_index, [(f"d{i}", {"n": i, "text": f"doc {i}"}) for i in range(500)])
    kills = [f"{p}:{rng.randint(1, 8 if p == 'flush' else 2)}"
             for p in rng.choices(POINTS, k=20)]

    def cfg(mode: str, name: str) -> dict[str, Any]:
        return {"mode": mode, "input": str(tmp_path / "in.jsonl"), "search_url": search_url,
                "source_index": src_index, "target_index": search_admin.new_index(name),
                "staging": f"s3://{bucket}/{name}/staging/",
                "dlq": f"s3://{bucket}/{name}/dlq/", "reads": str(tmp_path / f"{name}.reads"),
                "part_max_mb": 0.004, "storage_options": so}

    def clean_run(mode: str) -> dict[str, Any]:
        clean_cfg = cfg(mode, f"{mode}-clean")
        proc = _attempt(clean_cfg, None)
        assert proc.returncode == 0, proc.stderr[-2000:]
        clean = {"docs": search_admin.docs(clean_cfg["target_index"]),
                 "dead": sorted(_dead_letters(clean_cfg["dlq"], so)),
                 "reads": Path(clean_cfg["reads"]).stat().st_size}
        total = N if mode == "jsonl" else 500
        assert clean["reads"] == total + (bad if mode == "jsonl" else 0)
        assert len(clean["dead"]) == (bad if mode == "jsonl" else 0) + sum(
            1 for i in range(total) if i % 37 == 5)
        return clean

    # each attempt is a process of its own: the two jobs run side by side, ten kills each
    with ThreadPoolExecutor(2) as pool:
        cleans = dict(zip(("jsonl", "es"), pool.map(clean_run, ("jsonl", "es")), strict=True))
        landed = list(pool.map(
            lambda mode, ks: _kill_runs(lambda k: cfg(mode, f"{mode}-{k}"), ks, cleans[mode],
                                        search_admin, so),
            ("jsonl", "es"), (kills[:10], kills[10:])))
    # a point past the end of what is left finishes a logical run; most land
    assert sum(landed) >= 12, landed


def test_a_fresh_run_that_fails_resumes_past_the_old_manifest(tmp_path: Path) -> None:
    _write_input(tmp_path / "in.jsonl")
    run(_local_job(tmp_path, []), progress=False)  # a complete run: its manifest stays
    first: list[Any] = []
    with pytest.raises(Exception, match="the job stops here"):
        run(_local_job(tmp_path, first, fail_at=300), progress=False, fresh=True)
    assert (tmp_path / "staging" / "_manifest.json").exists()  # the old commit, still there
    second: list[Any] = []
    report = run(_local_job(tmp_path, second), progress=False)
    assert report.conserved and report.skipped_records > 0
    assert sorted(set(first) | set(second)) == list(range(N))
    assert len(from_storage(str(tmp_path / "staging")).manifest().parts) > 1
    assert sorted(r["n"] for r in from_storage(str(tmp_path / "staging"))) == list(range(N))
