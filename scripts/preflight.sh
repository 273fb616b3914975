#!/usr/bin/env bash
# Checks, before anything slow starts, that the tools the services need are present:
#   scripts/preflight.sh [search|s3|azure|gcs|postgres|all]...   (default: all)
# What is missing is installed with apt-get when running as root on a Debian-like system
# (SESA_PREFLIGHT_INSTALL=0 turns that off); otherwise the script stops at once with one line
# naming what is missing and the command that installs it. Exit 0 when everything is there.
#
#   search    Java >= 17 and Maven (Maven only until scripts/opensearch is built)
#   s3        nothing beyond the venv (moto)
#   azure     Node.js with npm (until Azurite is installed into .services/tools/)
#   gcs       Go >= 1.24 (until fake-gcs-server is built into .services/tools/)
#   postgres  PostgreSQL's server binaries (initdb, pg_ctl)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$REPO/.services/tools"
[ "$#" -gt 0 ] || set -- all

want() {  # want SVC: true if SVC (or all) was asked for
    local a
    for a in "${ARGS[@]}"; do
        [ "$a" = all ] || [ "$a" = "$1" ] && return 0
    done
    return 1
}
ARGS=("$@")
for a in "${ARGS[@]}"; do
    case "$a" in search|s3|azure|gcs|postgres|all) ;;
        *) echo "preflight: unknown service '$a' (search|s3|azure|gcs|postgres|all)" >&2; exit 2 ;;
    esac
done

java_major() {  # the major version of the java on PATH (or JAVA_HOME), 0 if none
    local java=java v
    [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ] && java="$JAVA_HOME/bin/java"
    command -v "$java" >/dev/null 2>&1 || { echo 0; return; }
    v="$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\).*/\1/p' | head -n 1)"
    echo "${v:-0}"
}

go_ok() {  # go on PATH and at least 1.24
    command -v go >/dev/null 2>&1 || return 1
    local v
    v="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
    [ "$(printf '%s\n' 1.24 "${v:-0}" | sort -V | head -n 1)" = 1.24 ]
}

has_postgres() {
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

missing=()   # human names
packages=()  # apt packages that provide them
manual=()    # what apt cannot provide here

if want search; then
    if [ "$(java_major)" -lt 17 ]; then
        # Debian 12 has openjdk-17; later releases only newer ones, as their default JDK
        jdk=openjdk-17-jdk-headless
        apt-cache show "$jdk" >/dev/null 2>&1 || jdk=default-jdk-headless
        missing+=("Java 17+"); packages+=("$jdk")
    fi
    if [ ! -f "$REPO/scripts/opensearch/target/.build-ok" ] && ! command -v mvn >/dev/null 2>&1
    then
        missing+=("Maven"); packages+=(maven)
    fi
fi
if want azure && [ ! -x "$TOOLS/azurite/node_modules/.bin/azurite-blob" ] \
        && ! command -v npm >/dev/null 2>&1; then
    missing+=("Node.js with npm"); packages+=(nodejs npm)
fi
if want gcs && [ ! -x "$TOOLS/bin/fake-gcs-server" ] && ! go_ok; then
    # Debian 12's golang-go is 1.19: too old for fake-gcs-server
    missing+=("Go >= 1.24"); manual+=("Go >= 1.24 (the official release tarball; put go on PATH)")
fi
if want postgres && ! has_postgres; then
    missing+=("PostgreSQL"); packages+=(postgresql)
fi
if ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    missing+=("Python >= 3.11 with venv"); packages+=(python3 python3-venv)
fi

[ "${#missing[@]}" -eq 0 ] && exit 0

can_install=0
if [ "${#packages[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
        && [ "${SESA_PREFLIGHT_INSTALL:-1}" != 0 ]; then
    can_install=1
fi
if [ "$can_install" = 1 ]; then
    echo "preflight: installing ${packages[*]} (apt-get) ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${packages[@]}" >&2; then
        apt-get update -q >&2 || true
        apt-get install -y -q --no-install-recommends "${packages[@]}" >&2 \
            || { echo "preflight: apt-get install ${packages[*]} failed" >&2; exit 1; }
    fi
    packages=()
fi
if [ "${#packages[@]}" -gt 0 ] || [ "${#manual[@]}" -gt 0 ]; then
    how=""
    [ "${#packages[@]}" -gt 0 ] && how="sudo apt-get install -y ${packages[*]}"
    [ "${#manual[@]}" -gt 0 ] && how="${how:+$how; }install ${manual[*]}"
    list="$(printf '%s, ' "${missing[@]}")"
    echo "preflight: missing ${list%, } -- $how" >&2
    exit 1
fi
