"""The seed's Airflow example, for this command line: one task per night, failing on a run
error (exit 1), a configuration error (exit 2) or too many dead letters (exit 3)."""

from __future__ import annotations

import datetime as dt

from airflow import DAG  # type: ignore[import-not-found]
from airflow.operators.bash import BashOperator  # type: ignore[import-not-found]

with DAG(
    dag_id="rfi_pipeline",
    schedule="@daily",
    start_date=dt.datetime(2025, 9, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=5)},
) as dag:
    rfi_job = BashOperator(
        task_id="rfi_pipeline",
        bash_command=(
            "sesa run --config /opt/etl/jobs/rfi_pipeline.yaml "
            "--set ds={{ ds }} --set ts_nodash={{ ts_nodash }} --no-progress"
        ),
    )
