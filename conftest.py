"""Shared by the tests and the doctests: dead letters that reach the end of a stream without a
`partition` go to a default local queue (``$SESA_DLQ``); keep it out of the working tree."""

import os
import tempfile

os.environ.setdefault("SESA_DLQ", tempfile.mkdtemp(prefix="sesa-dlq-tests-"))

# sesa_fp/airflow.py needs Airflow, which has an environment of its own (.venv-airflow,
# scripts/airflow_venv.sh): its doctests are collected only where Airflow is installed
import importlib.util

collect_ignore = [] if importlib.util.find_spec("airflow") else ["sesa_fp/airflow.py"]
