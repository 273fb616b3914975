"""`load_es` against a real OpenSearch node: copies, idempotent reruns, per-record errors."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sesa_fp import pipe, run
from sesa_fp.errors import ConfigError
from sesa_fp.loaders.search import SearchLoader, load_es
from sesa_fp.result import DeadLetter, Failure
from sesa_fp.sources.search import es_source
from sesa_fp.stream import partition

#: documents copied index-to-index (one copy of 100_000 takes ~15-20 s on a 2-CPU machine)
COPY_N = 100_000


def _doc(i: int) -> dict[str, Any]:
    return {"project_id": f"p{i % 13}", "rfi_number": i, "title": f"RFI {i} ünïcode",
            "created_at": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
            "meta": {"tags": ["a", str(i % 5)], "score": i / 7}, "empty": None}


# -- no I/O -------------------------------------------------------------------------------


def test_repr_is_python_rebuilding_the_loader_with_secrets_masked() -> None:
    loader = load_es(hosts=["http://127.0.0.1:9200"], dataset="rfi-enriched-{created_at:%Y.%m}",
                     id_strategy={"type": "sha256_concat", "fields": ["project_id", "rfi_number"]},
                     actions_per_batch=2000, concurrency=4, password="pw", username="u")
    text = repr(loader)
    assert text == (
        "load_es(hosts=['http://127.0.0.1:9200'], dataset='rfi-enriched-{created_at:%Y.%m}', "
        "id_strategy={'type': 'sha256_concat', 'fields': ['project_id', 'rfi_number']}, "
        "actions_per_batch=2000, concurrency=4, username='u', password='***')")
    assert repr(eval(text, {"load_es": load_es})) == text
    assert isinstance(loader, SearchLoader) and loader.kind == "loader"


def test_options_are_validated_before_any_io() -> None:
    with pytest.raises(ConfigError, match="op_type"):
        load_es(dataset="x", op_type="upsert")
    with pytest.raises(ConfigError, match="concurrency"):
        load_es(dataset="x", concurrency=0)
    with pytest.raises(ConfigError, match="id_strategy"):
        load_es(dataset="x", id_strategy={"type": "nope"})
    with pytest.raises(ConfigError, match="dataset"):
        load_es(dataset="")


# -- live OpenSearch ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def copy_source(search_admin: Any) -> Any:
    name = search_admin.new_index("copy-src", number_of_shards=3)
    search_admin.seed(name, [(f"doc-{i}", _doc(i)) for i in range(COPY_N)])
    yield name
    search_admin.drop(name)


@pytest.mark.integration
def test_copy_index_arrives_identical(search_url: str, search_admin: Any,
                                      copy_source: str) -> None:
    target = search_admin.new_index("copy-dst")
    loader = load_es(hosts=[search_url], dataset=target, actions_per_batch=1000, concurrency=2)
    report = run(pipe(es_source(hosts=[search_url], index=copy_source, fields=["_id", "*"]),
                      loader), progress=False)
    assert (report.read, report.loaded, report.dead_letters) == (COPY_N, COPY_N, 0)
    assert search_admin.docs(target) == search_admin.docs(copy_source)
    (out,) = [o for o in report.outputs if o.get("kind") == "search"]
    latency = out.pop("bulk_latency")
    assert out.pop("throttled_items") == 0
    assert out == {"kind": "search", "uri": search_url, "engine": "opensearch",
                   "records": COPY_N, "indices": {target: COPY_N}}
    assert latency["count"] == COPY_N // 1000 == latency["buckets"]["+Inf"]
    search_admin.drop(target)


@pytest.mark.integration
def test_copy_with_slices_partitions_in_parallel_threads(search_url: str, search_admin: Any,
                                                         copy_source: str) -> None:
    target = search_admin.new_index("copy-dst4")
    src = es_source(hosts=[search_url], index=copy_source, fields=["_id", "*"], slices=4)
    reports: list[Any] = [None] * 4

    def copy(i: int, part: Any) -> None:
        reports[i] = run(pipe(part, load_es(hosts=[search_url], dataset=target,
                                            concurrency=2)), progress=False)

    threads = [threading.Thread(target=copy, args=(i, p))
               for i, p in enumerate(src.partitions())]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(r.read for r in reports) == COPY_N == sum(r.loaded for r in reports)
    assert all(r.dead_letters == 0 for r in reports)
    assert search_admin.docs(target) == search_admin.docs(copy_source)
    search_admin.drop(target)


@pytest.mark.integration
def test_rerun_with_sha256_ids_leaves_the_target_identical(search_url: str,
                                                           search_admin: Any) -> None:
    prefix = search_admin.new_index("rerun")
    records = [_doc(i) for i in range(5_000)]

    def load() -> Any:
        return run(pipe(records, load_es(
            hosts=[search_url], dataset=prefix + "-{created_at:%Y.%m}",
            id_strategy={"type": "sha256_concat", "fields": ["project_id", "rfi_number"]},
            actions_per_batch=700, concurrency=3)), progress=False)

    first = load()
    before = search_admin.docs(prefix + "-*")
    second = load()
    after = search_admin.docs(prefix + "-*")
    assert first.loaded == second.loaded == 5_000
    assert len(before) == 5_000 and after == before
    indices = first.outputs[0]["indices"]
    assert len(indices) == 12 and sum(indices.values()) == 5_000
    search_admin.drop(prefix + "-*")


@pytest.mark.integration
def test_mapping_conflict_dead_letters_exactly_the_bad_records(search_url: str,
                                                               search_admin: Any) -> None:
    target = search_admin.new_index("conflict")
    bad = {13, 500, 501, 1999}
    records = [{"k": i, "n": f"text-{i}" if i in bad else i} for i in range(2_000)]
    dead: list[DeadLetter] = []
    loader = load_es(hosts=[search_url], dataset=target, id_strategy={"type": "field",
                                                                     "field": "k"},
                     mappings={"properties": {"n": {"type": "long"}}},
                     settings={"number_of_shards": 2}, actions_per_batch=300)
    report = run(pipe(records, loader, partition(dead.append)), progress=False)
    assert (report.read, report.loaded, report.dead_letters) == (2_000, 1_996, 4)
    assert {d.record["k"] for d in dead} == bad
    for d in dead:
        assert d.error_type == "mapper_parsing_exception" and d.status == 400
        assert "failed to parse field [n] of type [long]" in d.error_message
        assert d.target == target and d.id == str(d.record["k"]) and d.stage == loader.name
    assert search_admin.count(target) == 1_996
    assert report.retries == 0
    search_admin.drop(target)


@pytest.mark.integration
def test_template_and_id_errors_are_dead_letters_and_failures_pass_through(
        search_url: str, search_admin: Any) -> None:
    prefix = search_admin.new_index("tpl")
    upstream_dead = Failure(DeadLetter(record={"x": 1}, error_type="E", error_message="m",
                                       stage="earlier"))
    items: list[Any] = [
        {"d": "2025-09-06", "k": 1}, {"k": 2}, {"d": "2025-09-07"}, upstream_dead,
        {"d": "2025-10-01", "k": 3, "bad": {1, 2}}, {"d": "nodate", "k": 4},
    ]
    loader = load_es(hosts=[search_url], dataset=prefix + "-{d:%Y.%m}",
                     id_strategy={"type": "field", "field": "k"})
    out = list(loader(items))
    assert len(out) == len(items)
    assert out[0] == items[0] and out[3] is upstream_dead and out[4] == items[4]
    errors = {i: o.failure().error_message for i, o in enumerate(out) if i in (1, 2, 5)}
    assert "needs field 'd'" in errors[1] and "id field 'k' is missing" in errors[2]
    assert "is not a date" in errors[5]
    assert loader.stats.failed == 3 and loader.stats.n_in == loader.stats.n_out == 6
    assert loader.last_counts == {f"{prefix}-2025.09": 1, f"{prefix}-2025.10": 1}
    search_admin.drop(prefix + "-*")


@pytest.mark.integration
def test_op_types_routing_and_meta_keys(search_url: str, search_admin: Any) -> None:
    target = search_admin.new_index("ops", number_of_shards=2)
    base = [{"_id": f"d{i}", "_routing": "r1", "n": i} for i in range(10)]
    r = run(pipe(base, load_es(hosts=[search_url], dataset=target, op_type="create")),
            progress=False)
    assert r.loaded == 10
    docs = search_admin.client.search(index=target, body={"query": {"match_all": {}}},
                                      params={"size": 20})["hits"]["hits"]
    assert all(h["_routing"] == "r1" and set(h["_source"]) == {"n"} for h in docs)
    # create again: 409 conflicts become dead letters carrying the engine's error type
    dead: list[DeadLetter] = []
    r = run(pipe(base[:3], load_es(hosts=[search_url], dataset=target, op_type="create"),
                 partition(dead.append)), progress=False)
    assert r.dead_letters == 3 and {d.status for d in dead} == {409}
    assert {d.error_type for d in dead} == {"version_conflict_engine_exception"}
    # update = upsert of a partial document, with routing from a template
    ups = [{"_id": "d1", "extra": "x", "r": "r1"}, {"_id": "new", "extra": "y", "r": "r1"}]
    r = run(pipe(ups, load_es(hosts=[search_url], dataset=target, op_type="update",
                              routing="{r}")), progress=False)
    assert r.loaded == 2
    got = search_admin.docs(target)
    assert got["d1"] == {"n": 1, "extra": "x", "r": "r1"} and got["new"]["extra"] == "y"
    # delete by id (a missing id is a dead letter, a missing document is fine)
    dels: list[Any] = [{"_id": "d2", "_routing": "r1"}, {"_id": "gone", "_routing": "r1"},
                       {"n": 5}]
    dead.clear()
    r = run(pipe(dels, load_es(hosts=[search_url], dataset=target, op_type="delete"),
                 partition(dead.append)), progress=False)
    assert (r.loaded, r.dead_letters) == (2, 1) and "needs a document id" in \
        dead[0].error_message
    assert "d2" not in search_admin.docs(target)
    search_admin.drop(target)


@pytest.mark.integration
def test_early_stop_leaves_no_worker_threads(search_url: str, search_admin: Any) -> None:
    target = search_admin.new_index("early")
    before = threading.active_count()
    loader = load_es(hosts=[search_url], dataset=target, actions_per_batch=50, concurrency=4)
    it = loader(iter([{"n": i} for i in range(10_000)]))
    got = [next(it) for _ in range(120)]
    it.close()  # type: ignore[attr-defined]
    assert len(got) == 120
    assert threading.active_count() == before
    assert loader.stats.n_out == 120
    search_admin.drop(target)


@pytest.mark.integration
def test_ingest_pipeline_is_used(search_url: str, search_admin: Any) -> None:
    target = search_admin.new_index("pipe")
    name = f"sesa-noop-{target}"
    search_admin.client.ingest.put_pipeline(id=name, body={"description": "no-op",
                                                            "processors": []})
    try:
        dead: list[DeadLetter] = []
        r = run(pipe([{"a": 1}, {"a": 2}], load_es(hosts=[search_url], dataset=target,
                                                   pipeline=name)), progress=False)
        assert r.loaded == 2
        r = run(pipe([{"a": 3}], load_es(hosts=[search_url], dataset=target,
                                         pipeline="no-such-pipeline"),
                     partition(dead.append)), progress=False)
        assert r.dead_letters == 1 and "no-such-pipeline" in dead[0].error_message
        assert search_admin.count(target) == 2
    finally:
        search_admin.client.ingest.delete_pipeline(id=name)
        search_admin.drop(target)


@pytest.mark.integration
def test_missing_client_fails_the_run_naming_the_extra(search_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opensearchpy", None)
    with pytest.raises(ConfigError, match=r"pip install 'sesa_fp\[opensearch\]'"):
        run(pipe([{"a": 1}], load_es(hosts=[search_url], dataset="x")), progress=False)


@pytest.mark.integration
def test_invalid_index_names_from_records_are_dead_letters(search_url: str,
                                                           search_admin: Any) -> None:
    prefix = search_admin.new_index("names")
    records = [{"kind": "ok", "n": 1}, {"kind": "NOT_lower", "n": 2}, {"kind": "ok", "n": 3}]
    for mappings in (None, {"properties": {"n": {"type": "long"}}}):
        dead: list[DeadLetter] = []
        r = run(pipe(records, load_es(hosts=[search_url], dataset=prefix + "-{kind}",
                                      mappings=mappings), partition(dead.append)),
                progress=False)
        assert (r.loaded, r.dead_letters) == (2, 1)
        assert dead[0].error_type == "invalid_index_name_exception" and dead[0].status == 400
        assert dead[0].record["n"] == 2
    search_admin.drop(prefix + "-*")
