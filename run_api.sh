#!/usr/bin/env bash
# Run the scoring API on http://localhost:5001 (POST /predict).
#
#   ./run_api.sh            Docker Compose when a Docker engine answers, else podman-compose
#                           when podman can run containers, else local processes
#   ./run_api.sh --local    local processes: the gRPC inference server + the gunicorn gateway
#   ./run_api.sh --docker   containers only: docker compose up -d --build --wait, or
#                           podman-compose up -d --no-deps --build and a wait on /readyz
#
# Local mode serves the model repository models/scoring (one bundle per version; the
# server starts with the version its SERVING file names, else the latest). When it holds no
# version (or serves a DEMO one and real data is now available) a new version is trained
# first from $TRAIN_CSV if set, else from data/exercise_06_train.csv if present, else a
# DEMO model on synthetic rows (said loudly); a models/current bundle from before
# repositories becomes version 1. Containers serve the model repository /models/scoring of
# the compose volume "models" (its trainer service trains and deploys versions the same way).
# Local mode creates .venv with `make setup` when it is missing, binds to loopback, restarts
# a server that dies (supervise below), waits until the gateway's
# /readyz answers, and stops both processes on Ctrl-C or SIGTERM.
#
# Containers: a base image that is neither here nor pullable is said before building, with
# the two commands that work instead; a failed build or start ends with the same paragraph
# and exit 1.
#
# Environment: TRAIN_CSV, BASE_IMAGE (containers: the Python 3.11 image to build from, e.g.
# localhost/python-base:3.11-bookworm where no registry is reachable), GATEWAY_PORT (5001),
# INFERENCE_PORT (8001),
# INFERENCE_METRICS_PORT (8002), GATEWAY_WORKERS, GATEWAY_THREADS, PYTHON (an interpreter
# with the dependencies, instead of .venv), and every setting of bin/start-gateway and
# bin/start-inference.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

mode=auto
case "${1:-}" in
    --local) mode=local ;;
    --docker) mode=docker ;;
    "") ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print } /^set /{ exit }' "$0"; exit 0 ;;
    *) echo "usage: $0 [--local|--docker]" >&2; exit 2 ;;
esac
# The engine: docker when a Docker engine answers, else podman (deploy/docker/engine.sh).
engine=""
if [ "$mode" != local ]; then
    engine="$("$root/deploy/docker/engine.sh" 2>/dev/null || true)"
fi
if [ "$mode" = auto ]; then
    if [ -n "$engine" ]; then mode=docker; else mode=local; fi
fi
if [ "$mode" = docker ] && [ -z "$engine" ]; then
    echo "run_api: no container engine answers (docker info, podman info)" >&2
    exit 1
fi

GATEWAY_PORT="${GATEWAY_PORT:-5001}"
REPOSITORY="$root/models/scoring"
SAMPLE='{"x0": "9.521496806", "x1": "wed", "x12": "$296.43 ", "x54": "Jun", "x99": "-1.926577376"}'

say() { printf '%s\n' "run_api: $*"; }

sample_curl() {
    say "API:      http://localhost:$GATEWAY_PORT/predict   (POST, content-type: application/json)"
    say "health:   http://localhost:$GATEWAY_PORT/healthz  /readyz  /metrics  /openapi.json"
    say "try it:"
    printf "  curl --request POST --url http://localhost:%s/predict --header 'content-type: application/json' --data '%s'\n" \
        "$GATEWAY_PORT" "$SAMPLE"
}

# What an engine prints when no image registry answers (a base image cannot be pulled),
# and what a build prints when it cannot reach a package archive (PyPI, Debian's).
NO_REGISTRY='pinging container registry|initializing source docker://|pull access denied|manifest unknown|failed to resolve reference'
NO_ARCHIVE='temporary failure in name resolution|failed to establish a new connection|unable to connect to|could not resolve|read timed out'
# What podman prints per container on a machine without systemd: harmless (see below).
SYSTEMD_NOISE='unable to get systemd connection to (add|start|remove) healthchecks'

# cannot_start WHAT OUTPUT: the closing paragraph when the containers cannot be built or
# started (what failed, its cause where it is a registry or a package archive out of
# reach, the two commands that work instead), then exit 1. OUTPUT is what the engine said.
cannot_start() {
    local registry_error archive_error errors bases
    registry_error="$(grep -iE "$NO_REGISTRY" <<<"$2" | tail -n 1 || true)"
    archive_error="$(grep -iE "$NO_ARCHIVE" <<<"$2" | tail -n 1 || true)"
    errors="$(grep -E '^(Error|E:|ERROR:)' <<<"$2" | grep -vE "$SYSTEMD_NOISE|^ERROR:podman_compose" \
        | tail -n 3 || true)"
    bases="$("$engine" images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null \
        | grep -i python | grep -v '<none>' | head -n 1 || true)"
    {
        echo
        say "the containers cannot start: $1."
        if [ -n "$registry_error" ]; then
            say "No image registry answered, so the base image ${base_image} cannot be pulled:"
            printf '  %s\n' "${registry_error:0:300}"
        else
            if [ -n "$archive_error" ]; then
                say "The build could not reach a package archive (PyPI or Debian's); often passing, so"
                say "the same command again may work. The network said:"
                printf '  %s\n' "${archive_error:0:300}"
            fi
            if [ -n "$errors" ]; then
                say "What the engine said last:"
                cut -c1-300 <<<"$errors" | sed 's/^/  /'
            fi
        fi
        say "Either of these works instead:"
        if [ -n "$bases" ]; then
            printf '  BASE_IMAGE=%s ./run_api.sh   # build from this Python 3.11 image, found here\n' "$bases"
        else
            printf '  BASE_IMAGE=<a local Python 3.11 image> ./run_api.sh   # build without a registry\n'
        fi
        printf '  ./run_api.sh --local   # no containers: the same stack as local processes\n'
    } >&2
    exit 1
}

# podman on a machine without systemd prints SYSTEMD_NOISE per container: harmless
# (readiness is polled on /readyz), so it is said once, in one line, instead.
hide_systemd_noise() {
    awk -v noise="$SYSTEMD_NOISE" '$0 ~ noise {
            if (!seen++) print "run_api: (podman runs no HEALTHCHECK without systemd: harmless, readiness is polled on /readyz)"
            next
        }
        { print; fflush() }'
}

wait_ready() { # url, seconds: poll until it answers 200
    for _ in $(seq 1 $(($2 * 2))); do
        if python3 -c 'import sys,urllib.request as u; u.urlopen(sys.argv[1], timeout=2)' "$1" \
            >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    return 1
}

# ---- Containers: the platform's compose file trains (its trainer service) and serves -------
# The same docker-compose.yml under both engines. podman-compose has no --wait (and podman
# runs no HEALTHCHECK by itself), so readiness is the gateway's own /readyz.
if [ "$mode" = docker ]; then
    if [ -n "${TRAIN_CSV:-}" ]; then
        export TRAIN_DATA_DIR="$(cd "$(dirname "$TRAIN_CSV")" && pwd)" TRAIN_CSV_NAME="$(basename "$TRAIN_CSV")"
    fi
    export GATEWAY_HOST_PORT="$GATEWAY_PORT"
    compose="$("$root/deploy/docker/engine.sh" --compose)"
    up="$("$root/deploy/docker/engine.sh" --up) --build"
    if [ "$engine" = docker ]; then
        say "Docker engine found: $compose $up"
    else
        say "podman found (no Docker engine): $compose $up"
    fi
    # Said before building: a base image that can be neither found here nor pulled.
    base_image="${BASE_IMAGE:-$(sed -n 's/^ARG BASE_IMAGE=//p' "$root/Dockerfile.inference")}"
    if ! "$engine" image inspect "$base_image" >/dev/null 2>&1; then
        say "pulling the base image $base_image (BASE_IMAGE names another)"
        pulled="$("$engine" pull "$base_image" 2>&1)" \
            || cannot_start "the base image $base_image is not here and could not be pulled" "$pulled"
    fi
    up_log="$(mktemp)"
    trap 'rm -f "$up_log"' EXIT
    # shellcheck disable=SC2086 # the commands are word lists
    up_status=0
    $compose $up 2>&1 | tee "$up_log" | hide_systemd_noise || up_status=${PIPESTATUS[0]}
    if [ "$up_status" != 0 ]; then
        cannot_start "'$compose $up' exited $up_status" "$(cat "$up_log")"
    fi
    say "waiting for http://localhost:$GATEWAY_PORT/readyz"
    if ! wait_ready "http://127.0.0.1:$GATEWAY_PORT/readyz" 600; then
        say "not ready after 600 s: see $compose logs" >&2
        exit 1
    fi
    sample_curl
    say "stop with: $compose down"
    exit 0
fi

# ---- Local processes ------------------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
    if [ ! -x "$root/.venv/bin/python" ]; then
        say "no .venv yet: make setup (installs the pinned dependencies)"
        make setup
    fi
    PYTHON="$root/.venv/bin/python"
fi
export PYTHON

train_csv="${TRAIN_CSV:-}"
if [ -z "$train_csv" ] && [ -f "$root/data/exercise_06_train.csv" ]; then
    train_csv="$root/data/exercise_06_train.csv"
fi
if [ -n "$train_csv" ] && [ ! -f "$train_csv" ]; then
    say "TRAIN_CSV=$train_csv does not exist" >&2
    exit 2
fi

# The manifest of the version the server will start with (none: the repository is empty).
serving_manifest() {
    "$PYTHON" - "$REPOSITORY" <<'PY'
import sys
from pathlib import Path
from modeling.bundle import BundleError
from modeling.repository import Repository
repository = Repository(Path(sys.argv[1]))
try:
    print(repository.path(repository.serving()) / "manifest.json")
except BundleError:
    pass
PY
}

is_demo() {
    "$PYTHON" -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("demo") else 1)' \
        "$(serving_manifest)"
}

if [ -z "$(serving_manifest)" ] && [ -f "$root/models/current/manifest.json" ]; then
    say "models/current becomes version 1 of the model repository models/scoring"
    mkdir -p "$REPOSITORY"
    cp -R "$root/models/current" "$REPOSITORY/1"
fi
if [ -z "$(serving_manifest)" ] || { [ -n "$train_csv" ] && is_demo; }; then
    if [ -n "$train_csv" ]; then
        say "training a new version of the model from $train_csv into models/scoring"
        "$PYTHON" -m modeling train --train "$train_csv" --repository "$REPOSITORY"
    else
        cat >&2 <<'NOTICE'

##########################################################################################
##  NOTICE: no training data (set TRAIN_CSV or put data/exercise_06_train.csv in place). ##
##  Training a DEMO model on SYNTHETIC rows: its predictions mean nothing for real data. ##
##########################################################################################

NOTICE
        "$PYTHON" -m modeling train --synthetic 3000 --preset quick --repository "$REPOSITORY"
    fi
    rm -f "$REPOSITORY/SERVING" # the new version, the latest, is the one to serve
fi
if is_demo; then
    say "NOTICE: serving a DEMO model trained on synthetic rows"
fi

export INFERENCE_PORT="${INFERENCE_PORT:-8001}" INFERENCE_METRICS_PORT="${INFERENCE_METRICS_PORT:-8002}"
export GATEWAY_PORT INFERENCE_TARGET="${INFERENCE_TARGET:-localhost:$INFERENCE_PORT}"
# Loopback only unless told otherwise: the gRPC server and the metrics have no authentication.
export GATEWAY_HOST="${GATEWAY_HOST:-127.0.0.1}" INFERENCE_HOST="${INFERENCE_HOST:-127.0.0.1}"

# The gateway's buffering front (slow or idle clients cannot hold its threads).
if ! command -v nginx >/dev/null 2>&1 && [ "${GATEWAY_EDGE:-nginx}" = nginx ] \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing nginx (the gateway's buffering front): apt-get install nginx"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends nginx >/dev/null \
        || say "could not install nginx: the gateway runs without its front" >&2
fi

# supervise NAME COMMAND...: run COMMAND, restart it when it dies (backoff 1 s to 10 s),
# until this script stops. Exit code 2 (a refused bundle or bad settings) is not retried.
supervise() {
    local name=$1 delay=1 child=0 code started
    shift
    stopping=0
    trap 'stopping=1; kill -TERM "$child" 2>/dev/null' TERM
    while [ "$stopping" = 0 ]; do
        started=$SECONDS
        "$@" &
        child=$!
        code=0
        wait "$child" || code=$?
        while kill -0 "$child" 2>/dev/null; do # a TERM interrupted the wait: let it drain
            wait "$child" || true
        done
        [ "$stopping" = 1 ] && break
        if [ "$code" = 2 ]; then
            say "$name refused to start (exit 2): not restarting it" >&2
            return 2
        fi
        [ $((SECONDS - started)) -gt 30 ] && delay=1
        say "$name exited ($code): restarting it in ${delay} s" >&2
        sleep "$delay" &
        wait $! || true # a TERM ends the pause at once
        delay=$((delay < 10 ? delay * 2 : 10))
    done
}

pids=()
stop() {
    trap - INT TERM EXIT
    if [ "${#pids[@]}" -gt 0 ]; then
        say "stopping (pids ${pids[*]})"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

supervise "the inference server" "$root/bin/start-inference" --repository "$REPOSITORY" &
pids+=("$!")
supervise "the gateway" "$root/bin/start-gateway" &
pids+=("$!")

say "waiting for http://localhost:$GATEWAY_PORT/readyz"
for _ in $(seq 1 240); do
    for pid in "${pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "a server could not start" >&2
            exit 1
        fi
    done
    if "$PYTHON" -c 'import sys,urllib.request as u; u.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$GATEWAY_PORT/readyz" >/dev/null 2>&1; then
        say "ready (listening on $GATEWAY_HOST only; set GATEWAY_HOST=0.0.0.0 to expose it)"
        sample_curl
        say "a server that dies is restarted; Ctrl-C stops both"
        wait -n "${pids[@]}" || true
        say "a server could not be kept running" >&2
        exit 1
    fi
    sleep 0.5
done
say "not ready after 120 s" >&2
exit 1
