"""Document ids (`sesa_fp.ids`) and dataset name templates (`sesa_fp.dataset`)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesa_fp import ConfigError, DeadLetter, load_files, partition, pipe, run
from sesa_fp.dataset import DatasetTemplate
from sesa_fp.errors import RecordError
from sesa_fp.ids import ID_STRATEGIES, id_strategy

REPO = Path(__file__).resolve().parent.parent

# Strings built from separators, digits and lengths: the material of concatenation collisions.
_tricky = st.text(alphabet=st.sampled_from(["a", "b", "|", ":", "1", "2", "0", " ", ",", "\\",
                                            "é", "\U0001F600"]), max_size=6)
_tuples = st.integers(1, 4).flatmap(
    lambda n: st.tuples(st.lists(_tricky, min_size=n, max_size=n),
                        st.lists(_tricky, min_size=n, max_size=n)))


def _rec(values: list[str]) -> dict[str, str]:
    return {f"f{i}": v for i, v in enumerate(values)}


def _fields(n: int) -> list[str]:
    return [f"f{i}" for i in range(n)]


@settings(max_examples=100, deadline=None)
@given(pair=_tuples)
def test_sha256_concat_is_unambiguous(pair: tuple[list[str], list[str]]) -> None:
    a, b = pair
    f = id_strategy({"type": "sha256_concat", "fields": _fields(len(a))})
    assert (f(_rec(a)) == f(_rec(b))) == (a == b)


@settings(max_examples=100, deadline=None)
@given(pair=_tuples)
def test_uuid5_is_unambiguous(pair: tuple[list[str], list[str]]) -> None:
    a, b = pair
    f = id_strategy({"type": "uuid5", "fields": _fields(len(a))})
    assert (f(_rec(a)) == f(_rec(b))) == (a == b)


@pytest.mark.parametrize(("a", "b"), [
    (["a|b", "c"], ["a", "b|c"]),
    (["ab", ""], ["a", "b"]),
    (["1:a", ""], ["", "1:a"]),
    (["", ""], ["", " "]),
    (["2:ab", "c"], ["2", "ab"]),
])
def test_sha256_concat_known_collision_shapes_differ(a: list[str], b: list[str]) -> None:
    n = max(len(a), len(b))
    f = id_strategy({"type": "sha256_concat", "fields": _fields(n)})
    ra, rb = _rec(a), _rec(b)
    for r in (ra, rb):
        for k in _fields(n):
            r.setdefault(k, "")
    assert f(ra) != f(rb)


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.text(max_size=8), min_size=1, max_size=4), extra=st.text(max_size=5))
def test_ids_are_deterministic_and_ignore_other_fields(values: list[str], extra: str) -> None:
    for kind in ("sha256_concat", "uuid5"):
        spec = {"type": kind, "fields": _fields(len(values))}
        first = id_strategy(spec)(_rec(values))
        assert id_strategy(spec)(_rec(values)) == first
        assert id_strategy(spec)({**_rec(values), "unrelated": extra}) == first
        # field order in the record does not matter, field order in the spec does
        assert id_strategy(spec)(dict(reversed(list(_rec(values).items())))) == first


def test_sha256_concat_shape_and_stability_across_processes() -> None:
    spec = {"type": "sha256_concat", "fields": ["a", "b"]}
    rec = {"a": "x|y", "b": 2, "c": "ignored"}
    here = id_strategy(spec)(rec)
    assert len(here) == 64 and int(here, 16) >= 0
    code = ("from sesa_fp.ids import id_strategy; "
            f"print(id_strategy({spec!r})({rec!r}), end='')")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                           capture_output=True, text=True).stdout
    assert other == here


def test_sha256_concat_text_of_dates_is_isoformat() -> None:
    f = id_strategy({"type": "sha256_concat", "fields": ["d"]})
    assert f({"d": dt.date(2025, 9, 6)}) == f({"d": "2025-09-06"})
    assert f({"d": dt.datetime(2025, 9, 6, 1, 2)}) == f({"d": "2025-09-06T01:02:00"})


@pytest.mark.parametrize("kind", ["sha256_concat", "uuid5"])
@pytest.mark.parametrize("rec", [{"a": 1}, {"a": 1, "b": None}, {}])
def test_missing_id_field_is_a_record_error(kind: str, rec: dict[str, Any]) -> None:
    f = id_strategy({"type": kind, "fields": ["a", "b"]})
    with pytest.raises(RecordError, match=r"id field '(a|b)' is missing"):
        f(rec)


@pytest.mark.parametrize("value", ["", 0, False, 0.0])
def test_falsy_values_are_present_not_missing(value: Any) -> None:
    f = id_strategy({"type": "sha256_concat", "fields": ["a"]})
    assert len(f({"a": value})) == 64
    assert id_strategy({"type": "field", "field": "a"})({"a": value}) == str(value)


def test_missing_id_field_becomes_a_dead_letter_through_a_loader() -> None:
    root = f"memory://sesa-tests/{uuid.uuid4().hex}"
    dead: list[DeadLetter] = []
    src = [{"a": 1, "b": 2}, {"a": 1}, {"a": 3, "b": 4}]
    report = run(pipe(src, load_files(root, dataset="d", run_key="r",
                                      id_strategy={"type": "sha256_concat",
                                                   "fields": ["a", "b"]}),
                      partition(dead.append)), progress=False)
    assert (report.read, report.loaded, report.dead_letters, report.conserved) == (3, 2, 1, True)
    (dl,) = dead
    assert dl.record == {"a": 1}
    assert dl.error_type == "RecordError" and "'b'" in dl.error_message


def test_uuid5() -> None:
    f = id_strategy({"type": "uuid5", "fields": ["a", "b"]})
    got = uuid.UUID(f({"a": "x", "b": 1}))
    assert got.version == 5
    assert str(got) == f({"a": "x", "b": "1"})
    ns = str(uuid.NAMESPACE_DNS)  # the default is NAMESPACE_URL
    g = id_strategy({"type": "uuid5", "fields": ["a", "b"], "namespace": ns})
    assert g({"a": "x", "b": 1}) != str(got)
    assert uuid.UUID(g({"a": "x", "b": 1})).version == 5
    with pytest.raises(ConfigError, match="namespace"):
        id_strategy({"type": "uuid5", "fields": ["a"], "namespace": "not-a-uuid"})


def test_field_strategy() -> None:
    f = id_strategy({"type": "field", "field": "doc"})
    assert f({"doc": 42}) == "42"
    assert f({"doc": "abc", "x": 1}) == "abc"
    assert f({"doc": dt.date(2025, 1, 2)}) == "2025-01-02"
    with pytest.raises(RecordError, match="'doc'"):
        f({"x": 1})
    with pytest.raises(RecordError):
        f({"doc": None})
    assert id_strategy({"type": "field", "fields": ["k"]})({"k": "v"}) == "v"


@pytest.mark.parametrize("spec", [None, "none", {"type": "none"}])
def test_none_strategy(spec: Any) -> None:
    assert id_strategy(spec)({"a": 1}) is None
    assert id_strategy(spec)({}) is None


@pytest.mark.parametrize("spec", [
    {"type": "md5"},
    "sha1",
    {"type": "sha256_concat"},
    {"type": "sha256_concat", "fields": []},
    {"type": "sha256_concat", "fields": "a"},
    {"type": "uuid5", "fields": [1]},
    {"type": "field"},
    {"type": "field", "field": 3},
    {},
])
def test_bad_id_specs_are_config_errors(spec: Any) -> None:
    with pytest.raises(ConfigError):
        id_strategy(spec)


def test_known_strategies() -> None:
    assert set(ID_STRATEGIES) == {"sha256_concat", "field", "uuid5", "none"}


# -- DatasetTemplate -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("2025-09-06T10:00:00Z", "rfi-2025.09"),
    ("2025-09-06T23:30:00-05:00", "rfi-2025.09"),
    ("2025-12-31", "rfi-2025.12"),
    ("2025-01-01T00:00:00.123456", "rfi-2025.01"),
    (dt.datetime(2024, 2, 29, 12), "rfi-2024.02"),
    (dt.datetime(2024, 2, 29, 12, tzinfo=dt.UTC), "rfi-2024.02"),
    (dt.date(1999, 7, 1), "rfi-1999.07"),
])
def test_template_date_spec(value: Any, expected: str) -> None:
    assert DatasetTemplate("rfi-{created_at:%Y.%m}").render({"created_at": value}) == expected


_offsets = st.none() | st.integers(-14 * 60, 14 * 60).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m)))


@settings(max_examples=100, deadline=None)
@given(when=st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)),
       tz=_offsets)
def test_template_iso_string_renders_like_the_datetime(when: dt.datetime,
                                                       tz: dt.timezone | None) -> None:
    when = when.replace(tzinfo=tz)
    t = DatasetTemplate("x-{t:%Y.%m.%d-%H}")
    assert t.render({"t": when.isoformat()}) == t.render({"t": when}) == when.strftime(
        "x-%Y.%m.%d-%H")


def test_template_nested_field_and_other_specs() -> None:
    t = DatasetTemplate("{org.name}-{meta.when:%Y}-{n:03d}")
    assert t.fields == ("org.name", "meta.when", "n")
    assert not t.is_static
    rec = {"org": {"name": "acme"}, "meta": {"when": "2023-05-01"}, "n": 7}
    assert t.render(rec) == "acme-2023-007"
    assert DatasetTemplate("plain-name").render({}) == "plain-name"
    assert DatasetTemplate("plain-name").is_static
    assert DatasetTemplate("{{literal}}-{a}").render({"a": 1}) == "{literal}-1"


@pytest.mark.parametrize("rec", [
    {},
    {"org": None},
    {"org": {}},
    {"org": "acme"},
    {"org": {"name": None}},
    {"org.name": "flat key is not a path"},
])
def test_template_missing_field_is_a_record_error(rec: dict[str, Any]) -> None:
    with pytest.raises(RecordError, match=r"needs field 'org\.name'"):
        DatasetTemplate("ds-{org.name}").render(rec)


@pytest.mark.parametrize("value", ["yesterday", "2025-13-01", 20250906, ["2025-01-01"]])
def test_template_non_date_with_date_spec_is_a_record_error(value: Any) -> None:
    with pytest.raises(RecordError, match="'d'"):
        DatasetTemplate("x-{d:%Y}").render({"d": value})


@pytest.mark.parametrize("template", [
    "rfi-{", "rfi-}", "{}", "a-{:%Y}", "{x!r}", "{x!s:%Y}", "", None, 5, "{a{b}}",
])
def test_bad_template_is_a_config_error(template: Any) -> None:
    with pytest.raises(ConfigError):
        DatasetTemplate(template)


def test_bad_template_in_load_files_fails_before_any_io(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_files(str(tmp_path / "out"), dataset="rfi-{created_at")
    assert not (tmp_path / "out").exists()
