#!/usr/bin/env bash
# A throw-away MLflow tracking server on loopback, for the registry-client tests.
#
#   eval "$(scripts/mlflow-server.sh start)"   # exports MLFLOW_TRACKING_URI and MLFLOW_SERVER_PID
#   scripts/mlflow-server.sh stop              # stops the server started from this checkout
#
# The first start creates a virtual environment (MLFLOW_VENV, default target/mlflow-venv) and
# installs mlflow into it; later starts reuse it. The server keeps its database and artifacts
# in a fresh directory under MLFLOW_STATE (default target/mlflow-state), listens on a free port
# of 127.0.0.1, runs one worker without job execution (about 450 MB), and serves artifacts
# itself (`--serve-artifacts`). Only the exports go to stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${MLFLOW_VENV:-target/mlflow-venv}
state=${MLFLOW_STATE:-target/mlflow-state}
mlflow_spec=${MLFLOW_SPEC:-mlflow==3.17.2}
timeout=${MLFLOW_START_TIMEOUT:-180}

log() { printf 'mlflow-server: %s\n' "$*" >&2; }

ensure_venv() {
    if [[ -x "$venv/bin/mlflow" ]]; then
        return
    fi
    log "creating $venv and installing $mlflow_spec (a few minutes, once)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$mlflow_spec" >&2
}

free_port() {
    "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    ensure_venv
    mkdir -p "$state"
    local dir port url started pid
    dir=$(mktemp -d "$state/run-XXXXXX")
    dir=$(cd "$dir" && pwd)
    port=$(free_port)
    url="http://127.0.0.1:$port"
    started=$(date +%s)
    log "starting on $url (state in $dir)"
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$venv/bin/mlflow" server \
        --host 127.0.0.1 --port "$port" --workers 1 \
        --backend-store-uri "sqlite:///$dir/mlflow.db" \
        --serve-artifacts --artifacts-destination "$dir/artifacts" \
        >"$dir/server.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$state/server.pid"
    until curl -fsS "$url/health" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "the server exited; its log:"
            cat "$dir/server.log" >&2
            exit 1
        fi
        if (( $(date +%s) - started > timeout )); then
            log "no answer after $timeout s; its log:"
            tail -n 50 "$dir/server.log" >&2
            kill -- "-$pid" 2>/dev/null || kill "$pid"
            exit 1
        fi
        sleep 1
    done
    log "ready after $(( $(date +%s) - started )) s"
    printf 'export MLFLOW_TRACKING_URI=%s\nexport MLFLOW_SERVER_PID=%s\n' "$url" "$pid"
}

stop() {
    local pid
    if [[ -f "$state/server.pid" ]]; then
        pid=$(cat "$state/server.pid")
        # setsid made the server the leader of its own process group: end it and its workers.
        kill -- "-$pid" 2>/dev/null || true
        rm -f "$state/server.pid"
        log "stopped $pid"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    install) ensure_venv ;;
    *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac
