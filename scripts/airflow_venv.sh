#!/usr/bin/env bash
# Creates .venv-airflow (if missing or stale) for the Airflow tests: Airflow pins many
# packages of its own, so it gets an environment apart from .venv, with sesa_fp (editable,
# extras es,opensearch,dev) installed beside it. Prints the venv's python on stdout.
#   AIRFLOW_VERSION=3.3.2 scripts/airflow_venv.sh
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-python3}"
VERSION="${AIRFLOW_VERSION:-3.3.2}"
VENV=.venv-airflow
stamp="$VENV/.sesa-airflow-$VERSION"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
if [ ! -f "$stamp" ]; then
    start=$(date +%s)
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q "apache-airflow==$VERSION" -e ".[es,opensearch]" \
        "pytest>=8" "pytest-timeout>=2.3" >&2
    touch "$stamp"
    echo "airflow_venv.sh: installed Airflow $VERSION in $(( $(date +%s) - start )) s" >&2
else
    "$VENV/bin/python" -m pip install -q --no-deps -e . >&2  # this checkout's sesa_fp
fi
echo "$REPO/$VENV/bin/python"
