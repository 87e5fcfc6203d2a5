#!/usr/bin/env bash
# Run user_svc, order_svc and inventory_svc from .venv in the foreground, with their output
# prefixed by name. Waits until every /readyz answers 200 (deadline RUN_READY_TIMEOUT, default
# 60 s), prints their URLs, then runs until Ctrl-C or SIGTERM, which is forwarded to each as SIGTERM
# so they shut down gracefully (a second Ctrl-C kills them). If one dies on its own, the others are
# stopped and this script exits non-zero. Configuration is the contract's environment
# (USER_SVC_PORT, AMQP_URL, ADMIN_EMAILS, ...).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${VENV:-.venv}/bin/python"
READY_TIMEOUT="${RUN_READY_TIMEOUT:-60}"
STOP_TIMEOUT="${RUN_STOP_TIMEOUT:-30}"

NAMES=(user_svc order_svc inventory_svc)
PORTS=("${USER_SVC_PORT:-8001}" "${ORDER_SVC_PORT:-8002}" "${INVENTORY_SVC_PORT:-8003}")
HOSTS=("${USER_SVC_HOST:-127.0.0.1}" "${ORDER_SVC_HOST:-127.0.0.1}" "${INVENTORY_SVC_HOST:-127.0.0.1}")
PIDS=()
FORCE_KILL=0

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

[[ -x "${PY}" ]] || die "no virtualenv at ${PY%/bin/python}; run: make venv"

# Where to reach a service that listens on host $1 (a wildcard address is reached via loopback).
client_host() {
    case "$1" in
        0.0.0.0 | :: | "") printf '127.0.0.1' ;;
        *:*) printf '[%s]' "$1" ;;
        *) printf '%s' "$1" ;;
    esac
}

base_url() { printf 'http://%s:%s' "$(client_host "${HOSTS[$1]}")" "${PORTS[$1]}"; }

http_ok() {
    if command -v curl >/dev/null 2>&1; then
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)" == 200 ]]
    else
        "${PY}" -c '
import sys, urllib.request
try:
    sys.exit(urllib.request.urlopen(sys.argv[1], timeout=2).status != 200)
except Exception:
    sys.exit(1)
' "$1"
    fi
}

port_in_use() {
    # shellcheck disable=SC2016  # $0/$1 are expanded by the inner bash.
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$(client_host "$1" | tr -d '[]')" "$2" 2>/dev/null
}

alive() { kill -0 "$1" 2>/dev/null; }

prefix_lines() {
    # Ctrl-C reaches the whole process group: this must outlive it to carry the shutdown logs.
    trap '' INT TERM HUP
    local line
    while IFS= read -r line || [[ -n "${line}" ]]; do
        printf '[%s] %s\n' "$1" "${line}"
    done
}

# SIGTERM to every child still running, then wait for them (SIGKILL after STOP_TIMEOUT seconds,
# or at once on a second Ctrl-C). Returns non-zero if a child did not stop cleanly.
stop_children() {
    local pid i status clean=0
    # Only a flag: a trap that runs a function while this one is running confuses bash.
    trap 'FORCE_KILL=1' INT TERM HUP
    for pid in "${PIDS[@]}"; do
        kill -TERM "${pid}" 2>/dev/null || true
    done
    local deadline=$((SECONDS + STOP_TIMEOUT))
    for i in "${!PIDS[@]}"; do
        pid="${PIDS[$i]}"
        while alive "${pid}" && ((SECONDS < deadline && !FORCE_KILL)); do
            sleep 0.2
        done
        if alive "${pid}"; then
            if ((FORCE_KILL)); then
                log "killing ${NAMES[$i]}"
            else
                log "${NAMES[$i]} did not stop within ${STOP_TIMEOUT}s; killing it"
            fi
            kill -KILL "${pid}" 2>/dev/null || true
        fi
        status=0
        wait "${pid}" 2>/dev/null || status=$?
        # 143 = ended by our SIGTERM without handling it, which is still a clean stop.
        if ((status != 0 && status != 143)); then
            log "${NAMES[$i]} exited with status ${status} while stopping"
            clean=1
        fi
    done
    PIDS=()
    return "${clean}"
}

on_signal() {
    log "stopping services (Ctrl-C again to kill them)"
    if stop_children; then
        log "stopped"
        exit 0
    fi
    exit 1
}

# Whatever ends this script (an error included) must not leave a service running.
on_exit() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
}

# A child that exited on its own: stop the others and fail.
fail_if_a_child_died() {
    local i status
    for i in "${!PIDS[@]}"; do
        if ! alive "${PIDS[$i]}"; then
            status=0
            wait "${PIDS[$i]}" 2>/dev/null || status=$?
            unset 'PIDS[i]'
            log "error: ${NAMES[$i]} exited unexpectedly (status ${status}); stopping the other services"
            stop_children || true
            exit 1
        fi
    done
}

for i in "${!NAMES[@]}"; do
    if port_in_use "${HOSTS[$i]}" "${PORTS[$i]}"; then
        die "port ${PORTS[$i]} for ${NAMES[$i]} is already in use (is another instance running?)"
    fi
done

trap on_signal INT TERM HUP
trap on_exit EXIT

for i in "${!NAMES[@]}"; do
    PYTHONUNBUFFERED=1 "${PY}" -m "${NAMES[$i]}" > >(prefix_lines "${NAMES[$i]}") 2>&1 &
    PIDS[i]=$!
done

deadline=$((SECONDS + READY_TIMEOUT))
for i in "${!NAMES[@]}"; do
    until http_ok "$(base_url "${i}")/readyz"; do
        fail_if_a_child_died
        if ((SECONDS >= deadline)); then
            log "error: ${NAMES[$i]} not ready at $(base_url "${i}")/readyz after ${READY_TIMEOUT}s; stopping"
            stop_children || true
            exit 1
        fi
        sleep 0.5
    done
done

for i in "${!NAMES[@]}"; do
    printf '%s: %s (docs at /docs)\n' "${NAMES[$i]}" "$(base_url "${i}")"
done
log "all services ready; Ctrl-C to stop"

while true; do
    fail_if_a_child_died
    # Backgrounded so a signal interrupts the wait at once instead of after the sleep.
    sleep 1 &
    wait "$!" || true
done
