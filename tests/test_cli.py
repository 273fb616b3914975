"""The `sesa` command line and the quickstart, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "recipes" / "quickstart.yaml"


def sesa(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "sesa_fp", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def report_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def quickstart_copy(tmp_path: Path, text: str | None = None) -> Path:
    """A job in tmp_path that is the quickstart (or ``text``), with its transformer beside it."""
    job = tmp_path / "job.yaml"
    text = QUICKSTART.read_text() if text is None else text
    job.write_text(text.replace("{{ job_dir }}/data", str(REPO / "recipes/data")))
    (tmp_path / "rfi_transforms.py").write_text((REPO / "recipes/rfi_transforms.py").read_text())
    return job


def count_lines(paths: list[Path]) -> int:
    return sum(len(p.read_text().splitlines()) for p in paths)


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    cwd = tmp_path_factory.mktemp("qs")
    proc = sesa(str(QUICKSTART), "--set", "ds=2025-09-06", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd, report_of(proc)


def test_quickstart_counts(quickstart_run: tuple[Path, Any]) -> None:
    cwd, report = quickstart_run
    # recipes/make_sample_data.py: 3000 lines, 4 malformed, 12 bad dates, 25 without rfi_number
    assert (report["read"], report["loaded"], report["dropped"], report["dead_letters"]) == \
        (3000, 2959, 25, 16)
    assert report["conserved"] is True
    files = next(o for o in report["outputs"] if o["kind"] == "files")
    datasets = files["datasets"]
    assert sorted(datasets) == ["rfi-enriched-2025.07", "rfi-enriched-2025.08",
                                "rfi-enriched-2025.09", "rfi-enriched-2025.10"]
    warehouse = cwd / "out" / "quickstart" / "warehouse"
    for name, n in datasets.items():
        parts = sorted((warehouse / name / "run=2025-09-06").glob("part-*.jsonl"))
        assert count_lines(parts) == n
    assert sum(datasets.values()) == 2959
    staging = next(o for o in report["outputs"] if o["kind"] == "staging")
    assert staging["records"] == 2996 and "run_date=2025-09-06/run_id=20250906T000000" in \
        staging["uri"]
    dlq = next(o for o in report["outputs"] if o["kind"] == "dlq")
    assert dlq["records"] == 16


def test_quickstart_rows_are_transformed(quickstart_run: tuple[Path, Any]) -> None:
    cwd, _ = quickstart_run
    part = next((cwd / "out/quickstart/warehouse/rfi-enriched-2025.08/run=2025-09-06").glob(
        "part-*.jsonl"))
    rows = [json.loads(line) for line in part.read_text().splitlines()]
    assert all(r["validated"] is True and len(r["_id"]) == 64 for r in rows)
    assert all(r["title"] is None or r["title"] == r["title"].strip() for r in rows)
    assert all(r["created_at"].startswith("2025-08") for r in rows)


def test_rerun_is_idempotent(quickstart_run: tuple[Path, Any], tmp_path: Path) -> None:
    cwd, _ = quickstart_run
    warehouse = cwd / "out/quickstart/warehouse"
    before = {p: p.read_bytes() for p in warehouse.rglob("part-*")}
    proc = sesa(str(QUICKSTART), "--set", "ds=2025-09-06", cwd=cwd)
    assert proc.returncode == 0
    after = {p: p.read_bytes() for p in warehouse.rglob("part-*")}
    assert before == after


def test_rerun_resumes_from_staging_and_fresh_starts_over(quickstart_run: tuple[Path, Any]
                                                           ) -> None:
    cwd, first = quickstart_run
    # load_files acknowledges only at its commit: the parts are taken from staging (not
    # extracted again) and loaded again, their staged bad lines dead-lettered again in place
    report = report_of(sesa(str(QUICKSTART), "--set", "ds=2025-09-06", cwd=cwd))
    assert report["run_id"] == first["run_id"] and report["conserved"]
    assert (report["read"], report["resumed_records"], report["loaded"],
            report["dead_letters"]) == (3000, 3000, 2959, 16)
    assert report["resumed_parts"] >= 1 and report["skipped_parts"] == 0
    dlq = [p for p in (cwd / "out/quickstart/dlq").rglob("_manifest.json")]
    assert len(dlq) == 1  # the same logical run: one place for its dead letters
    fresh = report_of(sesa("run", "--config", str(QUICKSTART), "--set", "ds=2025-09-06",
                           "--fresh", cwd=cwd))
    assert (fresh["read"], fresh["resumed_records"], fresh["loaded"]) == (3000, 0, 2959)


def test_dlq_summary(quickstart_run: tuple[Path, Any]) -> None:
    cwd, _ = quickstart_run
    proc = sesa("dlq", "out/quickstart/dlq/", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    counts = {(r["stage"], r["error_type"]): r["count"] for r in summary["by_stage_and_error"]}
    assert sum(counts.values()) == summary["dead_letters"] >= 16
    assert any(e == "CastError" for _, e in counts) and any(e == "JSONDecodeError"
                                                            for _, e in counts)
    assert summary["samples"] and "record" in summary["samples"][0]


def test_replay_loads_staging_without_the_extractor(quickstart_run: tuple[Path, Any],
                                                    tmp_path: Path) -> None:
    cwd, _ = quickstart_run
    staging = next((cwd / "out/quickstart/staging").rglob("_manifest.json")).parent
    job = quickstart_copy(tmp_path, QUICKSTART.read_text().replace(
        "{{ job_dir }}/data/rfi-sample.jsonl", "/nonexistent/*.jsonl"))
    proc = sesa("replay", "--config", str(job), "--from", str(staging), "--set", "ds=2025-09-06",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = report_of(proc)
    assert (report["read"], report["loaded"], report["dropped"], report["dead_letters"]) == \
        (2996, 2959, 25, 12)


def test_seed_invocation_form(tmp_path: Path) -> None:
    proc = sesa("run", "--config", str(QUICKSTART), "--set", "ds=2025-09-07",
                "--set", "ts_nodash=20250907T000000Z", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out/quickstart/staging/run_date=2025-09-07/run_id=20250907T000000Z/"
            "_manifest.json").exists()
    events = [json.loads(line)["event"] for line in proc.stderr.splitlines()]
    assert events == ["run_started", "run_finished"]


BAD = {
    "malformed": ("job_name: t\nextractor: {type: jsonl\n", r"job.yaml:3:1: malformed YAML"),
    "unknown_key": ("job_name: t\nextractr: {}\n", "extractr: unknown key (did you mean 'extractor'?)"),
    "wrong_type": (None, "runtime.max_workers: expected int, got 'many'"),
    "unknown_type": (None, "unknown loader type 'bigquery'; known:"),
    "missing_var": (None, "'region' is undefined"),
    "bad_import": (None, "cannot import 'nowhere.at_all:Thing'"),
    "sandbox": (None, "sandbox"),
}


def _bad_job(kind: str) -> str:
    text = QUICKSTART.read_text()
    if kind == "wrong_type":
        return text.replace("max_workers: 2", "max_workers: many")
    if kind == "unknown_type":
        return text.replace("type: files", "type: bigquery")
    if kind == "missing_var":
        return text.replace("out/quickstart/dlq/", "out/{{ region }}/dlq/")
    if kind == "bad_import":
        return text.replace("rfi_transforms:RfiValidateCast", "nowhere.at_all:Thing")
    if kind == "sandbox":
        return text.replace("out/quickstart/dlq/", "{{ ''.__class__.__mro__ }}")
    return BAD[kind][0] or ""


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(kind: str, tmp_path: Path) -> None:
    job = quickstart_copy(tmp_path, _bad_job(kind))
    proc = sesa("run", "--config", str(job), "--set", "ds=2025-09-06", cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sesa: error: "), proc.stderr
    assert BAD[kind][1] in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_set_is_a_usage_error(tmp_path: Path) -> None:
    proc = sesa("run", "--config", str(QUICKSTART), "--set", "ds", cwd=tmp_path)
    assert proc.returncode == 2 and "--set 'ds': expected NAME=VALUE" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_validate_and_explain_do_no_io(tmp_path: Path) -> None:
    v = sesa("validate", "--config", str(QUICKSTART), "--set", "ds=2025-09-06", cwd=tmp_path)
    e = sesa("explain", "--config", str(QUICKSTART), "--set", "ds=2025-09-06", cwd=tmp_path)
    assert v.returncode == 0 and "ok: rfi_quickstart" in v.stdout
    assert e.returncode == 0 and e.stdout.startswith("# job: rfi_quickstart")
    assert "pipeline = pipe(" in e.stdout
    assert not (tmp_path / "out").exists()


def test_dead_letter_threshold_exits_3(tmp_path: Path) -> None:
    job = quickstart_copy(tmp_path, QUICKSTART.read_text().replace("max_ratio: 0.05",
                                                                   "max_records: 10"))
    proc = sesa("run", "--config", str(job), "--set", "ds=2025-09-06", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "16 dead letters > dlq.max_records 10" in proc.stderr
    assert report_of(proc)["dead_letters"] == 16
    assert Counter(json.loads(line)["event"] for line in proc.stderr.splitlines()
                   if line.startswith("{"))["run_finished"] == 1


def test_run_failure_exits_1(tmp_path: Path) -> None:
    job = quickstart_copy(tmp_path, QUICKSTART.read_text().replace(
        "{{ job_dir }}/data/rfi-sample.jsonl", str(tmp_path / "missing/*.jsonl")))
    proc = sesa("run", "--config", str(job), "--set", "ds=2025-09-06", cwd=tmp_path)
    assert proc.returncode == 1
    assert "no file matches" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("_manifest.json"))
