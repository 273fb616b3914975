"""Fan-out of a YAML job across schedulers' tasks: run one partition in this process, then
merge the partitions' reports in a final step (Airflow's mapped tasks, or any scheduler).

Every partition of one run shares its run id; each stages under its own sub-prefix
(`sesa_fp.partitions`). The final step sums the reports, checks conservation over the whole
run and commits the staging manifest listing every partition's parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sesa_fp.config import build_job, load_job
from sesa_fp.config.spec import DlqSpec
from sesa_fp.partitions import partition_name, partition_pipeline, source_partitions
from sesa_fp.report import RunReport, run
from sesa_fp.report_merge import check_conserved, merge_reports
from sesa_fp.secrets import mask_url, reveal_tree
from sesa_fp.storage.partitions import write_merged_manifest

__all__ = ["dead_letter_excess", "merge_job_reports", "run_job"]


def dead_letter_excess(dlq: DlqSpec | None, report: RunReport) -> str | None:
    """Why the dead letters exceed the job's ``dlq.max_records`` / ``dlq.max_ratio`` (what
    makes ``sesa run`` exit 3), or None.

    >>> from sesa_fp import pipe
    >>> dead_letter_excess(DlqSpec(uri="x", max_records=0), run(pipe([1]), progress=False))
    """
    if dlq is None:
        return None
    if dlq.max_records is not None and report.dead_letters > dlq.max_records:
        return f"{report.dead_letters} dead letters > dlq.max_records {dlq.max_records}"
    ratio = report.dead_letters / max(report.read or 0, 1)
    if dlq.max_ratio is not None and ratio > dlq.max_ratio:
        return f"dead-letter ratio {ratio:.4f} > dlq.max_ratio {dlq.max_ratio}"
    return None


def run_job(config: str | Path, sets: Mapping[str, str] | None = None, *,
            partition: int | None = None, run_id: str | None = None,
            progress: bool = False, stop: Any = None,
            fresh: bool = False) -> tuple[Any, RunReport]:
    """Build the job and run it (only ``partition`` of it, when given) in this process;
    returns the built job and the report. ``stop`` (a `threading.Event`) ends the run as
    SIGTERM does when it is set; ``fresh`` starts over instead of resuming."""
    from sesa_fp.interrupt import stoppable

    built = build_job(load_job(config, sets))
    pipeline = built.pipeline
    if partition is not None:
        pipeline = partition_pipeline(pipeline, partition)
    if stop is not None:
        pipeline = stoppable(pipeline, stop)
    return built, run(pipeline, job=built.spec.job_name, run_id=run_id, progress=progress,
                      fresh=fresh)


def merge_job_reports(config: str | Path, sets: Mapping[str, str] | None,
                      reports: Sequence[RunReport | Mapping[str, Any]], *,
                      run_id: str | None = None) -> tuple[Any, RunReport]:
    """The final step of a fan-out: one report for the run (conservation checked, a
    `ConservationError` if it fails) and, for a job that stages, the manifest over every
    partition's parts. Every partition must have reported."""
    from sesa_fp.errors import ConfigError

    built = build_job(load_job(config, sets))
    n = len(source_partitions(built.pipeline.source))
    if len(reports) != n:
        raise ConfigError(f"the job has {n} partitions but {len(reports)} reports came back")
    outputs = []
    storage = built.spec.storage
    if storage is not None:
        so = reveal_tree(storage.options.storage_options) or None
        m = write_merged_manifest(storage.uri, [partition_name(i) for i in range(n)],
                                  run_id=run_id, storage_options=so)
        outputs.append({"kind": "staging", "uri": mask_url(storage.uri), "records": m.records,
                        "bytes": m.bytes, "parts": len(m.parts), "partitions": n})
    merged = merge_reports(reports, run_id=run_id, job=built.spec.job_name, outputs=outputs)
    return built, check_conserved(merged)
