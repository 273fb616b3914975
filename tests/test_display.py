"""What a notebook user sees: HTML views, plain reprs, previews and tab completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sesa_fp
from sesa_fp import (
    RunReport,
    batched,
    load_files,
    partition,
    pipe,
    run,
    stage,
    tee,
    to_storage,
)
from sesa_fp.errors import RecordError
from sesa_fp.transforms import cast, normalize


def test_dir_lists_the_lazy_names() -> None:
    names = dir(sesa_fp)
    for name in sesa_fp.__all__:
        assert name in names
        assert getattr(sesa_fp, name) is not None
    assert {"load_es", "es_source", "load_sql", "sql_source", "http_source"} <= set(names)


_COMPLETE = """
from IPython.core.completer import provisionalcompleter
from IPython.testing.globalipapp import get_ipython
ip = get_ipython()
ip.run_cell("import sesa_fp")
for jedi in (False, True):
    ip.Completer.use_jedi = jedi
    with provisionalcompleter():
        print(sorted({c.text.lstrip(".") for c in ip.Completer.completions("sesa_fp.load_", 13)}))
"""


def test_ipython_completes_the_lazy_names() -> None:
    """IPython's completer, with and without jedi (in a child: it sets up a global shell)."""
    pytest.importorskip("IPython")
    proc = subprocess.run([sys.executable, "-c", _COMPLETE], capture_output=True, text=True,
                          timeout=120, check=True)
    lines = proc.stdout.strip().splitlines()
    assert lines == ["['load_es', 'load_files', 'load_sql']"] * 2, proc.stdout + proc.stderr


def _to_int(rec: dict[str, Any]) -> dict[str, Any] | None:
    if rec["n"] == "":
        return None
    return {**rec, "n": int(rec["n"])}


def _report(tmp_path: Path) -> RunReport:
    dead: list[Any] = []
    p = pipe([{"n": "1"}, {"n": "x"}, {"n": ""}, {"n": "y"}],
             tee(to_storage(str(tmp_path / "staging"))),
             stage(_to_int, name="<b>to_int</b>", errors=(ValueError,)),
             partition(dead.append))
    return run(p, progress=False)


def test_report_html_shows_stages_chart_outputs_and_dead_letters(tmp_path: Path) -> None:
    report = _report(tmp_path)
    page = report._repr_html_()
    assert "&lt;b&gt;to_int&lt;/b&gt;" in page and "<b>to_int</b>" not in page  # escaped
    assert report.dead_letter_kinds == ({"stage": "<b>to_int</b>", "error_type": "ValueError",
                                         "count": 2},)
    assert "ValueError" in page and "dead letters: stage" in page
    assert 'title="in 4"' in page and 'title="failed 2"' in page  # the bar chart
    assert 'title="dropped 1"' in page
    assert "staging" in page and "<script" not in page
    assert report.balance() in page


def test_report_html_masks_uris(tmp_path: Path) -> None:
    report = attrs.evolve(_report(tmp_path), outputs=(
        {"kind": "staging", "uri": "s3://AKIAKEY:topsecret@bucket/x/", "records": 3},))
    page = report._repr_html_()
    assert "topsecret" not in page and "AKIAKEY" not in page and "s3://***:***@bucket" in page


def test_report_repr_is_python_and_str_is_the_summary(tmp_path: Path) -> None:
    report = _report(tmp_path)
    assert eval(repr(report), {"RunReport": RunReport}) == report
    assert str(report).startswith(f"run {report.run_id}")
    assert "read 4 = emitted 1 (no loader) + dropped 1 + dead letters 2" in str(report)


def test_pipeline_html_and_repr(tmp_path: Path) -> None:
    p = pipe([1, 2, 3], batched(2))
    assert repr(p) == "pipe([1, 2, 3], batched(2))"
    assert list(eval(repr(p), {"pipe": pipe, "batched": batched})) == [[1, 2], [3]]
    q = pipe([{"n": "1"}], stage(_to_int, name="a<b"),
             load_files(str(tmp_path / "out"), dataset="d"))
    before = q._repr_html_()
    assert "a&lt;b" in before and 'title="in 0"' in before
    run(q, progress=False)
    after = q._repr_html_()
    assert 'title="out 1"' in after and "files" in after and str(tmp_path / "out") in after


# -- preview -----------------------------------------------------------------------------------

def _loader_pipeline(tmp_path: Path) -> Any:
    return pipe(
        [{"k": "a", "n": " 1 "}, {"k": "b", "n": "x"}, {"k": "c", "n": ""}, {"n": "2"}],
        tee(to_storage(str(tmp_path / "staging"))),
        stage(normalize()),
        stage(cast("n", to="int")),
        stage(lambda r: r if r["n"] is not None else None, name="drop_empty"),
        load_files(str(tmp_path / "out"), dataset="d-{k}",
                   id_strategy={"type": "field", "field": "k"}),
        partition(lambda d: None),
    )


def test_preview_shows_changes_targets_and_dead_letters_and_writes_nothing(
        tmp_path: Path) -> None:
    p = _loader_pipeline(tmp_path)
    rows = p.preview(n=10).rows
    assert [r.outcome for r in rows] == ["load", "dead letter", "dropped", "dead letter"]
    first = rows[0]
    assert first.target is not None and (first.target.dataset, first.target.id) == ("d-a", "a")
    assert [(c.field, c.before, c.after) for c in first.changes] == [("n", " 1 ", 1)]
    assert rows[1].dead_letter is not None and rows[1].dead_letter.error_type == "CastError"
    assert rows[2].dropped_by == "drop_empty"
    assert rows[3].dead_letter is not None and "'k'" in rows[3].dead_letter.error_message
    assert rows[3].dead_letter.stage.startswith("load_files")
    assert not list(tmp_path.iterdir())  # no staging part, no loaded file, no DLQ
    text = str(p.preview(2))
    assert text.splitlines()[0] == "record 1 -> d-a id=a: n: ' 1 ' -> 1"
    assert "dead letter at cast" in text


def test_preview_does_not_contact_a_search_target_and_keeps_last_counts(
        tmp_path: Path) -> None:
    loader = sesa_fp.load_es(hosts=["http://127.0.0.1:9"], dataset="rfi-{created_at:%Y.%m}",
                             id_strategy={"type": "sha256_concat", "fields": ["p", "r"]})
    p = pipe([{"p": "P1", "r": 1, "created_at": "2025-09-06T10:00:00"}],
             stage(cast("created_at", to="datetime")), loader)
    (row,) = p.preview().rows
    assert row.target is not None and row.target.dataset == "rfi-2025.09"
    assert row.target == loader.target(row.output)
    assert len(row.target.id or "") == 64
    q = _loader_pipeline(tmp_path)
    run(q, progress=False, check=False)
    counts = [s.as_dict() for s in q.stats()]
    q.preview(3)
    assert [s.as_dict() for s in q.stats()] == counts


def test_preview_html_escapes(tmp_path: Path) -> None:
    p = pipe([{"t": "<i>x</i>"}], stage(lambda r: {**r, "t": r["t"] + "!"}, name="<s>"))
    page = p.preview()._repr_html_()
    assert "&lt;i&gt;" in page and "<i>" not in page


def test_preview_rejects_a_bad_n() -> None:
    with pytest.raises(ValueError, match="positive int"):
        pipe([]).preview(0)


def _may_fail(rec: dict[str, int]) -> dict[str, int] | None:
    if rec["v"] % 3 == 0:
        return None
    if rec["v"] % 5 == 0:
        raise RecordError(f"bad {rec['v']}")
    return {"v": rec["v"] * 2}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-50, 50), max_size=15), st.integers(1, 20))
def test_preview_agrees_with_a_run(values: list[int], n: int) -> None:
    """Each previewed record has the outcome the stream gives it, in order; n bounds it."""
    recs = [{"v": v} for v in values]
    rows = pipe(recs, stage(_may_fail, errors=(RecordError,))).preview(n).rows
    expected = []
    for rec in recs[:n]:
        try:
            out = _may_fail(rec)
        except RecordError:
            expected.append("dead letter")
            continue
        expected.append("dropped" if out is None else "load")
    assert [r.outcome for r in rows] == expected
    assert [r.index for r in rows] == list(range(1, len(expected) + 1))
