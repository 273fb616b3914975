"""A job's partitions: listed as JSON, run one by one (as mapped tasks do), merged into one
conserved report with one staging manifest over every partition's parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from sesa_fp import merge, partition, pipe, run
from sesa_fp.config import build_job, load_job
from sesa_fp.errors import ConfigError, ConservationError
from sesa_fp.fanout import merge_job_reports, run_job
from sesa_fp.partitions import job_partitions, list_partitions
from sesa_fp.report_merge import merge_reports
from sesa_fp.storage import from_storage, read_manifest

REPO = Path(__file__).resolve().parent.parent


def _job(tmp: Path, files: int = 3) -> Path:
    data = tmp / "in"
    data.mkdir()
    for f in range(files):
        lines = [json.dumps({"k": f * 10 + i, "t": f" x{i} "}) for i in range(10)]
        lines.insert(2, "{bad")
        (data / f"f{f}.jsonl").write_text("\n".join(lines) + "\n")
    job = tmp / "job.yaml"
    job.write_text(f"""
job_name: glob
extractor: {{type: jsonl, path: "{data}/*.jsonl"}}
storage: {{uri: "{tmp / 'staging'}", options: {{gzip: false}}}}
transform: {{chain: [{{type: normalize}}]}}
loader: {{type: files, dataset: out, connection: {{root: "{tmp / 'out'}"}},
          options: {{id_strategy: {{type: sha256_concat, fields: [k]}}}}}}
dlq: {{uri: "{tmp / 'dlq'}", max_records: 100}}
""")
    return job


def sesa(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sesa_fp", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_sesa_partitions_lists_one_per_file(tmp_path: Path) -> None:
    proc = sesa("partitions", "--config", str(_job(tmp_path)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    parts = json.loads(proc.stdout)
    assert [(p["partition"], p["of"]) for p in parts] == [(0, 3), (1, 3), (2, 3)]
    assert [Path(p["source"].split("'")[1]).name for p in parts] == \
        ["f0.jsonl", "f1.jsonl", "f2.jsonl"]


def test_search_slices_and_sql_partitions_are_listed_without_io() -> None:
    from sesa_fp.sources.search import es_source

    src = es_source(hosts=["http://127.0.0.1:1"], index="rfi-*", slices=4, password="pw")
    parts = list_partitions(pipe(merge(*src.partitions())))
    assert [p["partition"] for p in parts] == [0, 1, 2, 3]
    assert all("[" in p["source"] and "pw" not in p["source"] for p in parts)


def test_partitions_run_one_by_one_then_merge(tmp_path: Path) -> None:
    job = _job(tmp_path)
    n = len(job_partitions(job))
    proc = sesa("run", "--config", str(job), "--partition", "1", "--run-id", "r1",
                "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    one = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (one["read"], one["loaded"], one["dead_letters"]) == (11, 10, 1)
    assert (tmp_path / "staging" / "partition=0001" / "_manifest.json").exists()
    reports = [one if i == 1 else run_job(job, partition=i, run_id="r1")[1] for i in range(n)]
    _, merged = merge_job_reports(job, None, reports, run_id="r1")
    assert (merged.read, merged.loaded, merged.dead_letters, merged.conserved) == \
        (33, 30, 3, True)
    loaded = [json.loads(line)["k"] for f in (tmp_path / "out").rglob("part-*.jsonl")
              for line in f.read_text().splitlines()]
    assert sorted(loaded) == list(range(30))  # no partition's commit replaced another's
    manifest = read_manifest(str(tmp_path / "staging"))
    assert len({p.path.split("/")[0] for p in manifest.parts}) == 3
    assert sorted(r["k"] for r in from_storage(str(tmp_path / "staging"))) == list(range(30))
    # a partition that did not report is refused, not merged into a smaller total
    with pytest.raises(ConfigError, match="3 partitions but 2 reports"):
        merge_job_reports(job, None, reports[:2], run_id="r1")


def test_out_of_range_partition_is_a_config_error(tmp_path: Path) -> None:
    proc = sesa("run", "--config", str(_job(tmp_path)), "--partition", "7", cwd=tmp_path)
    assert proc.returncode == 2 and "partition 7 out of range" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_merged_report_not_conserved_raises() -> None:
    good = run(pipe([1, 2]), progress=False).to_dict()
    bad: dict[str, Any] = {**good, "read": 5, "unaccounted": 3, "conserved": False}
    merged = merge_reports([good, bad])
    assert (merged.read, merged.conserved) == (7, False)
    from sesa_fp.report_merge import check_conserved

    with pytest.raises(ConservationError, match="read 7 != emitted 4"):
        check_conserved(merged)


def test_built_job_partitions_match_the_cli(tmp_path: Path) -> None:
    job = _job(tmp_path, files=2)
    assert list_partitions(build_job(load_job(job)).pipeline) == job_partitions(job)


def test_merged_report_sums_resumed_skipped_and_dead_letter_kinds(tmp_path: Path) -> None:
    from sesa_fp import stage
    from sesa_fp.storage import dlq_sink

    def odd(r: int) -> int:
        if r % 2:
            raise ValueError("odd")
        return r

    a = run(pipe(range(5), stage(odd), partition(dlq_sink(str(tmp_path / "a")))),
            progress=False)
    b = run(pipe(range(3), stage(odd), partition(dlq_sink(str(tmp_path / "b")))),
            progress=False)
    b = attrs.evolve(b, resumed_parts=1, resumed_records=4, skipped_parts=2, skipped_records=9)
    merged = merge_reports([a.to_dict(), b])
    assert merged.dead_letter_kinds == ({"stage": "odd", "error_type": "ValueError",
                                         "count": 3},)
    assert (merged.resumed_parts, merged.resumed_records, merged.skipped_parts,
            merged.skipped_records) == (1, 4, 2, 9)
