"""HTML views for Jupyter: a pipeline's stages and a run report, with a small bar chart.

Plain HTML and inline CSS (no script), every value escaped and every URI masked. `Pipeline`
and `RunReport` call these from their ``_repr_html_``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sesa_fp.secrets import mask_url

__all__ = ["bar_chart_html", "pipeline_html", "report_html", "stage_table_html"]

_BARS = (("in", "#4c78a8"), ("out", "#54a24b"), ("dropped", "#eeca3b"), ("failed", "#e45756"))
_STYLE = ("font-family:var(--jp-content-font-family,sans-serif);font-size:12px;"
          "border-collapse:collapse")
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:{align}"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _row(cells: Iterable[Any], *, header: bool = False) -> str:
    tag = "th" if header else "td"
    out = []
    for i, cell in enumerate(cells):
        align = "left" if i == 0 or isinstance(cell, str) else "right"
        out.append(f'<{tag} style="{_CELL.format(align=align)}">{_e(cell)}</{tag}>')
    return "<tr>" + "".join(out) + "</tr>"


def stage_table_html(stages: Sequence[Mapping[str, Any]]) -> str:
    """The stages in order with their counts, as an HTML table.

    >>> page = stage_table_html([{"name": "stage(<x>)", "kind": "stage", "in": 2, "out": 1,
    ...                           "dropped": 1, "failed": 0, "committed": 0}])
    >>> page.startswith("<table") and "stage(&lt;x&gt;)" in page and ">2</td>" in page
    True
    """
    keys = ("in", "out", "dropped", "failed", "committed")
    rows = [_row(("#", "stage", "kind", *keys), header=True)]
    for i, s in enumerate(stages, 1):
        rows.append(_row((str(i), s.get("name", "?"), s.get("kind", ""),
                          *(int(s.get(k) or 0) for k in keys))))
    return f'<table style="{_STYLE}">' + "".join(rows) + "</table>"


def bar_chart_html(stages: Sequence[Mapping[str, Any]], *, width: int = 160) -> str:
    """A per-stage bar chart of in/out/dropped/failed: inline-CSS bars scaled to the largest
    count, each with its number (no script, so it shows in any notebook viewer).

    >>> chart = bar_chart_html([{"name": "a", "in": 4, "out": 2, "dropped": 1, "failed": 1}])
    >>> 'width:160px' in chart and 'width:80px' in chart and 'title="failed 1"' in chart
    True
    """
    top = max([int(s.get(k) or 0) for s in stages for k, _ in _BARS] + [1])
    legend = " ".join(
        f'<span style="display:inline-block;width:10px;height:10px;background:{color}">'
        f"</span> {name}" for name, color in _BARS)
    rows = []
    for s in stages:
        bars = []
        for key, color in _BARS:
            n = int(s.get(key) or 0)
            px = round(width * n / top) if n else 0
            bars.append(
                f'<div title="{key} {n}" style="display:flex;align-items:center;height:9px;'
                f'margin:1px 0"><div style="width:{px}px;height:8px;background:{color}">'
                f'</div><span style="font-size:9px;margin-left:3px">{n}</span></div>')
        rows.append(f'<tr><td style="{_CELL.format(align="left")};font-size:11px">'
                    f'{_e(str(s.get("name", "?"))[:60])}</td>'
                    f'<td style="{_CELL.format(align="left")}">{"".join(bars)}</td></tr>')
    return (f'<div style="font-size:11px;margin:4px 0">{legend}</div>'
            f'<table style="{_STYLE}">' + "".join(rows) + "</table>")


def _outputs_html(outputs: Sequence[Mapping[str, Any]]) -> str:
    if not outputs:
        return ""
    rows = [_row(("output", "uri", "records"), header=True)]
    for o in outputs:
        rows.append(_row((str(o.get("kind", "output")), mask_url(str(o.get("uri", ""))),
                          o.get("records", ""))))
    return f'<table style="{_STYLE}">' + "".join(rows) + "</table>"


def _dead_letters_html(kinds: Sequence[Mapping[str, Any]]) -> str:
    if not kinds:
        return ""
    rows = [_row(("dead letters: stage", "error type", "count"), header=True)]
    rows += [_row((str(k.get("stage", "?")), str(k.get("error_type", "?")),
                   int(k.get("count") or 0))) for k in kinds]
    return f'<table style="{_STYLE}">' + "".join(rows) + "</table>"


def report_html(report: Any) -> str:
    """A `RunReport` as HTML: the balance, the stages with counts and a bar chart, the outputs
    with their (masked) URIs, and the dead letters grouped by stage and error type."""
    status = "ok" if report.status == "ok" else f"{report.status.upper()}: {report.error}"
    color = {True: "#54a24b", False: "#e45756", None: "#888"}[report.conserved]
    head = (f'<div style="font-family:var(--jp-content-font-family,sans-serif)">'
            f"<b>run {_e(report.run_id)}</b>"
            + (f" ({_e(report.job)})" if report.job else "") + f" &mdash; {_e(status)}<br>"
            f'<span style="color:{color}">{_e(report.balance())}</span><br>'
            f"retries {report.retries} &middot; {report.elapsed_s:.2f}s &middot; "
            f"staged {report.bytes_staged} bytes</div>")
    kinds = getattr(report, "dead_letter_kinds", ())
    return "".join((head, stage_table_html(report.stages), bar_chart_html(report.stages),
                    _outputs_html(report.outputs), _dead_letters_html(kinds)))


def pipeline_html(pipeline: Any) -> str:
    """A `Pipeline` as HTML: its Python form, then the source and stages in order with the
    counts of the last iteration (zero before it ran), a bar chart and the sinks' places."""
    from sesa_fp.stats import walk

    stats = [s.as_dict() for s in pipeline.stats()]
    places = []
    for node in walk(pipeline):
        describe = getattr(node, "describe", None)
        if node is pipeline or not callable(describe):
            continue
        try:
            place = describe()
        except Exception:
            continue
        if place:
            places.append(place)
    return (f'<pre style="font-size:11px">{_e(pipeline.to_python())}</pre>'
            + stage_table_html(stats) + bar_chart_html(stats) + _outputs_html(places))
