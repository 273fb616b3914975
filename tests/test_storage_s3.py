"""Staging on a real S3 server (moto's, on 127.0.0.1, started by conftest): no mocks."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from sesa_fp import (
    CorruptPartError,
    ManifestError,
    StageError,
    dlq_sink,
    from_storage,
    partition,
    pipe,
    run,
    stage,
    tee,
    to_storage,
)
from sesa_fp.storage import MANIFEST_NAME, read_manifest

pytestmark = pytest.mark.integration

TINY_MB = 0.0005


def _s3fs(opts: dict[str, Any]) -> Any:
    s3fs = pytest.importorskip("s3fs")
    return s3fs.S3FileSystem(**opts)


def _records(n: int) -> list[dict[str, Any]]:
    return [{"i": i, "text": f"record {i} \u00e9\U0001F600 " + "y" * 60, "nested": {"l": [i]}}
            for i in range(n)]


def _keys(fs: Any, prefix: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    if not fs.exists(prefix):
        return {}
    return {p[len(prefix) + 1:]: fs.cat_file(p) for p in fs.find(prefix)}


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_s3_round_trip(s3_bucket: tuple[str, dict[str, Any]], gz: bool) -> None:
    bucket, opts = s3_bucket
    uri = f"s3://{bucket}/staging/orders/"
    data = _records(40)
    report = run(pipe(data, tee(to_storage(uri, gzip=gz, part_max_mb=TINY_MB,
                                           storage_options=opts))), progress=False)
    assert report.loaded == 40
    assert list(from_storage(uri, storage_options=opts)) == data

    fs = _s3fs(opts)
    files = _keys(fs, f"{bucket}/staging/orders")
    manifest = orjson.loads(files[MANIFEST_NAME])
    assert len(manifest["parts"]) > 1 or gz
    assert set(files) == {p["path"] for p in manifest["parts"]} | {MANIFEST_NAME}
    for p in manifest["parts"]:
        assert p["bytes"] == len(files[p["path"]])
        assert p["sha256"] == hashlib.sha256(files[p["path"]]).hexdigest()
    assert manifest["totals"]["records"] == 40
    assert report.bytes_staged == manifest["totals"]["bytes"]
    (out,) = [o for o in report.outputs if o["kind"] == "staging"]
    assert out["uri"].rstrip("/") == uri.rstrip("/")


def test_s3_rewrite_replaces_the_prefix(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    bucket, opts = s3_bucket
    uri = f"s3://{bucket}/staging/"
    run(pipe(_records(40), tee(to_storage(uri, gzip=False, part_max_mb=TINY_MB,
                                          storage_options=opts))), progress=False)
    run(pipe(_records(2), tee(to_storage(uri, gzip=False, storage_options=opts))),
        progress=False)
    assert list(from_storage(uri, storage_options=opts)) == _records(2)
    files = _keys(_s3fs(opts), f"{bucket}/staging")
    assert set(files) == {"part-00000.jsonl", MANIFEST_NAME}


def test_s3_failing_stream_leaves_nothing(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    bucket, opts = s3_bucket
    uri = f"s3://{bucket}/aborted/"

    def explode(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["i"] == 30:
            raise RuntimeError("boom")
        return rec

    with pytest.raises(StageError, match="boom"):
        run(pipe(_records(40), tee(to_storage(uri, gzip=False, part_max_mb=TINY_MB,
                                              storage_options=opts)),
                 stage(explode, errors=(KeyError,))), progress=False)
    assert _keys(_s3fs(opts), f"{bucket}/aborted") == {}
    with pytest.raises(ManifestError):
        read_manifest(uri, opts)


def test_s3_dlq_sink_per_run(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    bucket, opts = s3_bucket
    base = f"s3://{bucket}/dlq"
    src = [{"n": str(i) if i % 4 else "bad"} for i in range(20)]
    report = run(pipe(src, stage(lambda r: {"n": int(r["n"])}, name="to_int"),
                      partition(dlq_sink(base, storage_options=opts))),
                 progress=False, run_id="s3-run-1")
    assert (report.loaded, report.dead_letters, report.conserved) == (15, 5, True)
    dead = list(from_storage(f"{base}/run_id=s3-run-1/", storage_options=opts))
    assert [d["record"] for d in dead] == [{"n": "bad"}] * 5
    assert {(d["stage"], d["error_type"], d["run_id"]) for d in dead} == {
        ("to_int", "ValueError", "s3-run-1")}
    # a clean run writes nothing at all
    run(pipe([{"n": "1"}], stage(lambda r: r), partition(dlq_sink(base, storage_options=opts))),
        progress=False, run_id="s3-run-2")
    keys = _keys(_s3fs(opts), f"{bucket}/dlq")
    assert keys and all(k.startswith("run_id=s3-run-1/") for k in keys)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_s3_corrupted_part_is_detected(s3_bucket: tuple[str, dict[str, Any]], gz: bool) -> None:
    bucket, opts = s3_bucket
    uri = f"s3://{bucket}/corrupt/"
    data = _records(40)
    run(pipe(data, tee(to_storage(uri, gzip=gz, part_max_mb=TINY_MB, storage_options=opts))),
        progress=False)
    parts = read_manifest(uri, opts).parts
    k = len(parts) - 1
    fs = _s3fs(opts)
    key = f"{bucket}/corrupt/{parts[k].path}"
    blob = bytearray(fs.cat_file(key))
    blob[len(blob) // 2] ^= 0x10
    fs.pipe_file(key, bytes(blob))
    got: list[Any] = []
    with pytest.raises(CorruptPartError, match=parts[k].path):
        for rec in from_storage(uri, storage_options=opts):
            got.append(rec)
    assert got == data[: sum(p.records for p in parts[:k])]


def test_s3_missing_part_is_detected(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    bucket, opts = s3_bucket
    uri = f"s3://{bucket}/missing-part/"
    run(pipe(_records(40), tee(to_storage(uri, gzip=False, part_max_mb=TINY_MB,
                                          storage_options=opts))), progress=False)
    parts = read_manifest(uri, opts).parts
    _s3fs(opts).rm_file(f"{bucket}/missing-part/{parts[0].path}")
    with pytest.raises(CorruptPartError, match="missing"):
        list(from_storage(uri, storage_options=opts))


def test_s3_missing_manifest_is_detected(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    bucket, opts = s3_bucket
    uri = f"s3://{bucket}/uncommitted/"
    with pytest.raises(ManifestError, match="not committed"):
        list(from_storage(uri, storage_options=opts))
    run(pipe(_records(5), tee(to_storage(uri, storage_options=opts))), progress=False)
    fs = _s3fs(opts)
    fs.rm_file(f"{bucket}/uncommitted/{MANIFEST_NAME}")
    with pytest.raises(ManifestError, match=MANIFEST_NAME):
        list(from_storage(uri, storage_options=opts))
