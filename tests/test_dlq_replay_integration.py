"""`sesa replay --dead-letters` against the real search engine and the S3 server: a job whose
transform fails on some records, fixed by ``--set mode=lenient``, replayed twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from dlq_replay_job import outputs, records, sesa, write_job

from sesa_fp import read_dead_letters

pytestmark = pytest.mark.integration


def test_replayed_dead_letters_reach_the_index_once(
        search_admin: Any, search_url: str, s3_url: str,
        s3_bucket: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    s3fs = pytest.importorskip("s3fs")
    bucket, opts = s3_bucket
    fs = s3fs.S3FileSystem(**opts)
    fs.pipe(f"{bucket}/in/items.jsonl",
            "".join(json.dumps(r) + "\n" for r in records()).encode())
    index = f"replay-{time.monotonic_ns()}"
    loader = (f'  type: elasticsearch\n  connection: {{ hosts: ["{search_url}"] }}\n'
              f'  dataset: "{index}"\n'
              '  options: { id_strategy: { type: field, field: k } }')
    job = write_job(tmp_path, source=f"s3://{bucket}/in/items.jsonl", loader=loader,
                    dlq=f"s3://{bucket}/dlq/", backend="s3",
                    storage=f'storage: {{ backend: s3, uri: "s3://{bucket}/staging/" }}')
    env = {"AWS_ENDPOINT_URL": s3_url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    dlq = f"s3://{bucket}/dlq/"
    try:
        proc, first = sesa("run", "--config", str(job), "--set", "mode=strict", cwd=tmp_path,
                           env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (first["read"], first["loaded"], first["dead_letters"]) == (30, 24, 6)
        assert search_admin.count(index) == 24

        proc, rep = sesa("replay", "--config", str(job), "--dead-letters", dlq,
                         "--set", "mode=lenient", cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # the 4 "n/a" letters load; the 2 "broken" fail again, into this run's DLQ folder
        assert (rep["read"], rep["loaded"], rep["dropped"], rep["dead_letters"],
                rep["conserved"]) == (6, 4, 0, 2, True)
        assert outputs(rep)["dead_letters_read"]["letters"] == 6
        assert outputs(rep)["dead_letters_replayed"] | {"marks_written": 0} == {
            "kind": "dead_letters_replayed", "loaded": 4, "dropped": 0, "failed_again": 2,
            "marks_written": 0}
        docs = search_admin.docs(index)
        assert sorted(docs, key=int) == [str(k) for k in range(30) if k not in (5, 20)]
        for k in ("3", "10", "17", "24"):  # the fixed ones, normalized once (first run)
            assert docs[k] == {"k": k, "name": f"item {k}", "qty": None}
        assert docs["4"] == {"k": "4", "name": "item 4", "qty": 4}

        proc, again = sesa("replay", "--config", str(job), "--dead-letters", dlq,
                           "--set", "mode=lenient", cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        read = outputs(again)["dead_letters_read"]
        # 6 originals, all marked, and the 2 copies the first replay committed
        assert (read["letters"], read["skipped_resolved"], read["yielded"]) == (8, 6, 2)
        assert (again["read"], again["loaded"], again["dead_letters"],
                again["conserved"]) == (2, 0, 2, True)
        assert search_admin.docs(index) == docs  # nothing loaded again, nothing changed

        pending = list(read_dead_letters(dlq, storage_options=opts, letters=True))
        assert sorted(x.record["k"] for x in pending) == ["20", "5"]  # each once
        assert all(x.letter["replay_of"] for x in pending)
        marks = fs.glob(f"{bucket}/dlq/*/_resolved/*.json")
        assert len(marks) >= 2  # the first run's folder, and the first replay's
    finally:
        search_admin.drop(index)
