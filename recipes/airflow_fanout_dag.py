"""The seed's nightly job fanned out on Airflow: `sesa partitions` lists the four slices of
recipes/rfi_fanout.yaml (``slices: 4``), one mapped `SesaOperator` task loads each (in the
task's process, report to XCom), and a final task merges the four reports, checks
conservation over the whole run and commits the staging manifest over every slice's parts.
A configuration error or too many dead letters fails a task for good; a run failure is
retried. Requires ``pip install 'sesa_fp[airflow,es]'``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from airflow.sdk import DAG  # type: ignore[import-not-found]

from sesa_fp.airflow import SesaOperator, sesa_merge, sesa_partitions

JOB = os.environ.get("SESA_FANOUT_JOB", str(Path(__file__).with_name("rfi_fanout.yaml")))
SETS = {"ds": "{{ ds }}", "ts_nodash": "{{ ts_nodash }}"}

with DAG(
    dag_id="rfi_pipeline_fanout",
    schedule="@daily",
    start_date=dt.datetime(2025, 9, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=5)},
) as dag:
    partitions = sesa_partitions(config=JOB, sets=SETS)
    loads = SesaOperator.partial(task_id="load_partition", config=JOB, sets=SETS).expand(
        partition=partitions)
    sesa_merge(config=JOB, sets=SETS, reports=loads.output)
