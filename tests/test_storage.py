"""Staging: rolling parts + manifest written last, verified replay, dead-letter sink.

Every test uses real filesystems (fsspec ``memory://``, a local directory, ``file://`` URLs);
nothing is mocked.
"""

from __future__ import annotations

import base64
import gzip as gzip_mod
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sesa_fp import (
    CorruptPartError,
    DeadLetter,
    Failure,
    ManifestError,
    StageError,
    StorageError,
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

TINY_MB = 0.0005  # ~524 bytes per part: many part boundaries with little data

# -- helpers ---------------------------------------------------------------------------------


def _run(stream: Any, **kw: Any) -> Any:
    return run(stream, progress=False, **kw)


def _fs(uri: str) -> tuple[Any, str]:
    return fsspec.core.url_to_fs(uri)


def _files(uri: str) -> dict[str, bytes]:
    """Every file under the prefix, by name relative to it."""
    fs, root = _fs(uri)
    root = root.rstrip("/")
    if not fs.exists(root):
        return {}
    return {p[len(root) + 1:]: fs.cat_file(p) for p in fs.find(root)}


def _manifest_json(uri: str) -> dict[str, Any]:
    return orjson.loads(_files(uri)[MANIFEST_NAME])


def _rm(uri: str) -> None:
    fs, root = _fs(uri)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _new_uri(backend: str, base: Path) -> str:
    name = uuid.uuid4().hex
    if backend == "memory":
        return f"memory://sesa-tests/{name}/staging/"
    if backend == "local":
        return str(base / name / "staging")
    if backend == "file_url":
        return f"file://{base / name / 'staging'}/"
    raise AssertionError(backend)


def _same(a: Any, b: Any) -> bool:
    """Equal with the same JSON types all the way down (1 != 1.0 here), keys in order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _filler(i: int, size: int) -> dict[str, Any]:
    """A deterministic, incompressible record (so gzip parts really roll over)."""
    raw = b"".join(hashlib.sha256(b"%d-%d" % (i, k)).digest() for k in range(size // 43 + 1))
    return {"filler": i, "blob": base64.b64encode(raw).decode()[:size]}


def _interleave(records: list[Any], gz: bool) -> list[Any]:
    size, minimum = (3000, 12) if gz else (300, 6)
    out: list[Any] = []
    for i in range(max(len(records), minimum)):
        if i < len(records):
            out.append(records[i])
        out.append(_filler(i, size))
    return out


def _records(n: int, pad: int = 40) -> list[dict[str, Any]]:
    return [{"i": i, "t": f"record {i} " + "x" * pad, "é": ["ü", {"n": i * 1.5}]}
            for i in range(n)]


def _write(uri: str, records: Any, *, gz: bool, part_max_mb: float = TINY_MB) -> Any:
    return _run(pipe(records, tee(to_storage(uri, gzip=gz, part_max_mb=part_max_mb))))


def _part_lines(data: bytes, gz: bool) -> list[bytes]:
    if gz:
        data = gzip_mod.decompress(data)
    return data.splitlines()


# -- strategies ------------------------------------------------------------------------------

_special_text = st.sampled_from([
    "", " ", "e\u0301", "a\u0308\u0301\u0323", "\U0001F600", "\U0001D11E", "\U00010348x",
    "\u2028\u2029", "\n\r\t\"\\/", "\x00\x1f", "null", "{}", "[]", "日本語", "\ufeff",
])
_text = st.text(max_size=12) | _special_text
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**64 - 1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_record = st.dictionaries(_text, _json, max_size=5) | st.sampled_from([{}, {"": ""}, {"a": []}])
_records_st = st.lists(_record, max_size=20)

_settings = settings(
    max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("backend", ["memory", "local", "file_url"])
@_settings
@given(records=_records_st)
def test_round_trip_is_lossless_and_ordered(
    backend: str, gz: bool, records: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    uri = _new_uri(backend, tmp_path_factory.getbasetemp())
    data = _interleave(records, gz)
    try:
        report = _write(uri, data, gz=gz)
        assert report.emitted == len(data) and report.dead_letters == 0
        back = list(from_storage(uri))
        assert len(back) == len(data)
        assert all(_same(a, b) for a, b in zip(back, data, strict=True)), (back, data)
        manifest = read_manifest(uri)
        assert len(manifest.parts) > 1, "fillers must force several part boundaries"
        assert manifest.records == len(data)
        assert manifest.compression == ("gzip" if gz else None)
    finally:
        _rm(uri)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_empty_stream_commits_an_empty_prefix(gz: bool) -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/"
    _write(uri, [], gz=gz)
    assert list(from_storage(uri)) == []
    m = _manifest_json(uri)
    assert m["parts"] == [] and m["totals"] == {"parts": 0, "records": 0, "bytes": 0}
    assert set(_files(uri)) == {MANIFEST_NAME}


# -- the manifest ----------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("backend", ["memory", "local", "file_url"])
def test_manifest_describes_every_part_exactly(backend: str, gz: bool, tmp_path: Path) -> None:
    uri = _new_uri(backend, tmp_path)
    data = _interleave(_records(30), gz)
    _write(uri, data, gz=gz)
    files = _files(uri)
    m = _manifest_json(uri)
    assert m["format"] == "sesa_fp/manifest@1"
    assert m["kind"] == "staging"
    assert m["compression"] == ("gzip" if gz else None)
    parts = m["parts"]
    assert len(parts) > 1
    ext = ".jsonl.gz" if gz else ".jsonl"
    assert [p["path"] for p in parts] == [f"part-{i:05d}{ext}" for i in range(len(parts))]
    # the prefix holds exactly the listed parts and the manifest (no temp files, no strays)
    assert set(files) == {p["path"] for p in parts} | {MANIFEST_NAME}
    replayed: list[Any] = []
    for p in parts:
        blob = files[p["path"]]
        assert p["bytes"] == len(blob)
        assert p["sha256"] == hashlib.sha256(blob).hexdigest()
        lines = _part_lines(blob, gz)
        assert p["records"] == len(lines) > 0
        replayed.extend(orjson.loads(line) for line in lines)
    assert replayed == data
    assert m["totals"] == {
        "parts": len(parts),
        "records": sum(p["records"] for p in parts),
        "bytes": sum(p["bytes"] for p in parts),
    }
    assert m["totals"]["records"] == len(data)


def _watching(records: list[Any], uri: str, seen: list[tuple[int, bool]]) -> Iterator[Any]:
    """Yield records, noting after each how many part files exist and whether a manifest does."""
    for rec in records:
        yield rec
        files = _files(uri)
        seen.append((sum(1 for f in files if f.startswith("part-")), MANIFEST_NAME in files))


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_manifest_is_written_last(gz: bool) -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/"
    data = _interleave(_records(20), gz)
    seen: list[tuple[int, bool]] = []
    _write(uri, _watching(data, uri, seen), gz=gz)
    # the stream was observed while parts were being written: parts appear, no manifest yet
    assert max(n for n, _ in seen) >= 1
    assert not any(has_manifest for _, has_manifest in seen)
    assert MANIFEST_NAME in _files(uri)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("backend", ["memory", "local"])
def test_failing_stream_aborts_no_manifest_no_parts(backend: str, gz: bool,
                                                     tmp_path: Path) -> None:
    uri = _new_uri(backend, tmp_path)
    data = _interleave(_records(20), gz)
    parts_seen: list[int] = []

    def source() -> Iterator[Any]:
        yield from data
        parts_seen.append(sum(1 for f in _files(uri) if f.startswith("part-")))
        yield {"boom": True}

    def explode(rec: Any) -> Any:
        if rec.get("boom"):
            raise RuntimeError("downstream broke")
        return rec

    w = to_storage(uri, gzip=gz, part_max_mb=TINY_MB)
    with pytest.raises(StageError, match="downstream broke"):
        _run(pipe(source(), tee(w), stage(explode, errors=(KeyError,))))
    assert parts_seen and parts_seen[0] >= 1, "parts were on disk before the failure"
    assert _files(uri) == {}
    with pytest.raises(ManifestError):
        list(from_storage(uri))
    assert w.describe()["records"] == 0


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_stream_closed_early_leaves_no_commit(gz: bool) -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/"
    data = _interleave(_records(20), gz)
    it = iter(pipe(data, tee(to_storage(uri, gzip=gz, part_max_mb=TINY_MB))))
    taken = [next(it) for _ in range(len(data) - 3)]
    assert taken == data[: len(data) - 3]
    assert any(f.startswith("part-") for f in _files(uri))
    it.close()
    assert _files(uri) == {}
    with pytest.raises(ManifestError):
        read_manifest(uri)


@pytest.mark.parametrize("backend", ["memory", "local", "file_url"])
def test_rewriting_a_committed_prefix_replaces_it(backend: str, tmp_path: Path) -> None:
    uri = _new_uri(backend, tmp_path)
    first = _interleave(_records(30), False)
    _write(uri, first, gz=False)
    old_parts = set(_files(uri)) - {MANIFEST_NAME}
    assert len(old_parts) > 3
    second = [{"second": i} for i in range(3)]
    _write(uri, second, gz=True, part_max_mb=1)
    files = _files(uri)
    m = _manifest_json(uri)
    # the new part has a name of its own (it was written while the old commit stood)
    (part,) = [p["path"] for p in m["parts"]]
    assert part.startswith("part-") and part.endswith("-00000.jsonl.gz")
    assert set(files) == {part, MANIFEST_NAME}
    assert not old_parts & set(files)
    assert list(from_storage(uri)) == second


def _reading(records: list[Any], uri: str, seen: list[list[Any]]) -> Iterator[Any]:
    """Yield records, reading the committed prefix back after each."""
    for rec in records:
        yield rec
        seen.append(list(from_storage(uri)))


@pytest.mark.parametrize("backend", ["memory", "local"])
def test_rewrite_keeps_the_old_commit_readable_until_the_new_one_is_complete(
        backend: str, tmp_path: Path) -> None:
    uri = _new_uri(backend, tmp_path)
    old = _interleave(_records(10), False)
    _write(uri, old, gz=False)
    new = [{"new": i} for i in range(40)]
    seen: list[list[Any]] = []
    _write(uri, _reading(new, uri, seen), gz=False)
    assert len(seen) == len(new) and all(s == old for s in seen)
    assert list(from_storage(uri)) == new
    assert set(_files(uri)) == {p.path for p in read_manifest(uri).parts} | {MANIFEST_NAME}


def _dies_after(records: list[Any], n: int) -> Iterator[Any]:
    yield from records[:n]
    raise RuntimeError(f"source died after {n} records")


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("backend", ["memory", "local", "file_url"])
def test_failed_rerun_leaves_the_previous_commit_readable(backend: str, gz: bool,
                                                          tmp_path: Path) -> None:
    uri = _new_uri(backend, tmp_path)
    old = _interleave(_records(20), gz)
    _write(uri, old, gz=gz)
    before = _files(uri)
    new = _interleave([{"new": i} for i in range(20)], gz)
    with pytest.raises(RuntimeError, match="source died"):
        _write(uri, _dies_after(new, len(new) // 2), gz=gz)
    assert list(from_storage(uri)) == old
    assert _files(uri) == before  # the aborted writer took its own parts with it
    # a rerun that does complete replaces the commit and clears the old parts
    _write(uri, new, gz=gz)
    assert list(from_storage(uri)) == new
    assert not (set(before) - {MANIFEST_NAME}) & set(_files(uri))


def test_rerun_after_a_dead_process_ignores_and_clears_its_leftovers(tmp_path: Path) -> None:
    uri = str(tmp_path / "st")
    old = _interleave(_records(10), False)
    _write(uri, old, gz=False)
    # a writer whose process died mid-stream: parts on disk, never committed, never aborted
    dead = to_storage(uri, gzip=False, part_max_mb=TINY_MB)
    dead.prepare()
    for rec in _interleave([{"dead": i} for i in range(10)], False):
        dead.write(rec)
    leftovers = set(_files(uri)) - {p.path for p in read_manifest(uri).parts} - {MANIFEST_NAME}
    assert leftovers
    assert list(from_storage(uri)) == old
    _write(uri, [{"b": 1}], gz=False)
    assert list(from_storage(uri)) == [{"b": 1}]
    assert set(_files(uri)) == {p.path for p in read_manifest(uri).parts} | {MANIFEST_NAME}


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_rerun_of_the_same_input_leaves_the_same_files(gz: bool, tmp_path: Path) -> None:
    uri = str(tmp_path / "st")
    data = _interleave(_records(20), gz)
    _write(uri, data, gz=gz)
    first = _files(uri)
    parts = read_manifest(uri).parts
    _write(uri, data, gz=gz)
    assert _files(uri).keys() == first.keys()
    assert {n: b for n, b in _files(uri).items() if n != MANIFEST_NAME} == \
        {n: b for n, b in first.items() if n != MANIFEST_NAME}
    assert read_manifest(uri).parts == parts  # only the run id and time differ
    # a part damaged on disk is rewritten, not kept because the manifest vouches for it
    name = read_manifest(uri).parts[0].path
    (tmp_path / "st" / name).write_bytes(b"damaged")
    _write(uri, data, gz=gz)
    assert list(from_storage(uri)) == data


def test_commit_returns_the_records_committed() -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/"
    w = to_storage(uri, gzip=False, part_max_mb=TINY_MB)
    w.prepare()
    for rec in _records(25):
        w.write(rec)
    assert w.commit() == 25 == read_manifest(uri).records
    w.prepare()
    assert w.commit() == 0 == read_manifest(uri).records  # an empty staging commit
    dlq = dlq_sink(uri + "dlq/", per_run=False)
    dlq.prepare()
    assert dlq.commit() == 0 and not _files(uri + "dlq/")  # nothing to say, nothing written
    dlq.write(DeadLetter(record={"a": 1}, error_type="E", error_message="m", stage="s"))
    dlq.write({"any": "item"})
    assert dlq.commit() == 2 == read_manifest(uri + "dlq/").records


def test_close_part_starts_a_new_part_for_the_next_record() -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/"
    w = to_storage(uri, gzip=True)
    w.prepare()
    for i in range(3):
        w.write({"i": i})
        assert w.holds_part
        w.close_part()
        assert not w.holds_part
    w.close_part()  # nothing open: nothing to do
    assert w.commit() == 3
    assert [p.records for p in read_manifest(uri).parts] == [1, 1, 1]
    assert list(from_storage(uri)) == [{"i": i} for i in range(3)]


# -- where a writer may write ----------------------------------------------------------------


def test_prepare_creates_a_local_staging_directory_not_a_dlq_one(tmp_path: Path) -> None:
    staging, dlq = tmp_path / "a" / "staging", tmp_path / "b" / "dlq"
    to_storage(str(staging)).prepare()
    assert staging.is_dir()
    w = dlq_sink(str(dlq), per_run=False)
    w.prepare()
    assert not (tmp_path / "b").exists()
    w.write({"x": 1})
    assert w.commit() == 1 and (dlq / MANIFEST_NAME).exists()


def test_same_writer_can_run_twice() -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/"
    w = to_storage(uri, gzip=False, part_max_mb=TINY_MB)
    _run(pipe(_records(30), tee(w)))
    _run(pipe(_records(5), tee(w)))
    assert list(from_storage(uri)) == _records(5)
    assert w.describe()["records"] == 5


# -- corruption ------------------------------------------------------------------------------


def _corrupt_case(gz: bool) -> tuple[str, list[Any], list[dict[str, Any]]]:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/"
    data = _interleave(_records(12), gz)
    _write(uri, data, gz=gz)
    return uri, data, _manifest_json(uri)["parts"]


def _consume(uri: str) -> tuple[list[Any], BaseException | None]:
    got: list[Any] = []
    try:
        for rec in from_storage(uri):
            got.append(rec)
    except Exception as exc:
        return got, exc
    return got, None


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@settings(max_examples=50, deadline=None)
@given(which=st.floats(0, 1, exclude_max=True), where=st.floats(0, 1, exclude_max=True),
       mask=st.integers(1, 255))
def test_flipped_byte_is_detected_before_the_part_is_yielded(
    gz: bool, which: float, where: float, mask: int
) -> None:
    uri, data, parts = _corrupt_case(gz)
    try:
        k = int(which * len(parts))
        part = parts[k]
        fs, root = _fs(uri)
        path = f"{root.rstrip('/')}/{part['path']}"
        blob = bytearray(fs.cat_file(path))
        offset = int(where * len(blob))
        blob[offset] ^= mask
        fs.pipe_file(path, bytes(blob))
        got, exc = _consume(uri)
        assert isinstance(exc, CorruptPartError), exc
        assert part["path"] in str(exc)
        before = sum(p["records"] for p in parts[:k])
        assert got == data[:before], "no record of the corrupt part may be yielded"
    finally:
        _rm(uri)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_missing_part_is_a_corrupt_part_error(gz: bool) -> None:
    uri, data, parts = _corrupt_case(gz)
    fs, root = _fs(uri)
    k = len(parts) // 2
    fs.rm_file(f"{root.rstrip('/')}/{parts[k]['path']}")
    got, exc = _consume(uri)
    assert isinstance(exc, CorruptPartError)
    assert parts[k]["path"] in str(exc) and "missing" in str(exc)
    assert got == data[: sum(p["records"] for p in parts[:k])]


@pytest.mark.parametrize("backend", ["memory", "local", "file_url"])
def test_missing_manifest_is_a_clear_manifest_error(backend: str, tmp_path: Path) -> None:
    uri = _new_uri(backend, tmp_path)
    with pytest.raises(ManifestError) as info:
        list(from_storage(uri))
    msg = str(info.value)
    assert uri in msg and MANIFEST_NAME in msg and "not committed" in msg
    # parts without a manifest are still not a commit
    _write(uri, _records(5), gz=False)
    fs, root = _fs(uri)
    fs.rm_file(f"{root.rstrip('/')}/{MANIFEST_NAME}")
    with pytest.raises(ManifestError, match="not committed"):
        list(from_storage(uri))


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_every_truncation_of_the_manifest_is_a_manifest_error(gz: bool) -> None:
    uri, _, _ = _corrupt_case(gz)
    fs, root = _fs(uri)
    path = f"{root.rstrip('/')}/{MANIFEST_NAME}"
    original = fs.cat_file(path)
    for n in range(len(original)):
        fs.pipe_file(path, original[:n])
        with pytest.raises(ManifestError):
            list(from_storage(uri))


@settings(max_examples=50, deadline=None)
@given(garbage=st.binary(max_size=200)
       | st.builds(lambda v: orjson.dumps(v), _json)
       | st.sampled_from([
           b'{"format": "sesa_fp/manifest@1", "parts": 3}',
           b'{"format": "sesa_fp/manifest@1", "parts": [null]}',
           b'{"format": "sesa_fp/manifest@1", "parts": [{"path": "p"}]}',
           b'{"format": "sesa_fp/manifest@1", "parts": [{"path": "p", "records": "x",'
           b' "bytes": 1, "sha256": "s"}]}',
           b'{"format": "sesa_fp/manifest@2", "parts": []}',
           b'{"parts": []}',
       ]))
def test_garbage_manifest_is_a_manifest_error(garbage: bytes) -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/"
    fs, root = _fs(uri)
    fs.pipe_file(f"{root.rstrip('/')}/{MANIFEST_NAME}", garbage)
    try:
        with pytest.raises(ManifestError, match="manifest at"):
            list(from_storage(uri))
    finally:
        _rm(uri)


def _manifest_flip_outcomes(gz: bool, skip: tuple[bytes, ...]) -> list[str]:
    """Flip each manifest byte (xor 1) in turn; describe every flip whose replay neither
    raises a StorageError nor yields exactly the original records."""
    uri, data, _ = _corrupt_case(gz)
    fs, root = _fs(uri)
    path = f"{root.rstrip('/')}/{MANIFEST_NAME}"
    original = fs.cat_file(path)
    skipped: set[int] = set()
    for token in skip:
        start = original.find(token)
        if start >= 0:
            skipped.update(range(start, start + len(token)))
    bad = []
    for offset in range(len(original)):
        if offset in skipped:
            continue
        flipped = bytearray(original)
        flipped[offset] ^= 1
        fs.pipe_file(path, bytes(flipped))
        got, exc = _consume(uri)
        if exc is None and got != data:
            bad.append(f"offset {offset} ({original[offset - 8:offset + 8]!r}): silently "
                       f"yielded {len(got)} of {len(data)} records")
        elif exc is not None and not isinstance(exc, StorageError):
            bad.append(f"offset {offset} ({original[offset - 8:offset + 8]!r}): "
                       f"{type(exc).__name__}: {exc}")
    _rm(uri)
    return bad


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_flipped_manifest_byte_never_yields_wrong_data(gz: bool) -> None:
    """Any single flipped manifest byte either stops the replay with a StorageError or is
    harmless metadata."""
    assert _manifest_flip_outcomes(gz, skip=()) == []


def test_garbled_parts_key_is_a_manifest_error() -> None:
    uri, data, _ = _corrupt_case(False)
    fs, root = _fs(uri)
    path = f"{root.rstrip('/')}/{MANIFEST_NAME}"
    fs.pipe_file(path, fs.cat_file(path).replace(b'"parts":', b'"partr":', 1))
    got, exc = _consume(uri)
    assert isinstance(exc, ManifestError), (len(got), len(data), exc)


def test_garbled_compression_is_a_manifest_error() -> None:
    uri, _, _ = _corrupt_case(True)
    fs, root = _fs(uri)
    path = f"{root.rstrip('/')}/{MANIFEST_NAME}"
    fs.pipe_file(path, fs.cat_file(path).replace(b'"gzip"', b'"fzip"', 1))
    _, exc = _consume(uri)
    assert isinstance(exc, ManifestError), repr(exc)


# -- dead-letter sink ------------------------------------------------------------------------


def _to_int(rec: dict[str, Any]) -> dict[str, Any]:
    return {**rec, "n": int(rec["n"])}


def test_dlq_sink_writes_nothing_without_dead_letters() -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/dlq/"
    sink = dlq_sink(uri)
    report = _run(pipe([{"n": "1"}, {"n": "2"}], stage(_to_int), partition(sink)), run_id="r-0")
    assert report.emitted == 2 and report.dead_letters == 0
    fs, root = _fs(uri)
    assert not fs.exists(root) or fs.find(root) == []
    with pytest.raises(ManifestError):
        read_manifest(uri + "run_id=r-0/")
    assert sink.describe()["records"] == 0


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_dlq_sink_per_run_writes_under_run_id(gz: bool) -> None:
    base = f"memory://sesa-tests/{uuid.uuid4().hex}/dlq"
    sink = dlq_sink(base, gzip=gz, part_max_mb=TINY_MB)
    src = [{"n": str(i) if i % 3 else f"x{i}"} for i in range(60)]
    report = _run(pipe(src, stage(_to_int, name="to_int"), partition(sink)), run_id="run-42")
    assert (report.emitted, report.dead_letters, report.conserved) == (40, 20, True)
    assert set(_files(base)) >= {f"run_id=run-42/{MANIFEST_NAME}"}
    assert all(name.startswith("run_id=run-42/") for name in _files(base))
    dead = list(from_storage(base + "/run_id=run-42/"))
    assert [d["record"] for d in dead] == [r for r in src if r["n"].startswith("x")]
    assert {d["error_type"] for d in dead} == {"ValueError"}
    assert {d["stage"] for d in dead} == {"to_int"}
    assert {d["run_id"] for d in dead} == {"run-42"}
    m = read_manifest(base + "/run_id=run-42/")
    assert (m.kind, m.run_id, m.records) == ("dlq", "run-42", 20)
    assert len(m.parts) > 1 or gz  # gzip buffers ~20 KB before a part can roll over
    dlq_outputs = [o for o in report.outputs if o["kind"] == "dlq"]
    assert len(dlq_outputs) == 1 and dlq_outputs[0]["records"] == 20
    assert dlq_outputs[0]["uri"].rstrip("/").endswith("/dlq/run_id=run-42")
    # a second run goes to its own directory and leaves the first alone
    _run(pipe(src[:3], stage(_to_int), partition(sink)), run_id="run-43")
    assert read_manifest(base + "/run_id=run-42/").records == 20
    assert read_manifest(base + "/run_id=run-43/").records == 1


def test_dlq_sink_not_per_run_writes_at_the_prefix() -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/dlq/"
    _run(pipe([{"n": "x"}], stage(_to_int), partition(dlq_sink(uri, per_run=False))),
         run_id="r1")
    assert set(_files(uri)) == {"part-00000.jsonl.gz", MANIFEST_NAME}
    assert [d["record"] for d in from_storage(uri)] == [{"n": "x"}]


class _Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def test_dlq_sink_keeps_unencodable_records_as_repr() -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/dlq/"
    staging = f"memory://sesa-tests/{uuid.uuid4().hex}/staging/"
    src: list[Any] = [{"ok": 1}, {"o": _Opaque()}, {"s": {3, 1, 2}, "f": frozenset({"a"})}]
    report = _run(pipe(src, tee(to_storage(staging)), partition(dlq_sink(uri, per_run=False))))
    # {"o": _Opaque()} cannot be staged -> dead letter; the set record stages fine (as a list)
    assert (report.emitted, report.dead_letters, report.conserved) == (2, 1, True)
    dead = list(from_storage(uri))
    assert len(dead) == 1
    assert dead[0]["record"] == {"o": "<Opaque thing>"}
    assert dead[0]["error_type"] == "TypeError"
    assert list(from_storage(staging)) == [{"ok": 1}, {"s": [1, 2, 3], "f": ["a"]}]


def test_dlq_sink_writes_dead_letters_built_by_hand_with_odd_values() -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/dlq/"
    dl = DeadLetter(record={"o": object, "nested": [_Opaque()]}, error_type="E",
                    error_message="m", stage="s")
    _run(pipe([Failure(dl), {"fine": True}], partition(dlq_sink(uri, per_run=False))))
    (got,) = list(from_storage(uri))
    assert got["record"] == {"o": "<class 'object'>", "nested": ["<Opaque thing>"]}
    assert (got["error_type"], got["stage"]) == ("E", "s")


@pytest.mark.parametrize("bad", [{"n": 2**70}, {(1, 2): "tuple key"}], ids=["bigint", "tuplekey"])
def test_dlq_sink_keeps_records_orjson_rejects_outright(bad: dict[Any, Any]) -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/dlq/"
    staging = f"memory://sesa-tests/{uuid.uuid4().hex}/staging/"
    report = _run(pipe([{"ok": 1}, bad], tee(to_storage(staging)),
                       partition(dlq_sink(uri, per_run=False))))
    if report.dead_letters == 0:  # the codec kept it exactly (wide integers): never changed
        assert report.emitted == 2 and list(from_storage(staging)) == [{"ok": 1}, bad]
        return
    assert (report.emitted, report.dead_letters) == (1, 1)
    assert len(list(from_storage(uri))) == 1


# -- the run report --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("backend", ["memory", "local", "file_url"])
def test_report_counts_staged_bytes_and_names_the_prefix(backend: str, gz: bool,
                                                          tmp_path: Path) -> None:
    uri = _new_uri(backend, tmp_path)
    data = _interleave(_records(10), gz)
    report = _write(uri, data, gz=gz)
    m = read_manifest(uri)
    assert report.bytes_staged == m.bytes == sum(len(b) for n, b in _files(uri).items()
                                                 if n != MANIFEST_NAME)
    assert report.bytes_staged > 0
    (out,) = [o for o in report.outputs if o["kind"] == "staging"]
    assert (out["records"], out["bytes"], out["parts"]) == (len(data), m.bytes, len(m.parts))
    # the reported uri is the same location (fsspec may spell it differently)
    fs_a, root_a = _fs(out["uri"])
    fs_b, root_b = _fs(uri)
    assert type(fs_a) is type(fs_b) and root_a.rstrip("/") == root_b.rstrip("/")
    assert list(from_storage(out["uri"])) == data
    assert "staging" in str(report)


def test_report_bytes_staged_is_per_run() -> None:
    uri = f"memory://sesa-tests/{uuid.uuid4().hex}/"
    p = pipe(_records(50), tee(to_storage(uri, gzip=False)))
    first = _run(p)
    second = _run(p)
    assert first.bytes_staged == second.bytes_staged == read_manifest(uri).bytes


def test_a_prefix_with_a_garbled_manifest_can_be_rewritten(tmp_path: Path) -> None:
    uri = str(tmp_path / "st")
    _run(pipe([{"a": i} for i in range(5)], tee(to_storage(uri, gzip=False))))
    (tmp_path / "st" / MANIFEST_NAME).write_bytes(b"{garbled")
    (tmp_path / "st" / "part-00007.jsonl").write_bytes(b'{"stale": true}\n')
    _run(pipe([{"b": 1}], tee(to_storage(uri, gzip=False))))
    assert list(from_storage(uri)) == [{"b": 1}]
    (part,) = read_manifest(uri).parts
    assert sorted(p.name for p in (tmp_path / "st").iterdir()) == sorted([MANIFEST_NAME,
                                                                          part.path])
    assert part.path not in ("part-00000.jsonl", "part-00007.jsonl")
