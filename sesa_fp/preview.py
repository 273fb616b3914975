"""`Pipeline.preview`: the first records through the transforms, nothing loaded or staged.

Per record: the fields the transforms changed, the dataset (index, table, folder) and id the
loader would give it (its own ``target(record)``), or the dead letter it would become and
why, or the stage that would drop it. Sinks are skipped, never entered: no writer is
prepared, no staging part written, no target contacted (the source is read, n records).
"""

from __future__ import annotations

import copy
import datetime as _dt
import html
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
from returns.result import Failure, Success

from sesa_fp.dataset import Target
from sesa_fp.errors import RecordError
from sesa_fp.result import DeadLetter

__all__ = ["Change", "Preview", "PreviewRow", "changes", "preview"]

_MISSING = "<missing>"


@attrs.frozen
class Change:
    """One top-level field a transform added, removed or changed."""

    field: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.field}: {_short(self.before)} -> {_short(self.after)}"


def _short(value: Any, width: int = 60) -> str:
    if value is _MISSING:
        return _MISSING
    if isinstance(value, (_dt.date, _dt.datetime)):  # readable, and still says what it is
        return f"{type(value).__name__}({value.isoformat()})"
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def changes(before: Any, after: Any) -> list[Change]:
    """The top-level fields that differ between two records, in the output's order.

    >>> [str(c) for c in changes({"a": 1, "b": " x "}, {"b": "x", "c": True})]
    ["b: ' x ' -> 'x'", 'c: <missing> -> True', 'a: 1 -> <missing>']
    >>> str(changes({"d": "2025-09-06"}, {"d": _dt.date(2025, 9, 6)})[0])
    "d: '2025-09-06' -> date(2025-09-06)"
    """
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return [] if before == after else [Change("<record>", before, after)]
    out = [Change(k, before.get(k, _MISSING), v) for k, v in after.items()
           if k not in before or before[k] != v or type(before[k]) is not type(v)]
    out += [Change(k, before[k], _MISSING) for k in before if k not in after]
    return out


@attrs.frozen
class PreviewRow:
    """What became of one source record (``index`` counts from 1); one input may give several
    rows when a stage yields more than one record for it."""

    index: int
    input: Any
    output: Any = None
    changes: tuple[Change, ...] = ()
    target: Target | None = None
    dead_letter: DeadLetter | None = None
    dropped_by: str | None = None

    @property
    def outcome(self) -> str:
        """``load``, ``dropped`` or ``dead letter``."""
        if self.dead_letter is not None:
            return "dead letter"
        return "dropped" if self.dropped_by is not None else "load"

    def __str__(self) -> str:
        head = f"record {self.index}"
        if self.dead_letter is not None:
            d = self.dead_letter
            return f"{head}: dead letter at {d.stage}: {d.error_type}: {d.error_message}"
        if self.dropped_by is not None:
            return f"{head}: dropped by {self.dropped_by}"
        if self.target is not None:
            head += f" -> {self.target.dataset}"
            head += "" if self.target.id is None else f" id={self.target.id}"
            head += "" if self.target.routing is None else f" routing={self.target.routing}"
        body = [f"{head}: {c}" if len(self.changes) == 1 and i == 0 else f"  {c}"
                for i, c in enumerate(self.changes)]
        if len(self.changes) == 1:
            return body[0]
        return "\n".join([head + ("" if self.changes else ": unchanged"), *body])


@attrs.frozen
class Preview:
    """The rows of a preview; prints as text, renders as an HTML table in Jupyter."""

    rows: tuple[PreviewRow, ...]
    loader: str | None = None

    def __iter__(self) -> Iterator[PreviewRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        return "\n".join(map(str, self.rows))

    def _repr_html_(self) -> str:
        cell = 'style="padding:2px 8px;border-bottom:1px solid #ddd;vertical-align:top"'

        def row(cells: list[str], tag: str = "td") -> str:
            return "<tr>" + "".join(f"<{tag} {cell}>{c}</{tag}>" for c in cells) + "</tr>"

        e = html.escape
        out = [row(["#", "outcome", "fields changed", "target", "id"], "th")]
        for r in self.rows:
            if r.dead_letter is not None:
                what = (f"dead letter at {e(r.dead_letter.stage)}: "
                        f"<b>{e(r.dead_letter.error_type)}</b> {e(r.dead_letter.error_message)}")
            elif r.dropped_by is not None:
                what = f"dropped by {e(r.dropped_by)}"
            else:
                what = "load"
            changed = "<br>".join(e(str(c)) for c in r.changes)
            target = r.target.dataset if r.target else ""
            doc_id = r.target.id if r.target and r.target.id is not None else ""
            out.append(row([str(r.index), what, changed, e(target), e(doc_id)]))
        caption = f"<caption>preview: {len(self.rows)} rows"
        caption += f", loader {e(self.loader)}" if self.loader else ""
        return (f'<table style="font-size:12px;border-collapse:collapse">{caption}</caption>'
                + "".join(out) + "</table>")


def _transforms(stages: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """The stages before the first loader that are not sinks, and that loader (or None)."""
    kept: list[Any] = []
    for st in stages:
        if getattr(st, "kind", None) == "loader":
            return tuple(kept), st
        if not getattr(st, "sink", False):
            kept.append(st)
    return tuple(kept), None


def _saved(pipeline: Any) -> list[tuple[Any, dict[str, int]]]:
    fields = ("n_in", "n_out", "dropped", "failed", "committed", "retries", "bytes")
    return [(s, {f: getattr(s, f) for f in fields}) for s in pipeline.stats()]


def preview(pipeline: Any, n: int = 20) -> Preview:
    """What the first ``n`` source records would become; see the module doc.

    >>> from sesa_fp import pipe, stage, load_files
    >>> p = pipe([{"k": "a", "v": " 1 "}, {"k": None}],
    ...          stage(lambda r: {**r, "v": r["v"].strip()} if r["k"] else None, name="trim"),
    ...          load_files("never-written", dataset="d-{k}"))
    >>> print(preview(p))
    record 1 -> d-a: v: ' 1 ' -> '1'
    record 2: dropped by trim
    """
    from sesa_fp.stream import pipe

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"preview(n): n must be a positive int, got {n!r}")
    transforms, loader = _transforms(pipeline.stages)
    target = getattr(loader, "target", None)
    saved = _saved(pipeline)  # the last run's counters survive a preview
    rows: list[PreviewRow] = []
    source = iter(pipeline.source)
    try:
        for i, item in enumerate(itertools.islice(source, n), 1):
            if type(item) is Failure:
                rows.append(PreviewRow(i, None, dead_letter=item.failure()))
                continue
            record = item.unwrap() if type(item) is Success else item
            before = copy.deepcopy(record)  # a transform may change its input in place
            sub = pipe([record], *transforms)
            outs = list(sub)
            if not outs:
                by = [s.name for s in sub.stats() if s.dropped]
                rows.append(PreviewRow(i, before, dropped_by=by[0] if by else "?"))
            for out in outs:
                rows.append(_row(i, before, out, target, loader))
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()
        for stats, values in saved:
            stats.reset()
            stats.add(**values)
    return Preview(tuple(rows), None if loader is None else repr(loader))


def _row(i: int, before: Any, out: Any, target: Any, loader: Any) -> PreviewRow:
    if type(out) is Failure:
        return PreviewRow(i, before, dead_letter=out.failure())
    record = out.unwrap() if type(out) is Success else out
    diff = tuple(changes(before, record))
    if not callable(target):
        return PreviewRow(i, before, record, diff)
    try:
        where = target(record)
    except (RecordError, TypeError, ValueError) as exc:
        return PreviewRow(i, before, record, diff, dead_letter=DeadLetter.from_exception(
            record, exc, stage=getattr(loader, "name", repr(loader))))
    return PreviewRow(i, before, record, diff, where)
