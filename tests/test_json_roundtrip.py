"""Values arrive exactly as they left: JSON documents through the codec, files, staging and the
search engine, compared value for value and type for type.

What the search engine cannot keep is tested as such, not filtered away silently:

- it refuses some top-level keys (empty, only dots, a leading dot, ``..``, metadata names like
  ``_seq_no``; `load_es` itself takes ``_id``, ``_index`` and ``_routing`` as metadata) and,
  with dynamic mapping, integers beyond a signed 64-bit long: each such document is a dead letter
  carrying the engine's error (``test_engine_refusals_are_dead_letters``);
- ``_source`` comes back verbatim in value (the node may re-serialize it, e.g. ``4.9E-324`` for
  ``5e-324``, which reads back as the same double); the *indexed* copy follows the mapping
  (dynamic mapping indexes floats as 32-bit ``float``), which this round trip does not read.

The round trip through the engine uses an index with ``dynamic: false`` so that mapping
conflicts between random documents do not mask what happens to the values.
"""

from __future__ import annotations

import contextlib
import decimal
import gzip
import json
import struct
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sesa_fp import (
    from_storage,
    load_files,
    partition,
    pipe,
    read_jsonl,
    run,
    tee,
    to_storage,
)
from sesa_fp.codec import JSONDecodeError, dumps, dumps_line, dumps_line_lenient, loads

# -- documents ------------------------------------------------------------------------------

EXTREME_FLOATS = [-0.0, 0.0, sys.float_info.max, -sys.float_info.max, sys.float_info.min,
                  -sys.float_info.min, 5e-324, -5e-324, sys.float_info.epsilon, 1e16, 1e19,
                  2.0**63, -(2.0**63), 2.0**64, 0.1]
EDGE_INTS = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**30),
             12345678901234567890123, 10**400, -(10**400), 0, -1]
EDGE_TEXT = ["", "\x00", "a\x00b", "\u2028\u2029", "\U0001f600", "é", "\\u0041", '"', "\\",
             "\x1f\x7f", "12345678901234567890123", "-12345678901234567890", "null", "NaN"]
DOTTED_KEYS = ["a.b", "a.b.c", "x.", "é.ü", "1.2", "@timestamp", "a b", "k\x00", "\U0001f600"]

_chars = st.characters(exclude_categories=("Cs",))  # lone surrogates: see the refusal tests
texts = st.one_of(st.text(_chars, max_size=10), st.sampled_from(EDGE_TEXT))
keys = st.one_of(st.text(_chars, max_size=6), st.sampled_from([*DOTTED_KEYS, "", "_x"]))
ints = st.one_of(st.integers(), st.sampled_from(EDGE_INTS),
                 st.integers(min_value=2**63 - 3, max_value=2**64 + 3),
                 st.integers(min_value=-(2**63) - 3, max_value=-(2**63) + 3),
                 st.integers(min_value=-(10**40), max_value=10**40))
floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from(EXTREME_FLOATS))
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(keys, inner, max_size=4)),
    max_leaves=16)
documents = st.dictionaries(keys, values, max_size=6)

ODD_DOC = {"big": 12345678901234567890123, "neg": -(2**63) - 1, "u64": 2**64 - 1,
           "huge": 10**400, "z": -0.0, "max": sys.float_info.max, "min": sys.float_info.min,
           "sub": 5e-324, "nul": "a\x00b", "emoji": "\U0001f600", "a.b": {"c.d": []}, "e": {},
           "l": [[], {}, [2**70, -0.0]], "": {"": ""}, "t": True, "n": None}


def assert_same(got: Any, want: Any, path: str = "$") -> None:
    """Equal value for value with exactly the same types (bool is not int, -0.0 is not 0.0)."""
    assert type(got) is type(want), f"{path}: {type(got).__name__} {got!r} != " \
                                    f"{type(want).__name__} {want!r}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{path}: keys {list(got)!r} != {list(want)!r}"
        for k in want:
            assert_same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), f"{path}: {len(got)} items != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, float):  # bit for bit: keeps the sign of zero
        assert struct.pack(">d", got) == struct.pack(">d", want), f"{path}: {got!r} != {want!r}"
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def jsonl(docs: list[dict[str, Any]], ascii_only: bool) -> bytes:
    """Lines written by the standard library (an independent, exact encoder)."""
    return b"".join(json.dumps(d, ensure_ascii=ascii_only, allow_nan=False).encode() + b"\n"
                    for d in docs)


def read_raw(uri: str) -> list[Any]:
    """Every line of every part under ``uri``, parsed by the standard library, part order."""
    fs, root = fsspec.core.url_to_fs(uri)
    out: list[Any] = []
    for path in sorted(p for p in fs.find(root) if "/part-" in p):
        data = fs.cat_file(path)
        if path.endswith(".gz"):
            data = gzip.decompress(data)
        out.extend(json.loads(line) for line in data.splitlines())
    return out


@contextlib.contextmanager
def fresh_prefix() -> Iterator[str]:
    """A new ``memory://`` prefix (one per hypothesis example), removed afterwards."""
    name = f"/rt-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(name):
        fs.rm(name, recursive=True)


@pytest.fixture
def memory_prefix() -> Iterator[str]:
    with fresh_prefix() as prefix:
        yield prefix


_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- the codec ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(doc=values)
@example(doc=ODD_DOC)
def test_codec_round_trips_exactly(doc: Any) -> None:
    line = dumps_line(doc)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert_same(loads(line), doc)
    assert_same(loads(line.decode()), doc)  # str input (what opensearch-py hands us)
    assert_same(json.loads(line), doc)  # an independent exact reader agrees
    assert_same(loads(json.dumps(doc, ensure_ascii=True)), doc)  # escapes in the input
    assert dumps(doc) == line[:-1]
    assert dumps_line_lenient(doc) == line  # dead letters keep values exact too


def test_wide_integers_do_not_become_floats() -> None:
    assert_same(loads(b'{"n": 12345678901234567890123}'), {"n": 12345678901234567890123})
    assert_same(loads(b"[18446744073709551615, 18446744073709551616, -9223372036854775809]"),
                [2**64 - 1, 2**64, -(2**63) - 1])
    assert_same(loads(b'{"a": 1' + b"0" * 400 + b"}"), {"a": 10**400})
    assert_same(loads(b'{"f": 1e19, "g": -9.3e18}'), {"f": 1e19, "g": -9.3e18})  # real floats


@pytest.mark.parametrize("line, problem", [
    (b'{"a": "\\ud800"}', "surrogate"),
    (b'{"a": "\xed\xa0\x80"}', "surrogates"),
    (b'{"a": NaN}', "unexpected character"),
    (b'{"a": Infinity}', "unexpected character"),
    (b'{"a": 1e400}', "infinity"),
    (b'{"a": 1' + b"0" * 400 + b', "b": "\\udc00"}', "surrogate"),
    (b'{"a": 1' + b"0" * 400 + b', "b": -1e999}', "infinity"),
    (b'{"a": 1' + b"0" * 5000 + b"}", "4300 digits"),
])
def test_what_json_or_unicode_cannot_hold_is_refused(line: bytes, problem: str) -> None:
    with pytest.raises(JSONDecodeError, match=problem):
        loads(line)


@pytest.mark.parametrize("record, where", [
    ({"a": {"b": [1, float("nan")]}}, r"\$\.a\.b\[1\]: nan"),
    ({"x": float("inf")}, r"\$\.x: inf"),
    ({"x": -float("inf"), "big": 2**70}, r"\$\.x: -inf"),
    ({"s": "ok\ud800"}, r"\$\.s: string with a lone surrogate"),
    ({"k\udc00": 1}, r"\$ key: string with a lone surrogate"),
    ({"n": 10**5000}, "4300 digits"),
    ({"d": decimal.Decimal("Infinity")}, r"\$\.d: Decimal Infinity is not a JSON number"),
    ({"s": {1.0, float("nan")}}, r"nan is not a JSON number"),
])
def test_what_cannot_be_written_is_a_type_error_naming_the_field(record: Any,
                                                                 where: str) -> None:
    with pytest.raises(TypeError, match=where):
        dumps_line(record)
    assert dumps_line_lenient(record).endswith(b"\n")  # a dead letter is never lost


# -- files and staging ----------------------------------------------------------------------


def _through_staging_and_files(records: Any, prefix: str) -> list[Any]:
    staging, out = f"{prefix}/staging", f"{prefix}/out"
    dead: list[Any] = []
    run(pipe(records, tee(to_storage(staging, gzip=True)), partition(dead.append)),
        progress=False)
    assert dead == [], [d.error_message for d in dead]
    loaded = run(pipe(from_storage(staging), load_files(out, dataset="d", run_key="k"),
                      partition(dead.append)), progress=False)
    assert dead == [], [d.error_message for d in dead]
    assert loaded.loaded == loaded.read
    if not loaded.loaded:  # no record, no dataset
        return []
    raw = read_raw(f"{out}/d")
    assert_same(list(from_storage(f"{out}/d/run=k")), raw)  # the library reads what is there
    return raw


@_settings
@given(docs=st.lists(documents, max_size=6))
@example(docs=[ODD_DOC, {}])
def test_staging_and_files_keep_values(docs: list[dict[str, Any]]) -> None:
    """records → tee(to_storage) → from_storage → load_files, read back by an exact reader."""
    with fresh_prefix() as prefix:
        assert_same(_through_staging_and_files(iter(docs), prefix), docs)


@_settings
@given(docs=st.lists(documents, max_size=6), ascii_only=st.booleans())
@example(docs=[ODD_DOC, {}], ascii_only=True)
def test_jsonl_to_staging_to_files_keeps_values(docs: list[dict[str, Any]],
                                                ascii_only: bool) -> None:
    """read_jsonl → tee(to_storage) → from_storage → load_files, read back by an exact reader."""
    with fresh_prefix() as prefix:
        fsspec.filesystem("memory").pipe(f"{prefix[len('memory://'):]}/in.jsonl",
                                         jsonl(docs, ascii_only))
        got = _through_staging_and_files(read_jsonl(f"{prefix}/in.jsonl"), prefix)
        assert_same(got, docs)


def test_unrepresentable_input_and_records_are_dead_letters_naming_the_problem(
        memory_prefix: str) -> None:
    path = f"{memory_prefix[len('memory://'):]}/in.jsonl"
    fsspec.filesystem("memory").pipe(path, b'{"a": 1}\n{"s": "\\ud800"}\n{"f": 1e400}\n')
    dead: list[Any] = []
    good = list(pipe(read_jsonl(f"memory://{path}"), partition(dead.append)))
    assert good == [{"a": 1}]
    assert [(d.record["line"], d.error_type) for d in dead] == [
        (2, "JSONDecodeError"), (3, "JSONDecodeError")]
    assert "surrogate" in dead[0].error_message and "infinity" in dead[1].error_message

    dead.clear()
    out = list(pipe([{"ok": 2**70}, {"x": {"y": float("nan")}}, {"s": "\udfff"}],
                    tee(to_storage(f"{memory_prefix}/staging")), partition(dead.append)))
    assert_same(out, [{"ok": 2**70}])
    assert [d.error_message for d in dead] == [
        "cannot encode as JSON: $.x.y: nan is not a JSON number",
        "cannot encode as JSON: $.s: string with a lone surrogate '\\udfff'"]
    assert_same(list(from_storage(f"{memory_prefix}/staging")), [{"ok": 2**70}])


# -- the search engine's client serializers (no server) ------------------------------------

WIRE = b'{"hits": {"hits": [{"_source": {"n": 12345678901234567890123, "z": -0.0}}]}}'
WANT = {"hits": {"hits": [{"_source": {"n": 12345678901234567890123, "z": -0.0}}]}}


def test_opensearch_client_decodes_and_encodes_exactly() -> None:
    pytest.importorskip("opensearchpy")
    from sesa_fp.search.config import SearchConfig
    from sesa_fp.search.opensearch import OpenSearchClient

    client = OpenSearchClient(SearchConfig(engine="opensearch", hosts=["http://127.0.0.1:9"]))
    transport = client.client.transport
    assert_same(transport.deserializer.loads(WIRE.decode(), "application/json; charset=UTF-8"),
                WANT)
    body = transport.serializer.dumps({"search_after": [2**64, -0.0]})
    assert body == '{"search_after":[18446744073709551616,-0.0]}'


def test_elasticsearch_client_decodes_and_encodes_exactly() -> None:
    pytest.importorskip("elasticsearch")
    from sesa_fp.search.config import SearchConfig
    from sesa_fp.search.elasticsearch import ElasticsearchClient

    client = ElasticsearchClient(SearchConfig(engine="elasticsearch",
                                              hosts=["http://127.0.0.1:9"]))
    serializers = client.client.transport.serializers
    for mimetype in ("application/json", "application/vnd.elasticsearch+json; compatible-with=9"):
        assert_same(serializers.loads(WIRE, mimetype), WANT)
        assert serializers.dumps({"q": [2**64]}, mimetype) == b'{"q":[18446744073709551616]}'
    ndjson = "application/vnd.elasticsearch+x-ndjson; compatible-with=9"
    assert serializers.dumps([{"a": 2**70}], ndjson) == b'{"a":1180591620717411303424}\n'


# -- the real search engine -------------------------------------------------------------------


def _engine_key(k: str) -> bool:
    """Top-level keys the engine accepts and `load_es` writes (see the module docstring)."""
    return bool(k) and not k.startswith(("_", ".")) and not k.endswith(".") and ".." not in k


engine_documents = st.dictionaries(keys.filter(_engine_key), values, max_size=6)


@pytest.fixture(scope="module")
def roundtrip_index(search_url: str, search_admin: Any) -> Iterator[str]:
    name = search_admin.new_index("roundtrip")
    search_admin.client.indices.create(index=name, body={"mappings": {"dynamic": False}})
    yield name
    search_admin.drop(name)


def _load_and_read(url: str, admin: Any, index: str,
                   docs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
    """Load ``docs`` with fresh ids, read them back: ({id: document}, dead letters)."""
    from sesa_fp import es_source, load_es

    tag = uuid.uuid4().hex
    records = [{**d, "_id": f"{tag}-{i}"} for i, d in enumerate(docs)]
    dead: list[Any] = []
    report = run(pipe(records, load_es(hosts=[url], dataset=index), partition(dead.append)),
                 progress=False)
    assert report.loaded + len(dead) == len(docs)
    admin.client.indices.refresh(index=index)
    ids = [r["_id"] for r in records]
    back = {r.pop("_id"): r for r in es_source(
        hosts=[url], index=index, query={"ids": {"values": ids}}, fields=["_id", "*"])}
    return back, dead


@pytest.mark.integration
@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(docs=st.lists(engine_documents, min_size=1, max_size=8))
@example(docs=[{k: v for k, v in ODD_DOC.items() if _engine_key(k)}, {}])
def test_search_engine_keeps_values(docs: list[dict[str, Any]], search_url: str,
                                    search_admin: Any, roundtrip_index: str) -> None:
    """load_es → the engine's _source → es_source: every document back, value for value."""
    back, dead = _load_and_read(search_url, search_admin, roundtrip_index, docs)
    assert dead == [], [(d.error_type, d.error_message) for d in dead]
    assert_same([back[k] for k in sorted(back, key=lambda k: int(k.rsplit("-", 1)[1]))], docs)


@pytest.mark.integration
def test_engine_refusals_are_dead_letters(search_url: str, search_admin: Any) -> None:
    """What the engine cannot keep is refused per document and named, never changed."""
    index = search_admin.new_index("refusals")  # dynamic mapping: the engine's default
    try:
        docs: list[dict[str, Any]] = [
            {"ok": 1, "f": -0.0, "g": 5e-324},
            {"": 1}, {".": 1}, {".a": 1}, {"a..b": 1}, {"_seq_no": 1},
            {"n": 2**63},  # dynamic mapping makes it a long: beyond the range
        ]
        back, dead = _load_and_read(search_url, search_admin, index, docs)
        assert [list(b) for b in back.values()] == [["ok", "f", "g"]]
        assert_same(next(iter(back.values())), docs[0])
        assert len(dead) == 6
        assert {d.error_type for d in dead} == {"mapper_parsing_exception"}
        assert all(d.status == 400 for d in dead)
        assert sorted(d.record["_id"].rsplit("-", 1)[1] for d in dead) == list("123456")
    finally:
        search_admin.drop(index)


def test_decimals_are_written_as_numbers_with_every_digit() -> None:
    import json

    from sesa_fp.codec import dumps_line

    values = [decimal.Decimal(v) for v in
              ("12345678901234567890123", "0.1000000000000000000001", "1.10", "-0", "1E+2")]
    line = dumps_line({"d": values})
    parsed = json.loads(line, parse_float=decimal.Decimal, parse_int=decimal.Decimal)
    assert parsed["d"] == values and b'"' not in line.split(b":", 1)[1]
