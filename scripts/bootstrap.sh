#!/usr/bin/env bash
# Creates .venv (if missing) and installs sesa_fp with the extras named as arguments.
#   scripts/bootstrap.sh            -> pip install -e .
#   scripts/bootstrap.sh dev,es     -> pip install -e '.[dev,es]'
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >&2
target="."
[ -n "${1:-}" ] && target=".[$1]"
.venv/bin/python -m pip install -q -e "$target" >&2
