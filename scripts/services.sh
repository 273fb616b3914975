#!/usr/bin/env bash
# Local services for integration tests, all bound to 127.0.0.1 only: a real OpenSearch
# node ("search"), moto's S3 server ("s3"), Azurite's Blob service ("azure"),
# fake-gcs-server ("gcs") and a PostgreSQL server ("postgres").
#
#   scripts/services.sh start  [search|s3|azure|gcs|postgres|all]   (default: all)
#   scripts/services.sh stop   [search|s3|azure|gcs|postgres|all]
#   scripts/services.sh status [search|s3|azure|gcs|postgres|all]
#
# start: starts each requested service (or finds it already running), waits
# until it is healthy and prints one line per service on stdout:
#   SEARCH_URL=http://127.0.0.1:PORT
#   S3_URL=http://127.0.0.1:PORT
#   AZURE_URL=http://127.0.0.1:PORT/devstoreaccount1   (Azurite's blob endpoint and
#                                                       its well-known dev account)
#   GCS_URL=http://127.0.0.1:PORT
#   POSTGRES_URL=postgresql://sesa:sesa@127.0.0.1:PORT/sesa
# Nothing else goes to stdout (progress and errors go to stderr), so callers can do:
#   eval "$(scripts/services.sh start)"
#   export SEARCH_URL S3_URL AZURE_URL GCS_URL POSTGRES_URL
#
# State (pids, ports, logs, data) lives in .services/ at the repo root.
# stop ends only the process groups this script started (recorded pid + pgid,
# checked against the recorded command), then removes their data dirs. Logs
# are kept in .services/<svc>/*.log until the next start.
#
# Environment knobs:
#   SEARCH_PORT / S3_PORT / AZURE_PORT / GCS_PORT
#                                  fixed port (default: a free port)
#   SEARCH_HEAP                    JVM heap, default 512m (-Xms = -Xmx)
#   SEARCH_JAVA_OPTS               extra JVM options
#   SEARCH_EXTRA_SETTINGS          extra node settings, "k=v k=v", e.g.
#                                  "thread_pool.write.queue_size=2 thread_pool.write.size=1"
#   SEARCH_START_TIMEOUT           seconds to wait for health (default 180)
#   S3_START_TIMEOUT               seconds to wait for health (default 60)
#   POSTGRES_PORT                  fixed port (default: a free port)
#
# PostgreSQL comes from Debian's packages: when no /usr/lib/postgresql/*/bin/initdb
# exists, start installs it (apt-get, non-interactive; needs root). The server runs
# from its own data dir (.services/postgres/data; under /tmp when the repo is not
# reachable by the server's user), password auth on 127.0.0.1 only (user and
# password "sesa", database "sesa"), unix socket in the state dir. As root the
# server runs as the "postgres" system user (created when missing), as PostgreSQL
# refuses to run as root.
#   JAVA_HOME                      Java 17+ used for Maven and the node
#   AZURITE_VERSION                Azurite version installed when missing (default 3.35.0)
#   FAKE_GCS_VERSION               fake-gcs-server version installed when missing (v1.56.1)
#   AZURE_START_TIMEOUT / GCS_START_TIMEOUT   seconds to wait for health (default 60)
#
# Azurite (npm) and fake-gcs-server (Go) are installed on first start when missing, into
# .services/tools/ (npm install --prefix, go install with GOBIN); that needs npm and go
# on PATH. Both keep their data in memory: stop loses it.
#
# The OpenSearch node (2.19.x, runs on Java 17) is assembled from Maven
# artifacts by scripts/opensearch/pom.xml; the first start builds it
# (mvn package -> scripts/opensearch/target/), later starts reuse the build.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
STATE="$REPO/.services"
OS_DIR="$SCRIPT_DIR/opensearch"
OS_TARGET="$OS_DIR/target"
OS_MAIN="sesa.opensearch.Launcher"
VENV_PY="$REPO/.venv/bin/python"

log() { echo "services: $*" >&2; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    JAVA="$JAVA_HOME/bin/java"
else
    JAVA="java"
fi

now_ms() { date +%s%3N; }

free_port() {
    local py=python3
    command -v python3 >/dev/null 2>&1 || py="$VENV_PY"
    "$py" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# --- process bookkeeping -------------------------------------------------

# alive SVC MARKER: true if the recorded process runs and still is ours
alive() {
    local dir="$STATE/$1" marker="$2" pid
    [ -f "$dir/pid" ] || return 1
    pid="$(cat "$dir/pid")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

# stop_group SVC MARKER: TERM the recorded process group, wait, then KILL
stop_group() {
    local svc="$1" marker="$2" dir="$STATE/$1" pid pgid i
    if alive "$svc" "$marker"; then
        pid="$(cat "$dir/pid")"
        pgid="$(cat "$dir/pgid" 2>/dev/null || echo "$pid")"
        log "stopping $svc (pid $pid, process group $pgid)"
        kill -TERM -- "-$pgid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$svc did not exit after 30 s, sending KILL"
            kill -KILL -- "-$pgid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    elif [ -f "$dir/pid" ]; then
        log "$svc: recorded pid $(cat "$dir/pid") is not running (stale state)"
    fi
    rm -f "$dir/pid" "$dir/pgid" "$dir/port" "$dir/url" "$dir/conf"
}

# launch SVC LOGFILE CMD...: start CMD in its own session/process group
launch() {
    local svc="$1" logf="$2" pid pgid
    shift 2
    mkdir -p "$STATE/$svc"
    setsid "$@" </dev/null >"$logf" 2>&1 9>&- &
    pid=$!
    echo "$pid" > "$STATE/$svc/pid"
    pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)"
    echo "${pgid:-$pid}" > "$STATE/$svc/pgid"
}

fail_start() {
    local svc="$1" marker="$2" logf="$3" msg="$4"
    echo "services: ERROR: $svc: $msg" >&2
    if [ -f "$logf" ]; then
        echo "services: ---- last 40 lines of $logf ----" >&2
        tail -n 40 "$logf" >&2 || true
        echo "services: ----" >&2
    fi
    stop_group "$svc" "$marker" 2>/dev/null
    rm -rf "$STATE/$svc/home" "$STATE/$svc/data"
    exit 1
}

# --- search (OpenSearch) -------------------------------------------------

build_search() {
    local stamp="$OS_TARGET/.build-ok" need=0 f t0
    [ -f "$stamp" ] || need=1
    if [ "$need" = 0 ]; then
        for f in "$OS_DIR/pom.xml" $(find "$OS_DIR/src" -type f); do
            [ "$f" -nt "$stamp" ] && need=1 && break
        done
    fi
    [ "$need" = 1 ] || return 0
    command -v mvn >/dev/null 2>&1 || die "mvn not found (needed once to build scripts/opensearch)"
    log "building OpenSearch launcher (mvn package, first run downloads ~50 MB of jars) ..."
    t0=$(now_ms)
    rm -rf "$OS_TARGET"
    # (sed strips the colour codes that mvn -q prints even in batch mode)
    if ! mvn -q -B -f "$OS_DIR/pom.xml" package 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2; then
        die "maven build of $OS_DIR failed"
    fi
    touch "$stamp"
    log "built in $(( ($(now_ms) - t0) / 1000 )) s"
}

start_search() {
    local svc=search marker="$OS_MAIN" dir="$STATE/search" port tport url logf deadline t0 heap conf
    heap="${SEARCH_HEAP:-512m}"
    # what the node was started with; a start asking for something else restarts it
    conf="heap=$heap port=${SEARCH_PORT:-any} opts=${SEARCH_JAVA_OPTS:-} extra=${SEARCH_EXTRA_SETTINGS:-}"
    if alive "$svc" "$marker" && [ -f "$dir/url" ]; then
        url="$(cat "$dir/url")"
        if [ "$(cat "$dir/conf" 2>/dev/null)" != "$conf" ]; then
            log "search is running with other settings ($(cat "$dir/conf" 2>/dev/null)); restarting it"
        elif curl -fsS -m 5 "$url/" >/dev/null 2>&1; then
            log "search already running (pid $(cat "$dir/pid"))"
            echo "SEARCH_URL=$url"
            return 0
        else
            log "search process exists but does not answer; restarting it"
        fi
    fi
    stop_group "$svc" "$marker"
    rm -rf "$dir/home"
    build_search

    port="${SEARCH_PORT:-$(free_port)}"
    tport="$(free_port)"
    url="http://127.0.0.1:$port"
    logf="$dir/search.log"
    mkdir -p "$dir/home/tmp"
    log "starting OpenSearch on $url (heap $heap${SEARCH_EXTRA_SETTINGS:+, extra settings: $SEARCH_EXTRA_SETTINGS}); log: $logf"
    t0=$(now_ms)
    # shellcheck disable=SC2086
    launch "$svc" "$logf" "$JAVA" \
        "-Xms$heap" "-Xmx$heap" \
        -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djava.net.preferIPv4Stack=true \
        -Djava.io.tmpdir="$dir/home/tmp" \
        -Dlog4j2.formatMsgNoLookups=true -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true \
        -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0 \
        ${SEARCH_JAVA_OPTS:-} \
        -cp "$OS_TARGET/classes:$OS_TARGET/lib/*" "$OS_MAIN" \
        --home "$dir/home" --http-port "$port" --transport-port "$tport"
    echo "$port" > "$dir/port"
    echo "$conf" > "$dir/conf"

    deadline=$(( $(date +%s) + ${SEARCH_START_TIMEOUT:-180} ))
    while :; do
        alive "$svc" "$marker" || fail_start "$svc" "$marker" "$logf" "the node process exited during start-up"
        if curl -fsS -m 5 "$url/" 2>/dev/null | grep -q '"distribution" *: *"opensearch"' \
           && curl -fsS -m 10 "$url/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null 2>&1; then
            break
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail_start "$svc" "$marker" "$logf" \
            "not healthy after ${SEARCH_START_TIMEOUT:-180} s on $url"
        sleep 0.5
    done
    echo "$url" > "$dir/url"
    log "search healthy after $(( ($(now_ms) - t0) )) ms (pid $(cat "$dir/pid"))"
    echo "SEARCH_URL=$url"
}

stop_search() {
    stop_group search "$OS_MAIN"
    rm -rf "$STATE/search/home"
}

# --- s3 (moto) -----------------------------------------------------------

start_s3() {
    local svc=s3 marker="moto.server" dir="$STATE/s3" port url logf deadline t0
    if alive "$svc" "$marker" && [ -f "$dir/url" ]; then
        url="$(cat "$dir/url")"
        if [ -n "${S3_PORT:-}" ] && [ "$url" != "http://127.0.0.1:$S3_PORT" ]; then
            log "s3 is running on $url, not on port $S3_PORT; restarting it"
        elif curl -fsS -m 5 "$url/" >/dev/null 2>&1; then
            log "s3 already running (pid $(cat "$dir/pid"))"
            echo "S3_URL=$url"
            return 0
        else
            log "s3 process exists but does not answer; restarting it"
        fi
    fi
    stop_group "$svc" "$marker"
    rm -rf "$dir/data"
    [ -x "$VENV_PY" ] || die "$VENV_PY not found (create the project venv first)"
    "$VENV_PY" -c 'import moto.server, flask' 2>/dev/null \
        || die "moto server not installed in .venv (pip install \"moto[server]\")"

    port="${S3_PORT:-$(free_port)}"
    url="http://127.0.0.1:$port"
    logf="$dir/s3.log"
    mkdir -p "$dir/data"
    log "starting moto S3 on $url; log: $logf"
    t0=$(now_ms)
    launch "$svc" "$logf" env -C "$dir/data" AWS_DEFAULT_REGION=us-east-1 \
        "$VENV_PY" -m moto.server -H 127.0.0.1 -p "$port"
    echo "$port" > "$dir/port"

    deadline=$(( $(date +%s) + ${S3_START_TIMEOUT:-60} ))
    while :; do
        alive "$svc" "$marker" || fail_start "$svc" "$marker" "$logf" "moto server exited during start-up"
        curl -fsS -m 5 "$url/" >/dev/null 2>&1 && break
        [ "$(date +%s)" -lt "$deadline" ] || fail_start "$svc" "$marker" "$logf" \
            "not healthy after ${S3_START_TIMEOUT:-60} s on $url"
        sleep 0.2
    done
    echo "$url" > "$dir/url"
    log "s3 healthy after $(( ($(now_ms) - t0) )) ms (pid $(cat "$dir/pid"))"
    echo "S3_URL=$url"
}

stop_s3() {
    stop_group s3 "moto.server"
    rm -rf "$STATE/s3/data"
}

# --- azure (Azurite, Blob service only) ----------------------------------

TOOLS="$STATE/tools"
AZURITE_VERSION="${AZURITE_VERSION:-3.35.0}"
AZURITE_BIN="$TOOLS/azurite/node_modules/.bin/azurite-blob"
FAKE_GCS_VERSION="${FAKE_GCS_VERSION:-v1.56.1}"
FAKE_GCS_BIN="$TOOLS/bin/fake-gcs-server"

# answers: true if an HTTP server answers on URL at all (any status: Azurite says 400/403
# to an unsigned request, which still proves it is up)
answers() {
    local code
    code="$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" 2>/dev/null || true)"
    [ -n "$code" ] && [ "$code" != "000" ]
}

install_azurite() {
    [ -x "$AZURITE_BIN" ] && return 0
    command -v npm >/dev/null 2>&1 \
        || die "npm not found: Azurite needs Node.js and npm (apt-get install -y nodejs npm)"
    log "installing azurite@$AZURITE_VERSION into $TOOLS/azurite (npm install --prefix) ..."
    mkdir -p "$TOOLS/azurite"
    npm install --prefix "$TOOLS/azurite" --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_VERSION" >&2 \
        || die "npm install azurite@$AZURITE_VERSION failed"
    [ -x "$AZURITE_BIN" ] || die "azurite installed but $AZURITE_BIN is missing"
}

start_azure() {
    local svc=azure marker="azurite-blob" dir="$STATE/azure" port url logf deadline t0
    if alive "$svc" "$marker" && [ -f "$dir/url" ]; then
        url="$(cat "$dir/url")"
        if [ -n "${AZURE_PORT:-}" ] && [ "$(cat "$dir/port" 2>/dev/null)" != "$AZURE_PORT" ]; then
            log "azure is running on $url, not on port $AZURE_PORT; restarting it"
        elif answers "$url"; then
            log "azure already running (pid $(cat "$dir/pid"))"
            echo "AZURE_URL=$url"
            return 0
        else
            log "azure process exists but does not answer; restarting it"
        fi
    fi
    stop_group "$svc" "$marker"
    rm -rf "$dir/data"
    install_azurite

    port="${AZURE_PORT:-$(free_port)}"
    url="http://127.0.0.1:$port/devstoreaccount1"
    logf="$dir/azure.log"
    mkdir -p "$dir/data"
    log "starting Azurite blob on $url; log: $logf"
    t0=$(now_ms)
    launch "$svc" "$logf" env -C "$dir/data" "$AZURITE_BIN" --blobHost 127.0.0.1 \
        --blobPort "$port" --inMemoryPersistence --skipApiVersionCheck --loose \
        --disableTelemetry --disableProductStyleUrl --silent
    echo "$port" > "$dir/port"

    deadline=$(( $(date +%s) + ${AZURE_START_TIMEOUT:-60} ))
    while :; do
        alive "$svc" "$marker" || fail_start "$svc" "$marker" "$logf" "azurite exited during start-up"
        answers "$url" && break
        [ "$(date +%s)" -lt "$deadline" ] || fail_start "$svc" "$marker" "$logf" \
            "not answering after ${AZURE_START_TIMEOUT:-60} s on $url"
        sleep 0.2
    done
    echo "$url" > "$dir/url"
    log "azure healthy after $(( ($(now_ms) - t0) )) ms (pid $(cat "$dir/pid"))"
    echo "AZURE_URL=$url"
}

stop_azure() {
    stop_group azure "azurite-blob"
    rm -rf "$STATE/azure/data"
}

# --- gcs (fake-gcs-server) -----------------------------------------------

install_fake_gcs() {
    [ -x "$FAKE_GCS_BIN" ] && return 0
    command -v go >/dev/null 2>&1 \
        || die "go not found: fake-gcs-server is built from source with Go >= 1.24 (put go on PATH, then rerun)"
    log "building fake-gcs-server@$FAKE_GCS_VERSION into $TOOLS/bin (go install, about a minute) ..."
    mkdir -p "$TOOLS/bin"
    GOBIN="$TOOLS/bin" go install "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION" >&2 \
        || die "go install github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION failed"
}

start_gcs() {
    local svc=gcs marker="fake-gcs-server" dir="$STATE/gcs" port url logf deadline t0
    if alive "$svc" "$marker" && [ -f "$dir/url" ]; then
        url="$(cat "$dir/url")"
        if [ -n "${GCS_PORT:-}" ] && [ "$url" != "http://127.0.0.1:$GCS_PORT" ]; then
            log "gcs is running on $url, not on port $GCS_PORT; restarting it"
        elif curl -fsS -m 5 "$url/storage/v1/b" >/dev/null 2>&1; then
            log "gcs already running (pid $(cat "$dir/pid"))"
            echo "GCS_URL=$url"
            return 0
        else
            log "gcs process exists but does not answer; restarting it"
        fi
    fi
    stop_group "$svc" "$marker"
    rm -rf "$dir/data"
    install_fake_gcs

    port="${GCS_PORT:-$(free_port)}"
    url="http://127.0.0.1:$port"
    logf="$dir/gcs.log"
    mkdir -p "$dir/data"
    log "starting fake-gcs-server on $url; log: $logf"
    t0=$(now_ms)
    # -external-url / -public-host: upload and media links point back here, not to Google
    launch "$svc" "$logf" env -C "$dir/data" "$FAKE_GCS_BIN" -scheme http -backend memory \
        -host 127.0.0.1 -port "$port" -external-url "$url" -public-host "127.0.0.1:$port" \
        -log-level warn
    echo "$port" > "$dir/port"

    deadline=$(( $(date +%s) + ${GCS_START_TIMEOUT:-60} ))
    while :; do
        alive "$svc" "$marker" || fail_start "$svc" "$marker" "$logf" \
            "fake-gcs-server exited during start-up"
        curl -fsS -m 5 "$url/storage/v1/b" >/dev/null 2>&1 && break
        [ "$(date +%s)" -lt "$deadline" ] || fail_start "$svc" "$marker" "$logf" \
            "not healthy after ${GCS_START_TIMEOUT:-60} s on $url"
        sleep 0.2
    done
    echo "$url" > "$dir/url"
    log "gcs healthy after $(( ($(now_ms) - t0) )) ms (pid $(cat "$dir/pid"))"
    echo "GCS_URL=$url"
}

stop_gcs() {
    stop_group gcs "fake-gcs-server"
    rm -rf "$STATE/gcs/data"
}

# --- postgres (Debian's PostgreSQL) --------------------------------------

PG_USER=sesa
PG_PASSWORD=sesa
PG_DB=sesa

pg_bindir() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

install_postgres() {
    pg_bindir >/dev/null && return 0
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is missing"
    log "installing PostgreSQL from Debian's packages (apt-get) ..."
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends postgresql >&2; then
        apt-get update -q >&2 || true
        apt-get install -y -q --no-install-recommends postgresql >&2 \
            || die "apt-get install postgresql failed"
    fi
    pg_bindir >/dev/null || die "PostgreSQL installed but no /usr/lib/postgresql/*/bin/initdb"
}

# as_pg CMD...: run CMD as the server's OS user (postgres when we are root)
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_os_user() {
    [ "$(id -u)" = 0 ] || return 0
    if ! id postgres >/dev/null 2>&1; then
        log "creating the postgres system user"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres \
            || die "cannot create the postgres system user"
    fi
}

# pg_home: where the data dir lives; the repo's state dir when the server's user can
# reach it, else a private dir under /tmp (recorded in .services/postgres/home)
pg_home() {
    local dir="$STATE/postgres" home
    if [ -f "$dir/home" ] && [ -d "$(cat "$dir/home")" ]; then
        cat "$dir/home"
        return 0
    fi
    if as_pg test -x "$dir" 2>/dev/null && as_pg test -r "$dir" 2>/dev/null; then
        home="$dir/server"
    else
        home="$(mktemp -d "${TMPDIR:-/tmp}/sesa-postgres.XXXXXX")"
        chmod 755 "$home"
    fi
    echo "$home" > "$dir/home"
    echo "$home"
}

pg_alive() {
    local dir="$STATE/postgres" home pid
    [ -f "$dir/home" ] || return 1
    home="$(cat "$dir/home")"
    [ -f "$home/data/postmaster.pid" ] || return 1
    pid="$(head -n 1 "$home/data/postmaster.pid")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$home/data"
}

# close_fds: close every descriptor above 2 of the current (sub)shell
close_fds() {
    local fd
    for fd in $(ls /proc/$BASHPID/fd 2>/dev/null); do
        [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null || true
    done
}

start_postgres() {
    local svc=postgres dir="$STATE/postgres" bin home port url logf t0
    mkdir -p "$dir"
    if pg_alive && [ -f "$dir/url" ]; then
        url="$(cat "$dir/url")"
        bin="$(pg_bindir)"
        if [ -n "${POSTGRES_PORT:-}" ] && [ "$(cat "$dir/port" 2>/dev/null)" != "$POSTGRES_PORT" ]; then
            log "postgres is running on another port than $POSTGRES_PORT; restarting it"
        elif "$bin/pg_isready" -q -h 127.0.0.1 -p "$(cat "$dir/port")" -t 5; then
            log "postgres already running (pid $(head -n 1 "$(cat "$dir/home")/data/postmaster.pid"))"
            echo "POSTGRES_URL=$url"
            return 0
        else
            log "postgres process exists but does not answer; restarting it"
        fi
    fi
    stop_postgres
    install_postgres
    bin="$(pg_bindir)"
    pg_os_user
    mkdir -p "$dir"
    chmod 755 "$dir"
    home="$(pg_home)"
    rm -rf "$home/data" "$home/run"
    mkdir -p "$home/run"
    printf '%s\n' "$PG_PASSWORD" > "$home/pwfile"
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$home"; fi
    logf="$dir/postgres.log"
    : > "$logf"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$logf"; fi
    t0=$(now_ms)
    log "initdb into $home/data ($bin)"
    as_pg "$bin/initdb" -D "$home/data" -U "$PG_USER" --pwfile="$home/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        --no-sync >>"$logf" 2>&1 || fail_pg "$logf" "initdb failed"
    rm -f "$home/pwfile"
    # loopback only: no other host line than 127.0.0.1/32 (initdb also writes ::1 and
    # replication lines, which listen_addresses makes unreachable anyway)
    port="${POSTGRES_PORT:-$(free_port)}"
    url="postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
    log "starting PostgreSQL on 127.0.0.1:$port; log: $logf"
    # the server must not inherit our lock (fd 9) nor a caller's pipes: it would hold them
    # open for its whole life
    ( close_fds; as_pg "$bin/pg_ctl" start -D "$home/data" -l "$logf" -w -t 60 -s \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$home/run -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        </dev/null >/dev/null 2>>"$logf" ) || fail_pg "$logf" "pg_ctl start failed"
    echo "$port" > "$dir/port"
    as_pg "$bin/createdb" -h "$home/run" -p "$port" -U "$PG_USER" "$PG_DB" >&2 \
        || fail_pg "$logf" "createdb $PG_DB failed"
    PGPASSWORD="$PG_PASSWORD" "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -d "$PG_DB" -U "$PG_USER" -t 30 \
        || fail_pg "$logf" "not ready on 127.0.0.1:$port"
    echo "$url" > "$dir/url"
    log "postgres ready after $(( $(now_ms) - t0 )) ms (pid $(head -n 1 "$home/data/postmaster.pid"))"
    echo "POSTGRES_URL=$url"
}

fail_pg() {
    local logf="$1" msg="$2"
    echo "services: ERROR: postgres: $msg" >&2
    if [ -f "$logf" ]; then
        echo "services: ---- last 40 lines of $logf ----" >&2
        tail -n 40 "$logf" >&2 || true
        echo "services: ----" >&2
    fi
    stop_postgres 2>/dev/null || true
    exit 1
}

stop_postgres() {
    local dir="$STATE/postgres" home bin
    [ -f "$dir/home" ] || { rm -f "$dir/url" "$dir/port"; return 0; }
    home="$(cat "$dir/home")"
    if pg_alive; then
        bin="$(pg_bindir)"
        log "stopping postgres (data dir $home/data)"
        as_pg "$bin/pg_ctl" stop -D "$home/data" -m fast -w -t 60 -s >&2 \
            || as_pg "$bin/pg_ctl" stop -D "$home/data" -m immediate -w -t 30 -s >&2 || true
    fi
    rm -rf "$home/data" "$home/run"
    case "$home" in "$dir"/*) ;; *) rmdir "$home" 2>/dev/null || true ;; esac
    rm -f "$dir/url" "$dir/port" "$dir/home"
}

status_postgres() {
    if pg_alive && [ -f "$STATE/postgres/url" ]; then
        echo "POSTGRES_URL=$(cat "$STATE/postgres/url")"
    else
        log "postgres: not running"
    fi
}

status_one() {
    local svc="$1" marker="$2" var="$3"
    if alive "$svc" "$marker" && [ -f "$STATE/$svc/url" ]; then
        echo "$var=$(cat "$STATE/$svc/url")"
    else
        log "$svc: not running"
    fi
}

# --- main ----------------------------------------------------------------

usage() { echo "usage: $0 start|stop|status [search|s3|azure|gcs|postgres|all]" >&2; exit 2; }

cmd="${1:-}"
what="${2:-all}"
case "$what" in search|s3|azure|gcs|postgres|all) ;; *) usage ;; esac
case "$cmd" in start|stop|status) ;; *) usage ;; esac

mkdir -p "$STATE"
# one invocation at a time (start/stop from parallel test runners)
exec 9>"$STATE/.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 600 9 || die "could not lock $STATE/.lock"
fi

case "$cmd" in
    start)
        # what the services need, before anything slow: installed (root + apt) or named at once
        "$SCRIPT_DIR/preflight.sh" "$what" || die "preflight failed (see the line above)"
        if [ "$what" = all ] || [ "$what" = search ]; then start_search; fi
        if [ "$what" = all ] || [ "$what" = s3 ]; then start_s3; fi
        if [ "$what" = all ] || [ "$what" = azure ]; then start_azure; fi
        if [ "$what" = all ] || [ "$what" = gcs ]; then start_gcs; fi
        if [ "$what" = all ] || [ "$what" = postgres ]; then start_postgres; fi
        ;;
    stop)
        if [ "$what" = all ] || [ "$what" = postgres ]; then stop_postgres; fi
        if [ "$what" = all ] || [ "$what" = gcs ]; then stop_gcs; fi
        if [ "$what" = all ] || [ "$what" = azure ]; then stop_azure; fi
        if [ "$what" = all ] || [ "$what" = s3 ]; then stop_s3; fi
        if [ "$what" = all ] || [ "$what" = search ]; then stop_search; fi
        ;;
    status)
        if [ "$what" = all ] || [ "$what" = search ]; then status_one search "$OS_MAIN" SEARCH_URL; fi
        if [ "$what" = all ] || [ "$what" = s3 ]; then status_one s3 "moto.server" S3_URL; fi
        if [ "$what" = all ] || [ "$what" = azure ]; then status_one azure "azurite-blob" AZURE_URL; fi
        if [ "$what" = all ] || [ "$what" = gcs ]; then status_one gcs "fake-gcs-server" GCS_URL; fi
        if [ "$what" = all ] || [ "$what" = postgres ]; then status_postgres; fi
        ;;
esac
