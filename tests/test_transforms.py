"""Transforms: normalize, cast, derive, validate and the Transformer class adapter."""

from __future__ import annotations

import copy
import datetime as dt
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesa_fp import (
    ConfigError,
    DeadLetter,
    Failure,
    StageError,
    Transformer,
    batched,
    chain,
    map_concurrent,
    partition,
    pipe,
    run,
    stage,
    tee,
    unbatched,
)
from sesa_fp.errors import RecordError
from sesa_fp.transforms import (
    CAST_TYPES,
    CastError,
    ValidationError,
    cast,
    cast_value,
    derive,
    normalize,
    normalize_value,
    python_class,
    validate,
)

UTC = dt.UTC

# -- normalize -------------------------------------------------------------------------------

_ws = st.sampled_from([" ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2003", "\x1f", ""])
_pieces = st.sampled_from(["e\u0301", "\u0301", "A\u030a", "\u212b", "\u1e9b\u0323", "\uac00",
                           "\u1100\u1161", "x", "Caf\u00e9", "\U0001F600", "\ufb01", "0"])
_str = (
    st.text(max_size=10)
    | st.builds(lambda a, b, c: a + b + c, _ws, st.lists(_pieces, max_size=4).map("".join), _ws)
)
_leaf = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _str
         | st.tuples(_str) | st.just(dt.date(2025, 1, 2)))
_value = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=10)
_rec = st.dictionaries(st.text(max_size=5), _value, max_size=5)


def _check_normalized(before: Any, after: Any) -> None:
    if type(before) is str:
        stripped = before.strip()
        if not stripped:
            assert after is None
        else:
            assert type(after) is str
            assert after == after.strip() and after
            assert unicodedata.is_normalized("NFC", after)
            assert after == unicodedata.normalize("NFC", stripped)
    elif type(before) is dict:
        assert type(after) is dict and list(after) == list(before)
        for k in before:
            _check_normalized(before[k], after[k])
    elif type(before) is list:
        assert type(after) is list and len(after) == len(before)
        for b, a in zip(before, after, strict=True):
            _check_normalized(b, a)
    else:
        assert after is before  # non-strings pass through untouched (same object)


@settings(max_examples=100, deadline=None)
@given(rec=_rec)
def test_normalize_laws(rec: dict[str, Any]) -> None:
    snapshot = copy.deepcopy(rec)
    once = normalize()(rec)
    assert rec == snapshot, "the input record must not be mutated"
    _check_normalized(rec, once)
    assert normalize()(once) == once, "normalize is idempotent"


@settings(max_examples=50, deadline=None)
@given(rec=_rec, pick=st.sets(st.text(max_size=5), max_size=3))
def test_normalize_only_named_fields(rec: dict[str, Any], pick: set[str]) -> None:
    out = normalize(sorted(pick))(rec)
    assert list(out) == list(rec)
    for k, v in rec.items():
        if k in pick:
            _check_normalized(v, out[k])
        else:
            assert out[k] is v


def test_normalize_examples() -> None:
    f = normalize()
    assert f({"a": "  Cafe\u0301 ", "b": "", "c": " \t\n", "d": 0, "e": None}) == {
        "a": "Caf\u00e9", "b": None, "c": None, "d": 0, "e": None}
    assert f({"n": {"l": ["\u212b ", "", ["\u00a0x\u3000"]]}}) == {
        "n": {"l": ["\u00c5", None, ["x"]]}}
    assert normalize_value("\U0001F600 ") == "\U0001F600"
    assert normalize(["a"])({"a": " x ", "b": " y "}) == {"a": "x", "b": " y "}
    assert normalize()({}) == {}


def test_normalize_in_a_stage() -> None:
    out = list(pipe([{"t": " x "}, Failure("dl"), {"t": ""}], stage(normalize())))
    assert out[0] == {"t": "x"} and out[1] == Failure("dl") and out[2] == {"t": None}


# -- cast ------------------------------------------------------------------------------------

_OK_CASES: list[tuple[str, Any, Any, str]] = [
    ("datetime", "2025-09-06T10:00:00Z", dt.datetime(2025, 9, 6, 10, tzinfo=UTC), "s"),
    ("datetime", "2025-09-06T10:00:00+02:00",
     dt.datetime(2025, 9, 6, 10, tzinfo=dt.timezone(dt.timedelta(hours=2))), "s"),
    ("datetime", "2025-09-06 10:00:00", dt.datetime(2025, 9, 6, 10), "s"),
    ("datetime", "2025-09-06", dt.datetime(2025, 9, 6), "s"),
    ("datetime", dt.date(2025, 9, 6), dt.datetime(2025, 9, 6), "s"),
    ("datetime", dt.datetime(2025, 9, 6, 1, 2, 3), dt.datetime(2025, 9, 6, 1, 2, 3), "s"),
    ("datetime", 0, dt.datetime(1970, 1, 1, tzinfo=UTC), "s"),
    ("datetime", 1757152800, dt.datetime(2025, 9, 6, 10, tzinfo=UTC), "s"),
    ("datetime", 1757152800000, dt.datetime(2025, 9, 6, 10, tzinfo=UTC), "ms"),
    ("datetime", 1.5, dt.datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC), "s"),
    ("date", "2025-09-06", dt.date(2025, 9, 6), "s"),
    ("date", "2025-09-06T23:59:59", dt.date(2025, 9, 6), "s"),
    ("date", dt.datetime(2025, 9, 6, 23, 0), dt.date(2025, 9, 6), "s"),
    ("date", dt.date(2025, 9, 6), dt.date(2025, 9, 6), "s"),
    ("date", 86400, dt.date(1970, 1, 2), "s"),
    ("int", "12", 12, "s"),
    ("int", " -7 ", -7, "s"),
    ("int", 12.0, 12, "s"),
    ("int", 5, 5, "s"),
    ("int", 2**80, 2**80, "s"),
    ("float", "1.5", 1.5, "s"),
    ("float", 2, 2.0, "s"),
    ("float", " -3e2 ", -300.0, "s"),
    ("bool", "true", True, "s"),
    ("bool", " YES ", True, "s"),
    ("bool", "on", True, "s"),
    ("bool", "0", False, "s"),
    ("bool", "No", False, "s"),
    ("bool", 1, True, "s"),
    ("bool", 0, False, "s"),
    ("bool", False, False, "s"),
    ("str", 5, "5", "s"),
    ("str", 1.5, "1.5", "s"),
    ("str", True, "True", "s"),
    ("str", dt.date(2025, 9, 6), "2025-09-06", "s"),
    ("str", dt.datetime(2025, 9, 6, 10, 0), "2025-09-06T10:00:00", "s"),
    ("str", "already", "already", "s"),
]


@pytest.mark.parametrize(("to", "value", "expected", "unit"), _OK_CASES)
def test_cast_converts(to: str, value: Any, expected: Any, unit: str) -> None:
    rec = {"f": value, "other": "untouched"}
    out = cast("f", to=to, unit=unit)(rec)
    assert out == {"f": expected, "other": "untouched"}
    assert type(out["f"]) is type(expected)
    assert rec == {"f": value, "other": "untouched"}, "input not mutated"
    assert cast_value("f", value, to, unit) == expected


_BAD_CASES: list[tuple[str, Any]] = [
    ("datetime", "not a date"),
    ("datetime", "2025-13-01"),
    ("datetime", True),
    ("datetime", [2025]),
    ("datetime", 10**20),
    ("date", "2025-02-30"),
    ("date", {"y": 2025}),
    ("int", "twelve"),
    ("int", "1.5"),
    ("int", 1.5),
    ("int", True),
    ("int", float("inf")),
    ("int", float("nan")),
    ("int", [1]),
    ("float", "abc"),
    ("float", False),
    ("float", {"x": 1}),
    ("bool", "maybe"),
    ("bool", 2),
    ("bool", 1.0),
    ("bool", ""),
    ("str", {"a": 1}),
    ("str", [1, 2]),
]


@pytest.mark.parametrize(("to", "value"), _BAD_CASES)
def test_cast_failure_names_field_and_value(to: str, value: Any) -> None:
    with pytest.raises(CastError) as info:
        cast(["ok", "the_field"], to=to)({"ok": None, "the_field": value})
    msg = str(info.value)
    assert "'the_field'" in msg
    assert repr(value)[:60] in msg
    assert msg.endswith(f"is not a valid {to}")
    assert isinstance(info.value, RecordError) and isinstance(info.value, ValueError)
    with pytest.raises(CastError, match="the_field"):
        cast_value("the_field", value, to)


def test_cast_covers_every_declared_type() -> None:
    assert set(CAST_TYPES) == {t for t, *_ in _OK_CASES} == {t for t, _ in _BAD_CASES}


def test_cast_leaves_missing_and_none_alone() -> None:
    f = cast(["a", "b"], to="int")
    assert f({"a": None}) == {"a": None}
    assert f({"c": "x"}) == {"c": "x"}


@pytest.mark.parametrize("kwargs", [
    {"fields": [], "to": "int"},
    {"fields": [1], "to": "int"},
    {"fields": "a", "to": "decimal"},
    {"fields": "a", "to": "datetime", "unit": "us"},
])
def test_cast_bad_config_is_a_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        cast(**kwargs)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(), pad=st.sampled_from(["", " ", "\t"]))
def test_cast_int_of_its_text_is_itself(n: int, pad: str) -> None:
    assert cast("n", to="int")({"n": f"{pad}{n}{pad}"}) == {"n": n}


@settings(max_examples=100, deadline=None)
@given(when=st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                         timezones=st.none() | st.just(UTC)))
def test_cast_datetime_of_isoformat_is_itself(when: dt.datetime) -> None:
    assert cast("t", to="datetime")({"t": when.isoformat()}) == {"t": when}
    assert cast("t", to="str")({"t": when}) == {"t": when.isoformat()}


def test_cast_inside_stage_makes_a_dead_letter() -> None:
    dead: list[DeadLetter] = []
    src = [{"id": 1, "n": "3"}, {"id": 2, "n": "three"}, {"id": 3, "n": None}]
    report = run(pipe(src, stage(cast("n", to="int")), partition(dead.append)), progress=False)
    assert (report.read, report.emitted, report.dead_letters, report.conserved) == (3, 2, 1, True)
    (dl,) = dead
    assert dl.record == {"id": 2, "n": "three"}
    assert dl.error_type == "CastError"
    assert "'n'" in dl.error_message and "'three'" in dl.error_message
    assert dl.stage == "cast(['n'], to='int')"
    assert dl.run_id == report.run_id


# -- derive / validate -----------------------------------------------------------------------


def test_derive_adds_a_field_from_the_original_record() -> None:
    seen: list[dict[str, Any]] = []

    def key(r: dict[str, Any]) -> str:
        seen.append(r)
        return f"{r['p']}-{r['n']}"

    rec = {"p": "P1", "n": 7}
    assert derive("key", key)(rec) == {"p": "P1", "n": 7, "key": "P1-7"}
    assert rec == {"p": "P1", "n": 7} and seen == [{"p": "P1", "n": 7}]
    assert derive("n", lambda r: r["n"] + 1)({"n": 1}) == {"n": 2}


def test_derive_error_in_a_stage_is_a_dead_letter() -> None:
    out = list(pipe([{"a": 1}, {"b": 2}], stage(derive("a2", lambda r: r["a"] * 2))))
    assert out[0] == {"a": 1, "a2": 2}
    dl = out[1].failure()
    assert (dl.error_type, dl.record) == ("KeyError", {"b": 2})
    assert dl.stage.startswith("derive('a2',")


@pytest.mark.parametrize(("field", "fn"), [("", len), (None, len), ("x", "not callable")])
def test_derive_bad_config(field: Any, fn: Any) -> None:
    with pytest.raises(ConfigError):
        derive(field, fn)


def test_validate_accepts_and_returns_the_same_record() -> None:
    check = validate(required=["id"], types={"n": "int", "x": "float", "when": "datetime",
                                             "tags": "list", "meta": "dict", "ok": "bool"})
    rec = {"id": 0, "n": 3, "x": 2, "when": dt.datetime(2025, 1, 1), "tags": [], "meta": {},
           "ok": False}
    assert check(rec) is rec
    assert check({"id": "a", "n": None}) == {"id": "a", "n": None}


@pytest.mark.parametrize(("rec", "needle"), [
    ({"n": 1}, "required field 'id' is missing"),
    ({"id": None}, "required field 'id' is missing"),
    ({"id": 1, "n": "2"}, "field 'n' must be int, got str '2'"),
    ({"id": 1, "n": True}, "field 'n' must be int, got bool True"),
    ({"id": 1, "x": False}, "field 'x' must be float, got bool"),
    ({"id": 1, "d": dt.datetime(2025, 1, 1).isoformat()}, "field 'd' must be date"),
])
def test_validate_rejects_with_a_message(rec: dict[str, Any], needle: str) -> None:
    check = validate(required="id", types={"n": "int", "x": "float", "d": "date"})
    with pytest.raises(ValidationError, match=needle.replace("(", r"\(")):
        check(rec)


def test_validate_unknown_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown type 'integer'"):
        validate(types={"n": "integer"})


def test_validate_in_a_stage() -> None:
    dead: list[DeadLetter] = []
    out = list(pipe([{"id": 1}, {}, {"id": 2}], stage(validate(["id"])), partition(dead.append)))
    assert out == [{"id": 1}, {"id": 2}]
    assert [d.error_type for d in dead] == ["ValidationError"]


# -- python_class ----------------------------------------------------------------------------


class Tagger(Transformer):
    """Record mode; logs open/close with the thread that ran them."""

    def __init__(self, log: list[tuple[str, int]] | None = None, tag: str = "t",
                 barrier: threading.Barrier | None = None) -> None:
        self.log = log if log is not None else []
        self.tag = tag
        self.barrier = barrier
        self.opened = False

    def open(self) -> None:
        self.log.append(("open", threading.get_ident()))
        self.opened = True
        if self.barrier is not None:
            self.barrier.wait(timeout=20)

    def close(self) -> None:
        self.log.append(("close", threading.get_ident()))

    def map_record(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        assert self.opened, "map_record before open"
        if rec.get("drop"):
            return None
        if rec.get("bad"):
            raise ValueError(f"bad record {rec['i']}")
        return {**rec, "tag": self.tag, "thread": threading.get_ident()}


class BatchDoubler(Transformer):
    """Batch mode: only map_batch overridden."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes

    def map_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.sizes.append(len(batch))
        if any(r.get("poison") for r in batch):
            raise RuntimeError("poisoned batch")
        return [{**r, "i": r["i"] * 2} for r in batch if not r.get("drop")]


def test_python_class_record_mode() -> None:
    log: list[tuple[str, int]] = []
    dead: list[Any] = []
    out: list[dict[str, Any]] = []
    src = [{"i": 0}, {"i": 1, "drop": True}, {"i": 2, "bad": True}, Failure("old"), {"i": 4}]
    p = pipe(src, python_class(Tagger, log=log, tag="x"), partition(dead.append), tee(out.append))
    report = run(p, progress=False)
    assert [r["i"] for r in out] == [0, 4] and all(r["tag"] == "x" for r in out)
    assert (report.read, report.emitted, report.dropped, report.dead_letters) == (5, 2, 1, 2)
    assert report.conserved
    assert len(dead) == 2
    assert (dead[0].error_type, dead[0].error_message) == ("ValueError", "bad record 2")
    assert dead[0].record == {"i": 2, "bad": True}
    assert dead[0].stage == f"{__name__}:Tagger"
    assert dead[1] == "old"
    # one open and one close for the run, in the consuming thread
    me = threading.get_ident()
    assert log == [("open", me), ("close", me)]


def test_python_class_by_import_path() -> None:
    st_ = python_class(f"{Tagger.__module__}:Tagger", tag="p")
    (out,) = list(pipe([{"i": 1}], st_))
    assert out["tag"] == "p"
    assert repr(st_) == f"python_class('{Tagger.__module__}:Tagger', tag='p')"


def test_python_class_rejects_non_transformers_and_bad_options() -> None:
    with pytest.raises(ConfigError, match="not a Transformer"):
        python_class(dict)
    with pytest.raises(ConfigError, match="cannot construct"):
        list(pipe([{"i": 1}], python_class(Tagger, nope=1)))


def test_python_class_batch_mode() -> None:
    sizes: list[int] = []
    src: list[Any] = [{"i": i} for i in range(7)]
    src[2] = {"i": 2, "drop": True}
    src[5] = Failure("passing")
    out = list(pipe(src, python_class(BatchDoubler, batch_size=3, sizes=sizes)))
    good = [x for x in out if not isinstance(x, Failure)]
    assert [r["i"] for r in good] == [0, 2, 6, 8, 12]
    assert Failure("passing") in out
    assert sizes == [3, 2, 1]  # chunks of 3 items; the Failure is not handed to map_batch


def test_python_class_batch_error_dead_letters_the_whole_chunk() -> None:
    sizes: list[int] = []
    dead: list[DeadLetter] = []
    src = [{"i": 0}, {"i": 1, "poison": True}, {"i": 2}, {"i": 3}]
    out: list[dict[str, Any]] = []
    p = pipe(src, python_class(BatchDoubler, batch_size=2, sizes=sizes), partition(dead.append),
             tee(out.append))
    report = run(p, progress=False)
    assert [r["i"] for r in out] == [4, 6]
    assert [d.record for d in dead] == src[:2]
    assert {d.error_message for d in dead} == {"poisoned batch"}
    assert (report.emitted, report.dead_letters, report.conserved) == (2, 2, True)


def _per_thread(log: list[tuple[str, int]]) -> tuple[Counter[int], Counter[int]]:
    opens = Counter(t for ev, t in log if ev == "open")
    closes = Counter(t for ev, t in log if ev == "close")
    return opens, closes


def _concurrent(log: list[tuple[str, int]], n: int, later: Any = None) -> Any:
    barrier = threading.Barrier(3)  # every worker must open before any proceeds
    stages: list[Any] = [
        batched(4),
        map_concurrent(chain(python_class(Tagger, log=log, barrier=barrier)),
                       workers=3, window=4),
        unbatched(),
    ]
    if later is not None:
        stages.append(later)
    return pipe(({"i": i} for i in range(n)), *stages)


def test_python_class_opens_once_per_worker_thread() -> None:
    log: list[tuple[str, int]] = []
    out = list(_concurrent(log, 200))
    assert [r["i"] for r in out] == list(range(200))
    opens, closes = _per_thread(log)
    assert len(opens) == 3 and set(opens.values()) == {1}
    assert closes == opens
    assert threading.get_ident() not in opens
    assert {r["thread"] for r in out} <= set(opens)
    # each thread closes after it opened
    for t in opens:
        events = [ev for ev, tid in log if tid == t]
        assert events == ["open", "close"]


def test_python_class_closed_when_consumer_stops_early() -> None:
    log: list[tuple[str, int]] = []
    it: Iterator[Any] = iter(_concurrent(log, 10_000, later=stage(lambda r: r)))
    first = [next(it) for _ in range(5)]
    assert [r["i"] for r in first] == list(range(5))
    opens, closes = _per_thread(log)
    assert len(opens) == 3 and not closes
    it.close()  # type: ignore[attr-defined]
    opens, closes = _per_thread(log)
    assert closes == opens and set(opens.values()) == {1}


def test_python_class_closed_when_a_later_stage_raises() -> None:
    log: list[tuple[str, int]] = []

    def explode(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["i"] == 50:
            raise RuntimeError("later stage broke")
        return rec

    with pytest.raises(StageError, match="later stage broke"):
        run(_concurrent(log, 10_000, later=stage(explode, errors=(KeyError,))), progress=False)
    opens, closes = _per_thread(log)
    assert len(opens) == 3 and set(opens.values()) == {1}
    assert closes == opens


def test_python_class_without_workers_closes_on_early_stop_and_error() -> None:
    log: list[tuple[str, int]] = []
    it = iter(pipe(({"i": i} for i in range(100)), python_class(Tagger, log=log)))
    next(it)
    it.close()  # type: ignore[attr-defined]
    assert [ev for ev, _ in log] == ["open", "close"]

    log.clear()

    def explode(rec: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("nope")

    with pytest.raises(StageError):
        run(pipe([{"i": 1}], python_class(Tagger, log=log), stage(explode, errors=())),
            progress=False)
    assert [ev for ev, _ in log] == ["open", "close"]


def test_python_class_map_record_error_outside_workers_is_not_fatal() -> None:
    out = list(pipe([{"i": 1, "bad": True}, {"i": 2}], python_class(Tagger)))
    assert isinstance(out[0], Failure) and out[0].failure().error_type == "ValueError"
    assert out[1]["i"] == 2


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(alphabet=st.sampled_from(" \tae\u0301\u00e9x\u3000")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=8)


@given(st.dictionaries(st.text(max_size=5), _json_values, max_size=6))
def test_normalize_record_is_normalize_value_per_field(record: dict) -> None:
    from sesa_fp.transforms.normalize import normalize_value

    assert normalize()(record) == {k: normalize_value(v) for k, v in record.items()}
