"""`es_source` and the engine adapters: unit checks, then reads from a real OpenSearch node."""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
import threading
from typing import Any, ClassVar

import orjson
import pytest

from sesa_fp.errors import ConfigError, SesaError
from sesa_fp.logs import JsonFormatter, logger
from sesa_fp.search import SearchConfig, SearchUnavailableError, connect
from sesa_fp.sources.search import SearchSource, es_source

ES_URL = os.environ.get("SESA_TEST_ELASTICSEARCH_URL")


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class _Events:
    """Captures sesa_fp's structured log events."""

    def __init__(self) -> None:
        self.buf = io.StringIO()
        self.handler = logging.StreamHandler(self.buf)
        self.handler.setFormatter(JsonFormatter())

    def __enter__(self) -> _Events:
        logger.addHandler(self.handler)
        self.level = logger.level
        logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        logger.removeHandler(self.handler)
        logger.setLevel(self.level)

    def named(self, event: str) -> list[dict[str, Any]]:
        lines = [orjson.loads(x) for x in self.buf.getvalue().splitlines() if x]
        return [x for x in lines if x["event"] == event]


# -- no I/O -------------------------------------------------------------------------------


def test_repr_is_python_rebuilding_the_source_with_secrets_masked() -> None:
    src = es_source(hosts=["http://127.0.0.1:9200"], index="rfi-*",
                    query={"range": {"@timestamp": {"gte": "2025-09-06", "lt": "2025-09-07"}}},
                    fields=["_id", "title"], username="etl", password="hunter2", slices=4)
    text = repr(src)
    assert "hunter2" not in text and "password='***'" in text
    assert text.startswith("es_source(hosts=['http://127.0.0.1:9200'], index='rfi-*', ")
    again = eval(text, {"es_source": es_source})
    assert repr(again) == text
    part = src.partitions()[2]
    assert eval(repr(part), {"es_source": es_source}).slice_id == 2
    assert repr(es_source(index="x", api_key="k")) == \
        "es_source(hosts=['http://127.0.0.1:9200'], index='x', api_key='***')"
    assert "s3cret" not in repr(es_source(index="x", hosts=["https://u:s3cret@h:9200"]))


def test_construction_is_lazy_and_validated() -> None:
    src = es_source(hosts=[_closed_port()], index="nothing", slices=3)
    assert len(src.partitions()) == 3  # no I/O until iterated
    with pytest.raises(ConfigError, match="page_size"):
        es_source(index="x", page_size=0)
    with pytest.raises(ConfigError, match="engine"):
        es_source(index="x", engine="solr")
    with pytest.raises(ConfigError, match="search_after"):
        es_source(index="x", slices=2, search_after=["a"])


def test_unreachable_host_is_a_typed_error_naming_the_host() -> None:
    url = _closed_port()
    src = es_source(hosts=[url], index="x", max_retries=2, retry_backoff=0.01, timeout=2)
    with pytest.raises(SearchUnavailableError, match=url) as info:
        list(src)
    assert isinstance(info.value, SesaError) and info.value.host == url
    assert "after 3 attempt(s)" in str(info.value)
    assert src.stats.retries == 2


@pytest.mark.parametrize(("engine", "module", "extra"), [
    ("opensearch", "opensearchpy", "opensearch"), ("elasticsearch", "elasticsearch", "es")])
def test_missing_client_names_the_extra(monkeypatch: pytest.MonkeyPatch, engine: str,
                                        module: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError, match=rf"pip install 'sesa_fp\[{extra}\]'"):
        connect(SearchConfig(engine=engine, hosts=["http://127.0.0.1:9"]))


# -- live OpenSearch ----------------------------------------------------------------------

N = 2_500


def _doc(i: int) -> dict[str, Any]:
    return {"n": i, "title": f"doc {i}", "a": {"b": i % 7, "c": "x" * (i % 3)},
            "@timestamp": f"2025-09-{1 + i % 28:02d}T00:00:00Z"}


@pytest.fixture(scope="module")
def source_index(search_admin: Any) -> Any:
    name = search_admin.new_index("src", number_of_shards=3)
    search_admin.seed(name, [(f"id-{i}", _doc(i)) for i in range(N)])
    yield name
    search_admin.drop(name)


@pytest.mark.integration
def test_reads_every_document_with_meta_fields_and_nested_source(
        search_url: str, source_index: str) -> None:
    src = es_source(hosts=[search_url], index=source_index, fields=["_id", "_index", "a.b", "n"],
                    page_size=400)
    recs = list(src)
    assert len(recs) == N == src.stats.n_out
    by_id = {r["_id"]: r for r in recs}
    assert len(by_id) == N
    assert by_id["id-9"] == {"_id": "id-9", "_index": source_index, "a": {"b": 2}, "n": 9}
    assert src.engine == "opensearch"
    assert list(src)[:3] == recs[:3]  # re-iterable, same order


@pytest.mark.integration
def test_query_clause_and_whole_source(search_url: str, source_index: str) -> None:
    query = {"range": {"n": {"gte": 100, "lt": 250}}}
    recs = list(es_source(hosts=[search_url], index=source_index, query=query, page_size=64))
    assert sorted(r["n"] for r in recs) == list(range(100, 250))
    assert all(r == _doc(r["n"]) for r in recs)  # fields=None: the whole _source, no meta


@pytest.mark.integration
def test_slices_partitions_read_every_document_once_in_parallel(
        search_url: str, source_index: str) -> None:
    src = es_source(hosts=[search_url], index=source_index, fields=["_id"], slices=4,
                    page_size=300)
    parts = src.partitions()
    assert len(parts) == 4
    results: list[list[str]] = [[] for _ in parts]

    def read(i: int) -> None:
        results[i] = [r["_id"] for r in parts[i]]

    threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = [x for part in results for x in part]
    assert len(ids) == N and len(set(ids)) == N
    assert all(results), "every slice holds some documents"
    sequential = [r["_id"] for r in src]  # the source itself reads all slices in turn
    assert sorted(sequential) == sorted(ids)


@pytest.mark.integration
def test_position_resumes_a_partition(search_url: str, source_index: str) -> None:
    src = es_source(hosts=[search_url], index=source_index, fields=["_id"], page_size=250)
    it = iter(src)
    first = [next(it)["_id"] for _ in range(1_000)]
    it.close()  # type: ignore[attr-defined]
    assert src.position is not None
    rest = [r["_id"] for r in es_source(hosts=[search_url], index=source_index,
                                        fields=["_id"], search_after=src.position)]
    assert len(first) + len(rest) == N
    assert set(first).isdisjoint(rest) and len(set(first) | set(rest)) == N
    assert src.sort == [{"_index": "asc"}, "_doc"]  # 3 shards, 1 slice: pinned to shards
    part = es_source(hosts=[search_url], index=source_index, fields=["_id"], slices=2)
    p0 = part.partitions()[0]
    p0_ids = [r["_id"] for r in p0]
    head = p0_ids[: len(p0_ids) // 2]
    resumed = part.partition(0, search_after=None)
    it2 = iter(resumed)
    for _ in head:
        next(it2)
    it2.close()  # type: ignore[attr-defined]
    tail = [r["_id"] for r in part.partition(0, search_after=resumed.position)]
    assert head + tail == p0_ids


@pytest.mark.integration
def test_read_orders_over_index_patterns(search_url: str, search_admin: Any) -> None:
    prefix = search_admin.new_index("pat")
    same = [f"{prefix}-a", f"{prefix}-b"]
    for name in same:
        search_admin.client.indices.create(index=name,
                                           body={"settings": {"number_of_shards": 2}})
        search_admin.seed(name, [(f"id-{i}", _doc(i)) for i in range(700)])  # same ids
    fast = es_source(hosts=[search_url], index=f"{prefix}-*", fields=["_id", "_index"],
                     page_size=128)
    got = [(r["_index"], r["_id"]) for r in fast]
    assert len(got) == len(set(got)) == 1_400
    assert fast.sort == [{"_index": "asc"}, "_doc"]
    search_admin.client.indices.create(index=f"{prefix}-c",
                                       body={"settings": {"number_of_shards": 3}})
    search_admin.seed(f"{prefix}-c", [(f"id-{i}", _doc(i)) for i in range(300)])
    mixed = es_source(hosts=[search_url], index=f"{prefix}-*", fields=["_id", "_index"],
                      page_size=128, slices=2)
    got = [(r["_index"], r["_id"]) for p in mixed.partitions() for r in p]
    assert len(got) == len(set(got)) == 1_700
    assert mixed.partitions()[0].sort is None  # not iterated: partitions are new sources
    one = mixed.partitions()[1]
    list(one)
    assert one.sort == [{"_index": "asc"}, {"_id": "asc"}]  # shard counts differ: exact ids
    with pytest.raises(ConfigError, match="not a position"):
        list(es_source(hosts=[search_url], index=f"{prefix}-a", search_after=[9, "x", 1]))
    search_admin.drop(f"{prefix}-*")


@pytest.mark.integration
def test_point_in_time_closed_after_end_and_after_early_stop(
        search_url: str, source_index: str, search_admin: Any) -> None:
    full = es_source(hosts=[search_url], index=source_index, page_size=500)
    assert sum(1 for _ in full) == N
    early = es_source(hosts=[search_url], index=source_index, page_size=100, slices=2)
    it = iter(early)
    for _ in range(150):
        next(it)
    assert early.pit_ids and early.pit_ids[0] in search_admin.open_pits()
    it.close()  # type: ignore[attr-defined]
    ours = set(full.pit_ids) | set(early.pit_ids)
    assert ours and ours.isdisjoint(search_admin.open_pits())


@pytest.mark.integration
def test_point_in_time_closed_when_the_consumer_fails(
        search_url: str, source_index: str, search_admin: Any) -> None:
    src = es_source(hosts=[search_url], index=source_index, page_size=100)

    def consume() -> None:
        for i, _ in enumerate(src):
            if i == 120:
                raise RuntimeError("downstream broke")

    with pytest.raises(RuntimeError):
        consume()
    assert src.pit_ids and set(src.pit_ids).isdisjoint(search_admin.open_pits())


@pytest.mark.integration
def test_engine_elasticsearch_on_opensearch_is_served_by_the_opensearch_adapter(
        search_url: str, source_index: str) -> None:
    with _Events() as events:
        src = es_source(hosts=[search_url], index=source_index, engine="elasticsearch",
                        query={"term": {"n": 7}})
        recs = list(src)
    assert recs == [_doc(7)]
    assert src.engine == "opensearch"
    (line,) = events.named("search_engine_detected")
    assert line["requested"] == "elasticsearch" and line["engine"] == "opensearch"
    assert line["distribution"] == "opensearch" and line["host"] == search_url


@pytest.mark.integration
def test_missing_index_is_a_typed_error(search_url: str) -> None:
    from sesa_fp.search import SearchRequestError

    with pytest.raises(SearchRequestError, match="index_not_found"):
        list(es_source(hosts=[search_url], index="no-such-index-sesa", max_retries=0))


# -- Elasticsearch contract (only with a real Elasticsearch) -------------------------------

needs_es = pytest.mark.skipif(
    not ES_URL, reason="SESA_TEST_ELASTICSEARCH_URL not set: no Elasticsearch server here "
                       "(the client refuses OpenSearch), Elasticsearch contract tests skipped")


@needs_es
@pytest.mark.integration
def test_elasticsearch_adapter_contract() -> None:
    from sesa_fp import pipe, run
    from sesa_fp.loaders.search import load_es

    assert ES_URL is not None
    index = f"sesa-contract-{os.getpid()}"
    docs = [{"k": f"k{i}", "n": i} for i in range(1_234)]
    loader = load_es(hosts=[ES_URL], dataset=index, engine="elasticsearch",
                     id_strategy={"type": "field", "field": "k"}, actions_per_batch=100)
    report = run(pipe(docs, loader), progress=False)
    assert report.loaded == len(docs) and loader.engine == "elasticsearch"
    client = connect(SearchConfig(engine="elasticsearch", hosts=[ES_URL]))
    try:
        client.refresh(index)
        src = es_source(hosts=[ES_URL], index=index, fields=["_id", "n"], slices=2,
                        page_size=100, engine="elasticsearch")
        got = {r["_id"]: r["n"] for p in src.partitions() for r in p}
        assert got == {d["k"]: d["n"] for d in docs}
        pit = client.open_pit(index, "1m")
        client.close_pit(pit)
    finally:
        client.client.indices.delete(index=index)
        client.close()


def test_source_is_a_search_source() -> None:
    assert isinstance(es_source(index="x"), SearchSource)


# -- paging logic with a test double (pure logic: scroll fallback, retries) ----------------


class _FakeClient:
    """Stands in for an engine adapter: serves ``docs`` through PIT pages or a scroll."""

    engine = "opensearch"
    pit_sort: ClassVar[list[Any]] = [{"_index": "asc"}, {"_id": "asc"}]
    pinned_sort = None
    host = "http://fake:9200"

    def __init__(self, docs: list[dict[str, Any]], *, pit: bool, fail_searches: int = 0) -> None:
        self.docs = docs
        self.pit = pit
        self.fail_searches = fail_searches
        self.closed_pits: list[str] = []
        self.cleared: list[str] = []
        self.scrolls: dict[str, int] = {}
        self.closed = False

    def _hits(self, start: int, size: int) -> list[dict[str, Any]]:
        return [{"_index": "i", "_id": str(k), "_source": dict(self.docs[k]),
                 "sort": ["i", f"{k:06d}"]} for k in range(start, min(start + size,
                                                                       len(self.docs)))]

    def open_pit(self, index: str, keep_alive: str) -> str:
        from sesa_fp.search import SearchTransportError

        if not self.pit:
            raise SearchTransportError(host=self.host, status=400,
                                       error_type="no handler found for uri [/i/_pit]",
                                       reason="no handler")
        return "pit-1"

    def close_pit(self, pit_id: str) -> None:
        self.closed_pits.append(pit_id)

    def search(self, body: dict[str, Any], *, index: str | None = None,
               scroll: str | None = None) -> dict[str, Any]:
        from sesa_fp.search import SearchTransportError

        if self.fail_searches:
            self.fail_searches -= 1
            raise SearchTransportError(host=self.host, status=503, error_type="unavailable",
                                       reason="busy")
        size = body["size"]
        if scroll:
            sid = f"scroll-{len(self.scrolls)}"
            self.scrolls[sid] = size
            return {"_scroll_id": sid, "hits": {"hits": self._hits(0, size)}}
        assert body["pit"]["keep_alive"] == "1m"
        after = body.get("search_after")
        start = 0 if after is None else int(after[1]) + 1
        return {"pit_id": "pit-1", "hits": {"hits": self._hits(start, size)}}

    def scroll(self, scroll_id: str, keep_alive: str) -> dict[str, Any]:
        start = self.scrolls[scroll_id]
        self.scrolls[scroll_id] = start + 10
        return {"_scroll_id": scroll_id, "hits": {"hits": self._hits(start, 10)}}

    def clear_scroll(self, scroll_id: str) -> None:
        self.cleared.append(scroll_id)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    import attrs

    import sesa_fp.sources.search as mod

    holder: dict[str, _FakeClient] = {}
    monkeypatch.setattr(mod, "resolve_config",
                        lambda config, **kw: attrs.evolve(config, engine="opensearch"))
    monkeypatch.setattr(mod, "connect", lambda config: holder["client"])
    return holder


def test_scroll_fallback_where_point_in_time_is_unavailable(fake: Any) -> None:
    docs = [{"n": i} for i in range(35)]
    client = fake["client"] = _FakeClient(docs, pit=False)
    src = es_source(index="i", page_size=10, keep_alive="1m")
    assert list(src) == docs
    assert client.cleared == ["scroll-0"] and client.closed
    it = iter(src)
    next(it)
    it.close()  # type: ignore[attr-defined]
    assert client.cleared == ["scroll-0", "scroll-1"]
    with pytest.raises(ConfigError, match="point-in-time"):
        list(es_source(index="i", search_after=["i", "000001"]))


def test_transient_search_errors_are_retried_and_counted(fake: Any) -> None:
    docs = [{"n": i} for i in range(25)]
    client = fake["client"] = _FakeClient(docs, pit=True, fail_searches=2)
    src = es_source(index="i", page_size=10, keep_alive="1m", retry_backoff=0.01,
                    fields=["_id", "n"])
    got = list(src)
    assert [r["n"] for r in got] == list(range(25)) and got[3]["_id"] == "3"
    assert src.stats.retries == 2 and src.stats.n_out == 25
    assert client.closed_pits == ["pit-1"] and src.position == ["i", "000024"]
    client.fail_searches = 99
    with pytest.raises(SesaError, match="after 3 attempt"):
        list(es_source(index="i", keep_alive="1m", max_retries=2, retry_backoff=0.01))
    assert client.closed_pits == ["pit-1", "pit-1"]  # closed after the failure too


def test_elasticsearch_adapter_builds_its_client_and_maps_errors_without_io() -> None:
    pytest.importorskip("elasticsearch")
    import elastic_transport
    import elasticsearch

    from sesa_fp.search.elasticsearch import ElasticsearchClient

    with pytest.raises(ConfigError, match="not both"):
        SearchConfig(engine="elasticsearch", hosts=["https://u:pw@127.0.0.1:9"], api_key="k")
    client = connect(SearchConfig(engine="elasticsearch", hosts=["https://u:pw@127.0.0.1:9"],
                                  verify_certs=False, timeout=3))
    assert isinstance(client, ElasticsearchClient) and client.host == "https://127.0.0.1:9"
    assert "pw" not in repr(client.config) and client.config.username == "u"
    assert client.pit_sort == ["_shard_doc"] and client.pinned_sort is None
    down = client._translate(elastic_transport.ConnectionError("refused"))
    assert down is not None and down.unreachable and down.retryable
    meta = elastic_transport.ApiResponseMeta(status=429, http_version="1.1",
                                             headers=elastic_transport.HttpHeaders(),
                                             duration=0.0, node=None)  # type: ignore[arg-type]
    body = {"error": {"type": "es_rejected_execution_exception", "reason": "queue full"},
            "status": 429}
    busy = client._translate(elasticsearch.ApiError("es_rejected_execution_exception",
                                                    meta, body))
    assert busy is not None and busy.retryable and busy.status == 429
    assert (busy.error_type, busy.reason) == ("es_rejected_execution_exception", "queue full")
    assert client._translate(ValueError("not a transport error")) is None
    client.close()
