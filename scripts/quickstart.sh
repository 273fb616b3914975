#!/usr/bin/env bash
# Installs sesa_fp into .venv and runs the quickstart job on the embedded default
# (local files, no server). Extra arguments go to the job, e.g. --set ds=2025-09-07.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
scripts/bootstrap.sh
exec .venv/bin/python -m sesa_fp recipes/quickstart.yaml --set ds=2025-09-06 "$@"
