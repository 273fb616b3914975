#!/usr/bin/env bash
# The unit tests (no services: -m "not integration") on every Python the project supports,
# each in its own venv (.venv-3.12, .venv-3.13, ...; created when missing, reused after).
#   scripts/test-pythons.sh                 3.11, 3.12 and 3.13 (those found)
#   scripts/test-pythons.sh 3.12 3.13       only these
#   PYTHONS_REQUIRED=1 scripts/test-pythons.sh   a version that is not found is a failure
# Extra pytest arguments: after "--", e.g. scripts/test-pythons.sh 3.13 -- -x tests/test_stream.py
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

versions=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do versions+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ "${#versions[@]}" -gt 0 ] || versions=(3.11 3.12 3.13)

find_python() {  # find_python 3.12: a python3.12 on PATH, under pyenv, or in the usual places
    local v="$1" c
    for c in "$(command -v "python$v" 2>/dev/null || true)" \
             "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v"*/bin/python"$v" \
             /usr/local/bin/python"$v" /usr/bin/python"$v"; do
        [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import venv' 2>/dev/null && { echo "$c"; return 0; }
    done
    return 1
}

failed=() missing=() passed=()
for v in "${versions[@]}"; do
    if ! py="$(find_python "$v")"; then
        echo "test-pythons: Python $v not found" >&2
        missing+=("$v")
        continue
    fi
    venv="$REPO/.venv-$v"
    if [ ! -x "$venv/bin/python" ]; then
        echo "test-pythons: creating $venv with $py" >&2
        "$py" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    # the extras scripts/test.sh installs: tests that need a client skip only without services
    "$venv/bin/python" -m pip install -q -e ".[dev,es,opensearch,notebook,azure,gcs,sql,zstd]" >&2
    echo "test-pythons: Python $v: unit tests" >&2
    # doctests of the package and the tests that need no service
    if (cd "$REPO" && "$venv/bin/python" -m pytest -q -m "not integration" \
            "$@"); then
        passed+=("$v")
    else
        failed+=("$v")
    fi
done
echo "test-pythons: passed: ${passed[*]:-none}; failed: ${failed[*]:-none}; not found: ${missing[*]:-none}" >&2
[ "${#failed[@]}" -eq 0 ] || exit 1
if [ "${#missing[@]}" -gt 0 ] && [ "${PYTHONS_REQUIRED:-0}" = 1 ]; then exit 1; fi
