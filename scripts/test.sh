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

scripts/bootstrap.sh dev,es,opensearch,notebook,azure,gcs,sql

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
.venv/bin/python -m pytest -q "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
    echo "test.sh: pytest collected no tests: failing" >&2
    exit 1
fi
exit "$code"
