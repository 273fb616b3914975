"""Staging on real object stores on 127.0.0.1 — S3 (moto's server), Azure Blob (Azurite) and
GCS (fake-gcs-server) — through the one fsspec code path: every test runs on each store
(the ``object_store`` fixture in conftest), and checks what was written with the store's own
client. No mocks."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from object_stores import ObjectStore

from sesa_fp import (
    CorruptPartError,
    ManifestError,
    StageError,
    StorageError,
    dlq_sink,
    from_storage,
    load_files,
    partition,
    pipe,
    run,
    stage,
    tee,
    to_storage,
)
from sesa_fp.config import build_job, load_job
from sesa_fp.storage import MANIFEST_NAME, read_manifest

pytestmark = pytest.mark.integration

TINY_MB = 0.0005


def _records(n: int) -> list[dict[str, Any]]:
    return [{"i": i, "text": f"record {i} \u00e9\U0001F600 " + "y" * 60, "nested": {"l": [i]}}
            for i in range(n)]


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_round_trip_parts_and_manifest(object_store: ObjectStore, gz: bool) -> None:
    store, opts = object_store, object_store.storage_options
    uri = store.uri("staging/orders/")
    data = _records(40)
    report = run(pipe(data, tee(to_storage(uri, gzip=gz, part_max_mb=TINY_MB,
                                           storage_options=opts))), progress=False)
    assert report.emitted == 40
    assert list(from_storage(uri, storage_options=opts)) == data

    files = store.keys("staging/orders")
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


def test_rewrite_replaces_the_prefix(object_store: ObjectStore) -> None:
    store, opts = object_store, object_store.storage_options
    uri = store.uri("staging/")
    run(pipe(_records(40), tee(to_storage(uri, gzip=False, part_max_mb=TINY_MB,
                                          storage_options=opts))), progress=False)
    run(pipe(_records(2), tee(to_storage(uri, gzip=False, storage_options=opts))),
        progress=False)
    assert list(from_storage(uri, storage_options=opts)) == _records(2)
    files = store.keys("staging")
    (part,) = read_manifest(uri, opts).parts
    assert part.path != "part-00000.jsonl"  # written while the old commit still stood
    assert set(files) == {part.path, MANIFEST_NAME}


def test_failing_stream_leaves_nothing(object_store: ObjectStore) -> None:
    store, opts = object_store, object_store.storage_options
    uri = store.uri("aborted/")

    def explode(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["i"] == 30:
            raise RuntimeError("boom")
        return rec

    with pytest.raises(StageError, match="boom"):
        run(pipe(_records(40), tee(to_storage(uri, gzip=False, part_max_mb=TINY_MB,
                                              storage_options=opts)),
                 stage(explode, errors=(KeyError,))), progress=False)
    assert store.keys("aborted") == {}
    with pytest.raises(ManifestError):
        read_manifest(uri, opts)


def test_dlq_sink_per_run(object_store: ObjectStore) -> None:
    store, opts = object_store, object_store.storage_options
    base = store.uri("dlq")
    src = [{"n": str(i) if i % 4 else "bad"} for i in range(20)]
    report = run(pipe(src, stage(lambda r: {"n": int(r["n"])}, name="to_int"),
                      partition(dlq_sink(base, storage_options=opts))),
                 progress=False, run_id="obj-run-1")
    assert (report.emitted, report.dead_letters, report.conserved) == (15, 5, True)
    dead = list(from_storage(f"{base}/run_id=obj-run-1/", storage_options=opts))
    assert [d["record"] for d in dead] == [{"n": "bad"}] * 5
    assert {(d["stage"], d["error_type"], d["run_id"]) for d in dead} == {
        ("to_int", "ValueError", "obj-run-1")}
    # a clean run writes nothing at all
    run(pipe([{"n": "1"}], stage(lambda r: r), partition(dlq_sink(base, storage_options=opts))),
        progress=False, run_id="obj-run-2")
    keys = store.keys("dlq")
    assert keys and all(k.startswith("run_id=obj-run-1/") for k in keys)
    assert MANIFEST_NAME in {k.split("/", 1)[1] for k in keys}


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_corrupted_part_is_detected(object_store: ObjectStore, gz: bool) -> None:
    store, opts = object_store, object_store.storage_options
    uri = store.uri("corrupt/")
    data = _records(40)
    run(pipe(data, tee(to_storage(uri, gzip=gz, part_max_mb=TINY_MB, storage_options=opts))),
        progress=False)
    parts = read_manifest(uri, opts).parts
    k = len(parts) - 1
    key = f"corrupt/{parts[k].path}"
    blob = bytearray(store.get(key))
    blob[len(blob) // 2] ^= 0x10
    store.put(key, bytes(blob))
    got: list[Any] = []
    with pytest.raises(CorruptPartError, match=parts[k].path):
        for rec in from_storage(uri, storage_options=opts):
            got.append(rec)
    assert got == data[: sum(p.records for p in parts[:k])]


def test_missing_part_is_detected(object_store: ObjectStore) -> None:
    store, opts = object_store, object_store.storage_options
    uri = store.uri("missing-part/")
    run(pipe(_records(40), tee(to_storage(uri, gzip=False, part_max_mb=TINY_MB,
                                          storage_options=opts))), progress=False)
    parts = read_manifest(uri, opts).parts
    store.delete(f"missing-part/{parts[0].path}")
    with pytest.raises(CorruptPartError, match="missing"):
        list(from_storage(uri, storage_options=opts))


def test_missing_manifest_is_detected(object_store: ObjectStore) -> None:
    store, opts = object_store, object_store.storage_options
    uri = store.uri("uncommitted/")
    with pytest.raises(ManifestError, match="not committed"):
        list(from_storage(uri, storage_options=opts))
    run(pipe(_records(5), tee(to_storage(uri, storage_options=opts))), progress=False)
    store.delete(f"uncommitted/{MANIFEST_NAME}")
    with pytest.raises(ManifestError, match=MANIFEST_NAME):
        list(from_storage(uri, storage_options=opts))


# -- buckets are never created ---------------------------------------------------------------


def _counted(records: list[Any], pulled: list[Any]) -> Iterator[Any]:
    for rec in records:
        pulled.append(rec)
        yield rec


@pytest.mark.parametrize("sink", ["to_storage", "dlq_sink", "load_files"])
def test_missing_bucket_is_an_error_before_any_record_is_read(
        object_store: ObjectStore, sink: str) -> None:
    store, opts = object_store, object_store.storage_options
    missing = f"no-such-bucket-{time.monotonic_ns()}"
    assert missing not in store.buckets()
    pulled: list[Any] = []
    source = _counted(_records(5), pulled)
    root = f"{store.scheme}://{missing}"
    if sink == "to_storage":
        p = pipe(source, tee(to_storage(f"{root}/staging/", storage_options=opts)))
    elif sink == "dlq_sink":
        p = pipe(source, partition(dlq_sink(f"{root}/dlq/", storage_options=opts)))
    else:
        p = pipe(source, load_files(f"{root}/out", dataset="d", run_key="r",
                                    storage_options=opts))
    with pytest.raises(StorageError, match=missing) as info:
        run(p, progress=False)
    assert "does not exist" in str(info.value)
    assert pulled == [], "the source must not be advanced"
    assert missing not in store.buckets()


def test_writers_leave_an_existing_bucket_alone(object_store: ObjectStore) -> None:
    store, opts = object_store, object_store.storage_options
    before = store.buckets()
    uri = store.uri("new/deep/prefix/")
    w = to_storage(uri, gzip=False, storage_options=opts)
    w.prepare()
    w.write({"a": 1})
    assert w.commit() == 1
    assert list(from_storage(uri, storage_options=opts)) == [{"a": 1}]
    assert store.buckets() == before
    assert set(store.keys("new/deep/prefix")) == {"part-00000.jsonl", MANIFEST_NAME}


# -- a failed rerun ----------------------------------------------------------------------------


def _interrupt(items: Iterator[Any], n: int) -> Iterator[Any]:
    for i, item in enumerate(items):
        if i == n:
            raise RuntimeError(f"source died after {n} records")
        yield item


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_failed_rerun_leaves_the_previous_commit_readable(
        object_store: ObjectStore, gz: bool) -> None:
    store, opts = object_store, object_store.storage_options
    uri = store.uri("rerun/")
    old = _records(40)
    run(pipe(old, tee(to_storage(uri, gzip=gz, part_max_mb=TINY_MB, storage_options=opts))),
        progress=False)
    before = store.keys("rerun")
    new = [{"new": i, "pad": "z" * 80} for i in range(40)]
    seen: list[list[Any]] = []

    def reading(records: list[Any]) -> Iterator[Any]:
        for i, rec in enumerate(records):
            yield rec
            if i % 10 == 9:  # while the rerun writes its parts, readers still get the old ones
                seen.append(list(from_storage(uri, storage_options=opts)))

    with pytest.raises(RuntimeError, match="source died"):
        run(pipe(_interrupt(reading(new), 25),
                 tee(to_storage(uri, gzip=gz, part_max_mb=TINY_MB, storage_options=opts))),
            progress=False)
    assert seen and all(s == old for s in seen)
    assert list(from_storage(uri, storage_options=opts)) == old
    assert store.keys("rerun") == before
    # the same rerun, complete this time, replaces the commit and removes the old parts
    report = run(pipe(new, tee(to_storage(uri, gzip=gz, part_max_mb=TINY_MB,
                                          storage_options=opts))), progress=False)
    assert report.emitted == 40
    assert list(from_storage(uri, storage_options=opts)) == new
    after = store.keys("rerun")
    assert set(after) == {p.path for p in read_manifest(uri, opts).parts} | {MANIFEST_NAME}
    assert not (set(before) - {MANIFEST_NAME}) & set(after)


def test_yaml_job_stages_and_dead_letters_on_the_store(
        object_store: ObjectStore, tmp_path: Path) -> None:
    """``storage.backend: s3 | azure | gcs`` in YAML builds the same writers, and they work."""
    store = object_store
    rows = [{"n": str(i) if i % 5 else "bad"} for i in range(25)]
    (tmp_path / "in.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    opts = orjson.dumps({"storage_options": store.storage_options}).decode()
    (tmp_path / "job.yaml").write_text(f"""
job_name: obj
extractor: {{type: jsonl, path: "{tmp_path / 'in.jsonl'}"}}
storage: {{backend: {store.backend}, uri: "{store.uri('yaml/staging/')}", options: {opts}}}
transform: {{chain: [{{type: cast, fields: [n], to: int}}]}}
loader: {{type: files, dataset: "d", connection: {{root: "{tmp_path / 'out'}"}}}}
dlq: {{backend: {store.backend}, uri: "{store.uri('yaml/dlq/')}", options: {opts}}}
""")
    built = build_job(load_job(tmp_path / "job.yaml", {}))
    report = run(built.pipeline, progress=False, run_id="yaml-1")
    assert (report.loaded, report.dead_letters, report.conserved) == (20, 5, True)
    so = store.storage_options
    assert list(from_storage(store.uri("yaml/staging/"), storage_options=so)) == rows
    dead = list(from_storage(store.uri("yaml/dlq/run_id=yaml-1/"), storage_options=so))
    assert [d["record"]["n"] for d in dead] == ["bad"] * 5
    assert MANIFEST_NAME in store.keys("yaml/staging")


def test_load_files_failed_rerun_keeps_every_dataset(object_store: ObjectStore) -> None:
    store, opts = object_store, object_store.storage_options
    root = store.uri("warehouse")
    docs = [{"d": f"ds{i % 3}", "n": i} for i in range(30)]

    def load(src: Any) -> Any:
        return run(pipe(src, load_files(root, dataset="{d}", run_key="k", storage_options=opts,
                                        max_open_datasets=2)), progress=False)

    assert load(docs).loaded == 30
    changed = [{**d, "changed": True} for d in docs]
    with pytest.raises(RuntimeError, match="source died"):
        load(_interrupt(iter(changed), 20))
    for ds in ("ds0", "ds1", "ds2"):
        got = list(from_storage(f"{root}/{ds}/run=k", storage_options=opts))
        assert got == [d for d in docs if d["d"] == ds]
    assert load(changed).loaded == 30
    assert list(from_storage(f"{root}/ds1/run=k", storage_options=opts)) == \
        [d for d in changed if d["d"] == "ds1"]
