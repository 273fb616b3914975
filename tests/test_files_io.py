"""Files in (`read_jsonl`) and out (`load_files`), on local directories and ``memory://``."""

from __future__ import annotations

import gzip
import hashlib
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sesa_fp import (
    ConfigError,
    DeadLetter,
    Failure,
    StorageError,
    from_storage,
    load_files,
    partition,
    pipe,
    read_jsonl,
    run,
)
from sesa_fp.ids import id_strategy
from sesa_fp.storage import MANIFEST_NAME, read_manifest

# -- read_jsonl ------------------------------------------------------------------------------

MIXED = (
    b'{"a": 1}\n'  # 1
    b"\n"  # 2 blank
    b"   \t \r\n"  # 3 whitespace only
    b'{"a": 2, "s": "\xc3\xa9\xf0\x9f\x98\x80"}\r\n'  # 4 (CRLF, UTF-8)
    b"{oops\n"  # 5 bad JSON
    b"[1, 2]\n"  # 6 not an object
    b'"text"\n'  # 7 not an object
    b"null\n"  # 8 not an object
    b'{"a": 3}'  # 9, no final newline
)


def _split(items: list[Any]) -> tuple[list[Any], list[DeadLetter]]:
    good = [x for x in items if not isinstance(x, Failure)]
    dead = [x.failure() for x in items if isinstance(x, Failure)]
    return good, dead


def _check_mixed(items: list[Any], path: str) -> None:
    good, dead = _split(items)
    assert good == [{"a": 1}, {"a": 2, "s": "\u00e9\U0001F600"}, {"a": 3}]
    assert [(d.record["file"], d.record["line"]) for d in dead] == [
        (path, 5), (path, 6), (path, 7), (path, 8)]
    assert dead[0].error_type == "JSONDecodeError" and dead[0].record["raw"] == "{oops\n"
    assert [d.error_message for d in dead[1:]] == [
        "expected a JSON object, got list",
        "expected a JSON object, got str",
        "expected a JSON object, got NoneType",
    ]
    # the order of records and dead letters is the order of lines
    kinds = ["ok" if not isinstance(x, Failure) else "dead" for x in items]
    assert kinds == ["ok", "ok", "dead", "dead", "dead", "dead", "ok"]


def test_read_jsonl_plain_file(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_bytes(MIXED)
    _check_mixed(list(read_jsonl(str(f))), str(f))


def test_read_jsonl_gzip_file_is_inferred(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl.gz"
    f.write_bytes(gzip.compress(MIXED))
    _check_mixed(list(read_jsonl(str(f))), str(f))


def test_read_jsonl_memory_url() -> None:
    name = f"/sesa-tests/{uuid.uuid4().hex}/in.jsonl"
    import fsspec

    fsspec.filesystem("memory").pipe(name, MIXED)
    _check_mixed(list(read_jsonl(f"memory://{name}")), name)


def test_read_jsonl_glob_over_several_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b'{"f": "a", "n": 1}\n{"f": "a", "n": 2}\n')
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b'{"f": "b", "n": 1}\n{broken\n'))
    (tmp_path / "c.jsonl").write_bytes(b'\n{"f": "c", "n": 1}\n')
    (tmp_path / "ignored.txt").write_bytes(b"not json\n")
    items = list(read_jsonl(str(tmp_path / "*.jsonl*")))
    good, dead = _split(items)
    assert [(r["f"], r["n"]) for r in good] == [("a", 1), ("a", 2), ("b", 1), ("c", 1)]
    assert [(Path(d.record["file"]).name, d.record["line"]) for d in dead] == [("b.jsonl.gz", 2)]
    # a list of paths reads in the order given
    listed = list(read_jsonl([str(tmp_path / "c.jsonl"), str(tmp_path / "a.jsonl")]))
    assert [(r["f"], r["n"]) for r in listed] == [("c", 1), ("a", 1), ("a", 2)]


def test_read_jsonl_no_match_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no file matches"):
        list(read_jsonl(str(tmp_path / "nothing-*.jsonl")))
    with pytest.raises(StorageError, match=r"missing\.jsonl"):
        list(read_jsonl(str(tmp_path / "missing.jsonl")))


def test_read_jsonl_is_lazy(tmp_path: Path) -> None:
    src = read_jsonl(str(tmp_path / "later-*.jsonl"))  # nothing matches yet: no error
    (tmp_path / "later-1.jsonl").write_bytes(b'{"x": 1}\n')
    assert list(src) == [{"x": 1}]


def test_read_jsonl_dead_letters_in_a_run(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_bytes(MIXED)
    dead: list[DeadLetter] = []
    report = run(pipe(read_jsonl(str(f)), partition(dead.append)), progress=False)
    assert (report.read, report.emitted, report.dead_letters, report.conserved) == (7, 3, 4, True)
    assert {d.run_id for d in dead} == {report.run_id}


def test_read_jsonl_truncated_gzip_is_a_storage_error_naming_the_file(tmp_path: Path) -> None:
    f = tmp_path / "cut.jsonl.gz"
    blob = gzip.compress(b"".join(b'{"i": %d}\n' % i for i in range(2000)))
    f.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(StorageError, match=r"cut\.jsonl\.gz"):
        list(read_jsonl(str(f)))


def test_read_jsonl_truncated_gzip_is_not_silent(tmp_path: Path) -> None:
    f = tmp_path / "cut.jsonl.gz"
    blob = gzip.compress(b"".join(b'{"i": %d}\n' % i for i in range(2000)))
    f.write_bytes(blob[: len(blob) // 2])
    with pytest.raises((StorageError, EOFError, OSError)):
        list(read_jsonl(str(f)))


_obj = st.dictionaries(st.text(max_size=6), st.none() | st.booleans() | st.text(max_size=8)
                       | st.integers(-(2**63), 2**63 - 1)
                       | st.floats(allow_nan=False, allow_infinity=False), max_size=4)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(_obj, max_size=15), gz=st.booleans(), blank_every=st.integers(0, 3))
def test_read_jsonl_reads_back_what_was_written(tmp_path: Path, records: list[dict[str, Any]],
                                                gz: bool, blank_every: int) -> None:
    lines = []
    for i, r in enumerate(records):
        lines.append(orjson.dumps(r) + b"\n")
        if blank_every and i % blank_every == 0:
            lines.append(b"\n")
    data = b"".join(lines)
    f = tmp_path / f"{uuid.uuid4().hex}.jsonl{'.gz' if gz else ''}"
    f.write_bytes(gzip.compress(data) if gz else data)
    assert list(read_jsonl(str(f))) == records


# -- load_files ------------------------------------------------------------------------------

ID = {"type": "sha256_concat", "fields": ["source", "n"]}


def _docs() -> list[dict[str, Any]]:
    months = ["2025-01-15T10:00:00Z", "2025-02-01T00:00:00+00:00", "2025-01-31", "2024-12-31"]
    return [{"source": "rfi", "n": i, "created_at": months[i % 4], "t": f"doc {i} \u00e9"}
            for i in range(40)]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_load_files_per_dataset_directories_with_ids(tmp_path: Path, gz: bool) -> None:
    docs = _docs()
    loader = load_files(str(tmp_path), dataset="rfi-{created_at:%Y.%m}", id_strategy=ID,
                        run_key="k1", gzip=gz)
    report = run(pipe(docs, loader), progress=False)
    assert (report.read, report.loaded, report.dead_letters, report.conserved) == (40, 40, 0, True)
    assert loader.last_counts == {"rfi-2024.12": 10, "rfi-2025.01": 20, "rfi-2025.02": 10}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(loader.last_counts)
    id_of = id_strategy(ID)
    all_ids = []
    for dataset, count in loader.last_counts.items():
        prefix = tmp_path / dataset / "run=k1"
        m = read_manifest(str(prefix))
        assert (m.kind, m.records, m.compression) == ("files", count, "gzip" if gz else None)
        written = list(from_storage(str(prefix)))
        assert len(written) == count
        for rec in written:
            assert dataset == f"rfi-{rec['created_at'][:7].replace('-', '.')}"
            expected_id = hashlib.sha256(b"3:rfi%d:%d" % (len(str(rec["n"])), rec["n"]))
            assert rec["_id"] == id_of(rec) == expected_id.hexdigest()
            all_ids.append(rec["_id"])
        assert [r["n"] for r in written] == sorted(r["n"] for r in written)  # input order kept
    assert len(set(all_ids)) == 40
    (out,) = [o for o in report.outputs if o["kind"] == "files"]
    assert out["records"] == 40 and out["datasets"] == loader.last_counts


def test_load_files_yields_the_input_records(tmp_path: Path) -> None:
    docs = _docs()[:5]
    out = list(pipe(docs, load_files(str(tmp_path), dataset="d", id_strategy=ID, run_key="r")))
    assert out == docs  # the _id goes to the files, not into the stream
    assert all("_id" not in d for d in docs)


def test_load_files_rerun_with_same_run_key_leaves_identical_parts(tmp_path: Path) -> None:
    def load() -> dict[str, bytes]:
        run(pipe(_docs(), load_files(str(tmp_path), dataset="rfi-{created_at:%Y.%m}",
                                     id_strategy=ID, run_key="same", gzip=True)),
            progress=False)
        return _tree(tmp_path)

    first = load()
    second = load()
    assert sorted(first) == sorted(second)
    for name in first:
        if name.endswith(MANIFEST_NAME):
            a, b = orjson.loads(first[name]), orjson.loads(second[name])
            for volatile in ("run_id", "created_at"):
                a.pop(volatile), b.pop(volatile)
            assert a == b, name
        else:
            assert first[name] == second[name], name


def test_load_files_rerun_with_same_run_key_is_byte_identical(tmp_path: Path) -> None:
    def load() -> dict[str, bytes]:
        run(pipe(_docs(), load_files(str(tmp_path), dataset="rfi-{created_at:%Y.%m}",
                                     id_strategy=ID, run_key="same")), progress=False)
        return _tree(tmp_path)

    assert load() == load()


def test_load_files_missing_template_field_is_a_dead_letter(tmp_path: Path) -> None:
    docs: list[Any] = [*_docs()[:6], {"source": "rfi", "n": 100},
                       {"source": "rfi", "n": 101, "created_at": "not a date"},
                       {"n": 102, "created_at": "2025-01-01"}, Failure("upstream")]
    dead: list[Any] = []
    loader = load_files(str(tmp_path), dataset="rfi-{created_at:%Y.%m}", id_strategy=ID,
                        run_key="r")
    report = run(pipe(docs, loader, partition(dead.append)), progress=False)
    assert (report.read, report.loaded, report.dead_letters) == (10, 6, 4)
    assert report.conserved and report.read == report.loaded + report.dropped + report.dead_letters
    by_n = {d.record["n"]: d for d in dead if isinstance(d, DeadLetter)}
    assert "needs field 'created_at'" in by_n[100].error_message
    assert "is not a date" in by_n[101].error_message
    assert "id field 'source' is missing" in by_n[102].error_message
    assert {d.error_type for d in by_n.values()} == {"RecordError"}
    assert {d.target for d in by_n.values()} == {str(tmp_path)}
    assert "upstream" in dead
    assert sum(loader.last_counts.values()) == 6
    written = [r for ds in loader.last_counts
               for r in from_storage(str(tmp_path / ds / "run=r"))]
    assert sorted(r["n"] for r in written) == list(range(6))


def test_load_files_rejects_dataset_names_that_escape(tmp_path: Path) -> None:
    out = list(pipe([{"d": "a/b"}, {"d": ".."}, {"d": "ok"}],
                    load_files(str(tmp_path), dataset="{d}", run_key="r")))
    assert isinstance(out[0], Failure) and isinstance(out[1], Failure)
    assert out[2] == {"d": "ok"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]


def test_load_files_failed_run_leaves_no_commit(tmp_path: Path) -> None:
    def source() -> Any:
        yield from _docs()[:10]
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        run(pipe(source(), load_files(str(tmp_path), dataset="rfi-{created_at:%Y.%m}",
                                      run_key="r")), progress=False)
    assert not [n for n in _tree(tmp_path) if n.endswith(MANIFEST_NAME) or "part-" in n]


def test_load_files_on_memory_url() -> None:
    root = f"memory://sesa-tests/{uuid.uuid4().hex}/out"
    loader = load_files(root, dataset="{source}", id_strategy={"type": "field", "field": "n"},
                        id_field="doc_id", run_key="r")
    run(pipe(_docs()[:3], loader), progress=False)
    assert [r["doc_id"] for r in from_storage(f"{root}/rfi/run=r")] == ["0", "1", "2"]


def test_load_files_failed_rerun_leaves_the_previous_commit_readable(tmp_path: Path) -> None:
    def load(src: Any) -> Any:
        return run(pipe(src, load_files(str(tmp_path), dataset="rfi-{created_at:%Y.%m}",
                                        id_strategy=ID, run_key="k", gzip=True)),
                   progress=False)

    docs = _docs()
    assert load(docs).loaded == 40
    before = _tree(tmp_path)

    def dies() -> Any:
        for i, d in enumerate(docs):
            if i == 25:
                raise RuntimeError("source died")
            yield {**d, "t": "changed"}

    with pytest.raises(RuntimeError, match="source died"):
        load(dies())
    assert _tree(tmp_path) == before
    for dataset in ("rfi-2024.12", "rfi-2025.01", "rfi-2025.02"):
        got = list(from_storage(str(tmp_path / dataset / "run=k")))
        assert [r["n"] for r in got] == [d["n"] for d in docs
                                         if f"rfi-{d['created_at'][:7]}" ==
                                         dataset.replace(".", "-")]
        assert {r["t"][:3] for r in got} == {"doc"}


def test_load_files_reports_what_it_committed(tmp_path: Path) -> None:
    docs: list[Any] = [*_docs()[:8], {"source": "rfi", "n": 99}]  # no created_at: dead letter
    dead: list[Any] = []
    loader = load_files(str(tmp_path), dataset="rfi-{created_at:%Y.%m}", run_key="r")
    report = run(pipe(docs, loader, partition(dead.append)), progress=False)
    assert (report.read, report.loaded, report.dead_letters, report.conserved) == \
        (9, 8, 1, True)
    assert loader.stats.committed == 8 == sum(
        read_manifest(str(tmp_path / ds / "run=r")).records for ds in loader.last_counts)


def test_load_files_many_datasets_few_open_parts(tmp_path: Path) -> None:
    n_datasets, max_open = 300, 8
    # records of all datasets interleaved (stride 7), plus runs of one dataset
    docs = [{"ds": (i * 7) % n_datasets, "n": i, "pad": "p" * (i % 50)} for i in range(3000)]
    docs += [{"ds": 5, "n": 3000 + i, "pad": ""} for i in range(50)]
    loader = load_files(str(tmp_path), dataset="day-{ds}", run_key="r", gzip=True,
                        max_open_datasets=max_open)
    seen_open: list[int] = []

    def watched() -> Any:
        for d in docs:
            yield d
            seen_open.append(loader.open_parts())

    report = run(pipe(watched(), loader), progress=False)
    assert (report.read, report.loaded, report.conserved) == (len(docs), len(docs), True)
    assert max(seen_open) == max_open and len(seen_open) == len(docs)
    assert loader.open_parts() == 0
    assert len(loader.last_counts) == n_datasets
    for ds in range(n_datasets):
        prefix = str(tmp_path / f"day-{ds}" / "run=r")
        assert list(from_storage(prefix)) == [d for d in docs if d["ds"] == ds]
    # one commit per dataset, a manifest each, and nothing else left behind
    tree = _tree(tmp_path)
    assert sum(1 for n in tree if n.endswith(MANIFEST_NAME)) == n_datasets
    listed = {f"day-{ds}/run=r/{p.path}" for ds in range(n_datasets)
              for p in read_manifest(str(tmp_path / f"day-{ds}" / "run=r")).parts}
    assert set(tree) - listed == {n for n in tree if n.endswith(MANIFEST_NAME)}


def test_load_files_max_open_datasets_is_checked_when_built(tmp_path: Path) -> None:
    for bad in (0, -1, 1.5, True, "8"):
        with pytest.raises(ConfigError, match="max_open_datasets"):
            load_files(str(tmp_path), dataset="d", max_open_datasets=bad)  # type: ignore[arg-type]


def test_load_files_is_one_stream_at_a_time(tmp_path: Path) -> None:
    loader = load_files(str(tmp_path), dataset="d", run_key="r")
    first = iter(loader([{"a": 1}, {"a": 2}]))
    next(first)
    with pytest.raises(ConfigError, match="already running"):
        next(iter(loader([{"a": 3}])))
    assert list(first) == [{"a": 2}]
    assert list(from_storage(str(tmp_path / "d" / "run=r"))) == [{"a": 1}, {"a": 2}]
