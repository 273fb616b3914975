"""Airflow: `SesaOperator` runs a YAML job inside the task (no shell), and the fan-out helpers
run one mapped task per partition and a final task that merges their reports.

Imported only by DAG files (``pip install 'sesa_fp[airflow]'``); ``import sesa_fp`` never
imports Airflow. A task fails as ``sesa run`` exits non-zero: a configuration error or dead
letters over ``dlq.max_records`` / ``dlq.max_ratio`` fail it for good (no retry: a rerun
would fail the same way), a run failure fails it for Airflow's retries. The report goes to
XCom (the task's return value).

Fan-out::

    parts = sesa_partitions(config="job.yaml", sets={"ds": "{{ ds }}"})
    runs = SesaOperator.partial(task_id="load", config="job.yaml",
                                sets={"ds": "{{ ds }}"}).expand(partition=parts)
    sesa_merge(config="job.yaml", sets={"ds": "{{ ds }}"}, reports=runs.output)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from sesa_fp.errors import ConfigError
from sesa_fp.fanout import dead_letter_excess, merge_job_reports, run_job
from sesa_fp.interrupt import Interrupted
from sesa_fp.partitions import job_partitions

__all__ = ["SesaOperator", "sesa_merge", "sesa_partitions", "sesa_run_id"]


def sesa_run_id(context: Mapping[str, Any]) -> str:
    """One run id for every task of a DAG run (mapped tasks share it), fit for a path.

    >>> sesa_run_id({"run_id": "manual__2025-09-06T00:00:00+00:00"})
    'manual__2025-09-06T00_00_00_00_00'
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(context["run_id"]))


class SesaOperator(BaseOperator):
    """Run the YAML job ``config`` with ``sets`` (``--set`` values, templated), in this task's
    process; with ``partition``, only that partition (one mapped task each). Returns the
    report as a dict (XCom). A retried task resumes what the failed try committed;
    ``fresh=True`` starts over (``sesa run --fresh``). ``on_kill`` stops the run as SIGTERM
    stops ``sesa run``: committed output kept, uncommitted staging removed."""

    template_fields: Sequence[str] = ("config", "sets")
    ui_color = "#d6eaf8"

    def __init__(self, *, config: str, sets: Mapping[str, str] | None = None,
                 partition: int | Mapping[str, Any] | None = None,
                 run_id: str | None = None, fresh: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.fresh = fresh
        self.sets = dict(sets or {})
        self.partition = partition
        self.run_id = run_id
        self._stop = threading.Event()
        self._running = False

    def execute(self, context: Any) -> dict[str, Any]:
        """Run the job; fail the task the way ``sesa run`` would exit."""
        part = self.partition
        if isinstance(part, Mapping):  # an entry of sesa_partitions' list
            part = part["partition"]
        run_id = self.run_id or sesa_run_id(context)
        self._running = True
        try:
            built, report = run_job(self.config, {k: str(v) for k, v in self.sets.items()},
                                    partition=part, run_id=run_id, stop=self._stop,
                                    fresh=self.fresh)
        except ConfigError as exc:
            self.log.error("sesa: configuration error: %s", exc)
            raise AirflowFailException(f"sesa: configuration error: {exc}") from None
        except Interrupted as exc:
            self.log.warning("sesa: run %s %s; committed output kept", run_id, exc)
            raise AirflowException(f"sesa: run {exc}") from None
        except Exception as exc:
            partial = getattr(exc, "report", None)
            if partial is not None:
                self.log.error("sesa: partial report: %s", partial.to_json())
            raise AirflowException(f"sesa: run failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._running = False
        self.log.info("sesa: %s", report)
        excess = dead_letter_excess(built.spec.dlq, report)
        if excess is not None:
            self.log.error("sesa: %s; report: %s", excess, report.to_json())
            raise AirflowFailException(f"sesa: {excess}")
        return report.to_dict()

    def on_kill(self) -> None:
        """Stop the run: at once when called in the thread running it (Airflow calls this
        from its SIGTERM handler), else before its next record."""
        self._stop.set()
        if self._running and threading.current_thread() is threading.main_thread():
            import signal

            raise Interrupted(signal.SIGTERM)


@task
def sesa_partitions(config: str, sets: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The job's partitions (a task: its list feeds ``expand(partition=...)``)."""
    try:
        return job_partitions(config, sets)
    except ConfigError as exc:
        raise AirflowFailException(f"sesa: configuration error: {exc}") from None


@task
def sesa_merge(config: str, sets: Mapping[str, str] | None = None,
               reports: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The final task of a fan-out: merge the mapped tasks' reports, check conservation over
    the whole run, commit the staging manifest over every partition's parts and apply the
    dead-letter thresholds to the total."""
    from airflow.sdk import get_current_context

    run_id = sesa_run_id(get_current_context())
    try:
        built, merged = merge_job_reports(config, sets, list(reports), run_id=run_id)
    except ConfigError as exc:
        raise AirflowFailException(f"sesa: {exc}") from None
    except Exception as exc:
        raise AirflowFailException(f"sesa: merging the partitions' reports failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
    excess = dead_letter_excess(built.spec.dlq, merged)
    if excess is not None:
        raise AirflowFailException(f"sesa: {excess}")
    return merged.to_dict()
