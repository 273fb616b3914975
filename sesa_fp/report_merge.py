"""One `RunReport` from the reports of a run's partitions (Dask tasks, Airflow mapped tasks),
with conservation checked over the whole run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from sesa_fp.errors import ConservationError
from sesa_fp.report import RunReport, kinds_as_rows

__all__ = ["check_conserved", "merge_reports"]

_STAGE_COUNTERS = ("in", "out", "dropped", "failed", "committed", "retries", "bytes")


def _as_report(r: RunReport | Mapping[str, Any]) -> RunReport:
    if isinstance(r, RunReport):
        return r
    fields = {a.name for a in attrs.fields(RunReport)}
    data = {k: v for k, v in r.items() if k in fields}
    data["stages"] = tuple(data.get("stages") or ())
    data["outputs"] = tuple(data.get("outputs") or ())
    return RunReport(**data)


def _merge_stages(reports: Sequence[RunReport]) -> tuple[dict[str, Any], ...]:
    """Stages summed by name, in the order first seen (a source's partitions keep theirs)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for r in reports:
        for s in r.stages:
            key = (s["name"], s.get("kind", ""))
            if key not in merged:
                merged[key] = dict(s)
            else:
                for c in _STAGE_COUNTERS:
                    merged[key][c] = merged[key].get(c, 0) + s.get(c, 0)
    return tuple(merged.values())


def merge_reports(
    reports: Iterable[RunReport | Mapping[str, Any]],
    *,
    run_id: str | None = None,
    job: str | None = None,
    elapsed_s: float | None = None,
    outputs: Sequence[dict[str, Any]] = (),
) -> RunReport:
    """The partitions' reports (objects or their ``to_dict()``) summed into one: read,
    loaded, dropped and dead letters add up, so the merged report is conserved exactly when
    the sum over all partitions balances. ``outputs`` are added to the partitions' own.

    >>> from sesa_fp import pipe, run
    >>> a = run(pipe([{"n": 1}]), progress=False); b = run(pipe([{"n": 2}]), progress=False)
    >>> m = merge_reports([a, b.to_dict()], run_id="r")
    >>> (m.read, m.emitted, m.conserved, m.run_id)
    (2, 2, True, 'r')
    """
    rs = [_as_report(r) for r in reports]
    if not rs:
        raise ValueError("merge_reports: no reports to merge")
    read = None if any(r.read is None for r in rs) else sum(r.read or 0 for r in rs)
    unaccounted = (None if any(r.unaccounted is None for r in rs)
                   else sum(r.unaccounted or 0 for r in rs))
    failed = [r for r in rs if r.status != "ok"]
    conserved = None if read is None or unaccounted is None else unaccounted == 0
    return RunReport(
        run_id=run_id or rs[0].run_id,
        job=job if job is not None else rs[0].job,
        status=failed[0].status if failed else "ok",
        started_at=min(r.started_at for r in rs),
        elapsed_s=max(r.elapsed_s for r in rs) if elapsed_s is None else elapsed_s,
        read=read,
        loaded=sum(r.loaded for r in rs),
        emitted=sum(r.emitted for r in rs),
        dropped=sum(r.dropped for r in rs),
        dead_letters=sum(r.dead_letters for r in rs),
        retries=sum(r.retries for r in rs),
        bytes_staged=sum(r.bytes_staged for r in rs),
        has_loader=any(r.has_loader for r in rs),
        unaccounted=unaccounted,
        conserved=conserved,
        error="; ".join(f"{r.run_id}: {r.error}" for r in failed) or None,
        stages=_merge_stages(rs),
        outputs=tuple(o for r in rs for o in r.outputs) + tuple(outputs),
        resumed_parts=sum(r.resumed_parts for r in rs),
        resumed_records=sum(r.resumed_records for r in rs),
        skipped_parts=sum(r.skipped_parts for r in rs),
        skipped_records=sum(r.skipped_records for r in rs),
        dead_letter_kinds=_merge_kinds(rs),
    )


def _merge_kinds(reports: Sequence[RunReport]) -> tuple[dict[str, Any], ...]:
    """Dead letters by stage and error type, summed, the most frequent first."""
    kinds: Counter[tuple[str, str]] = Counter()
    for r in reports:
        for k in r.dead_letter_kinds:
            kinds[(k["stage"], k["error_type"])] += k["count"]
    return kinds_as_rows(kinds)


def check_conserved(report: RunReport) -> RunReport:
    """``report`` if its sum balances; a `ConservationError` (carrying it) if it does not.

    >>> from sesa_fp import pipe, run
    >>> check_conserved(run(pipe([1]), progress=False)).conserved
    True
    """
    if report.conserved is False:
        error = ConservationError(f"run {report.run_id}: {report.balance()}")
        error.report = attrs.evolve(report, status="failed", error=str(error))
        raise error
    return report
