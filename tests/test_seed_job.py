"""The seed's example job end to end: `sesa run --config ... --set ds=... --set ts_nodash=...`
against a real search engine and a real S3 server on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
JOBS = REPO / "tests" / "jobs"


def _docs() -> list[tuple[str, dict[str, Any]]]:
    """40 RFIs: 30 inside the 2025-09-06 window (one without an rfi_number), 10 outside."""
    out = []
    for i in range(40):
        day = "2025-09-06" if i < 30 else ("2025-09-05" if i % 2 else "2025-09-07")
        month = "08" if i % 3 == 0 else "09"
        out.append((f"src-{i}", {
            "@timestamp": f"{day}T{i % 24:02d}:00:00Z",
            "project_id": f"P{i % 4}",
            "rfi_number": None if i == 7 else i + 1,
            "title": f"  RFI {i}  ",
            "question": "" if i % 5 == 0 else "Which revision governs?",
            "created_at": f"2025-{month}-{(i % 28) + 1:02d}T10:00:00Z",
            "responded_at": None,
        }))
    return out


def _expected_id(project_id: str, rfi_number: int) -> str:
    a, b = project_id.encode(), str(rfi_number).encode()
    return hashlib.sha256(b"%d:%s%d:%s" % (len(a), a, len(b), b)).hexdigest()


def _run_seed(tmp_path: Path, search_url: str, s3_url: str, bucket: str,
              with_dates: bool) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    text = (JOBS / "seed_job.yaml").read_text()
    text = text.replace("https://es.example.com:9243", search_url).replace("my-bucket", bucket)
    if with_dates:  # the seed's fields list leaves out the dates its own transforms use
        text = text.replace('"question"]', '"question","created_at","responded_at"]')
    job = tmp_path / "rfi_pipeline.yaml"
    job.write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(JOBS)]),
           "AWS_ENDPOINT_URL": s3_url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.run(
        [sys.executable, "-m", "sesa_fp", "run", "--config", str(job),
         "--set", "ds=2025-09-06", "--set", "ts_nodash=20250906T000000Z"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    return proc, report


@pytest.fixture
def seeded(search_admin: Any) -> Any:
    search_admin.drop("rfi-*")
    search_admin.seed("rfi-2025.09", _docs())
    yield search_admin
    search_admin.drop("rfi-*")


def test_seed_job_end_to_end(seeded: Any, search_url: str, s3_url: str,
                             s3_bucket: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    bucket, opts = s3_bucket
    proc, report = _run_seed(tmp_path, search_url, s3_url, bucket, with_dates=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the query window [ds, next_ds) selects exactly the 30 documents of 2025-09-06
    assert (report["read"], report["loaded"], report["dropped"], report["dead_letters"]) == \
        (30, 29, 1, 0)
    # staged parts and manifest are on S3 under the seed's run_date/run_id prefix
    import s3fs

    fs = s3fs.S3FileSystem(**opts)
    prefix = f"{bucket}/etl/rfi/run_date=2025-09-06/run_id=20250906T000000Z"
    manifest = json.loads(fs.cat_file(f"{prefix}/_manifest.json"))
    assert manifest["totals"]["records"] == 30 and fs.exists(f"{prefix}/part-00000.jsonl.gz")
    # documents land in rfi-enriched-YYYY.MM with sha256_concat ids
    loaded = {**seeded.docs("rfi-enriched-2025.08"), **seeded.docs("rfi-enriched-2025.09")}
    assert len(loaded) == 29
    for doc_id, src in loaded.items():
        assert doc_id == _expected_id(src["project_id"], src["rfi_number"])
        assert src["validated"] is True and src["title"] == src["title"].strip()
        assert src["created_at"][:7] in ("2025-08", "2025-09")


def test_seed_job_as_written_loses_nothing(seeded: Any, search_url: str, s3_url: str,
                                           s3_bucket: tuple[str, dict[str, Any]],
                                           tmp_path: Path) -> None:
    """As written, the seed extracts no `created_at`, which its dataset template needs: every
    record must come out as a dead letter saying so, none silently dropped."""
    bucket, opts = s3_bucket
    proc, report = _run_seed(tmp_path, search_url, s3_url, bucket, with_dates=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (report["read"], report["loaded"], report["dropped"], report["dead_letters"]) == \
        (30, 0, 1, 29)
    dlq = next(o for o in report["outputs"] if o["kind"] == "dlq")
    assert dlq["uri"].startswith(f"s3://{bucket}/etl/rfi/dlq/run_id=") and dlq["records"] == 29
    import s3fs

    fs = s3fs.S3FileSystem(**opts)
    (manifest,) = fs.glob(f"{bucket}/etl/rfi/dlq/*/_manifest.json")
    assert json.loads(fs.cat_file(manifest))["totals"]["records"] == 29
