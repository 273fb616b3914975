#!/usr/bin/env bash
# The whole test run on a fresh machine: install, lint, start the services on 127.0.0.1
# (OpenSearch, S3, PostgreSQL: services.sh installs PostgreSQL from Debian's packages if missing),
# run pytest, stop the services. Extra arguments go to pytest.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

# Java/Maven, Node, Go, PostgreSQL: installed now (root + apt) or named at once, not ten
# minutes in
scripts/preflight.sh all

scripts/bootstrap.sh dev,es,opensearch,notebook,azure,gcs,sql,dask

.venv/bin/ruff check sesa_fp tests benchmarks recipes notebooks
.venv/bin/mypy

cleanup() { scripts/services.sh stop all >&2 || true; }
trap cleanup EXIT
# (a failed start must stop the run here: eval of an empty string would succeed)
urls="$(scripts/services.sh start all)" \
    || { echo "test.sh: services did not start (the reason is above)" >&2; exit 1; }
eval "$urls"
export SEARCH_URL S3_URL AZURE_URL GCS_URL POSTGRES_URL
# gcsfs >= 2026.3 probes each bucket's layout over gRPC, which fake-gcs-server does not serve
# (about 60 s per bucket before it falls back): off for the tests, read when gcsfs is imported
export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="${GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT:-false}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

set +e
# Airflow pins packages of its own: its tests run in .venv-airflow (scripts/airflow_venv.sh
# builds it once), before the main suite so that suite's summary stays the last line
airflow_code=0
if [ "$#" -eq 0 ]; then
    airflow_py="$(scripts/airflow_venv.sh)" && \
        "$airflow_py" -m pytest -q -p no:cacheprovider tests/test_airflow.py sesa_fp/airflow.py
    airflow_code=$?
fi
.venv/bin/python -m pytest -q "$@"
code=$?
set -e
if [ "$airflow_code" -ne 0 ] && [ "$code" -eq 0 ]; then
    echo "test.sh: the Airflow tests failed (above)" >&2
    code=$airflow_code
fi
if [ "$code" -eq 5 ]; then
    echo "test.sh: pytest collected no tests: failing" >&2
    exit 1
fi
exit "$code"
