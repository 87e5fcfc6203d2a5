#!/usr/bin/env bash
# Make sure the backing services of the contract are reachable: PostgreSQL (PGHOST/PGPORT, default
# 127.0.0.1:5432), RabbitMQ (host and port of AMQP_URL, default 127.0.0.1:5672) and Redis (host and
# port of RATE_LIMIT_STORAGE_URL, else 127.0.0.1:6379; the tests count rate limits in it).
#
# For each one: if it is reachable, say so and go on. If it is installed here but stopped, start it
# and wait (with a deadline) until it answers. If it is not installed and we are root on an apt
# system, install it, make PostgreSQL accept passwordless TCP from localhost (the contract's URL
# has no password) and start it. Otherwise fail, naming the command to run.
#
# Safe to run any number of times, with no terminal (CI): it never prompts, and it never stops or
# restarts a server that is already running. One line per service when all is well.
#
# Env: PGHOST, PGPORT, AMQP_URL, RATE_LIMIT_STORAGE_URL, SERVICES_TIMEOUT (seconds to wait for a
# start, default 60).
set -euo pipefail

# pg_ctlcluster, rabbitmq-server and rabbitmqctl live in sbin, often not on a user's PATH.
export PATH="${PATH}:/usr/sbin:/sbin"

PG_HOST="${PGHOST:-127.0.0.1}"
PG_PORT="${PGPORT:-5432}"
TIMEOUT="${SERVICES_TIMEOUT:-60}"
APT_UPDATED=0

say() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Host and port of AMQP_URL (amqp://user:pass@host:port/vhost); IPv6 literals are not handled.
amqp_host_port() {
    local url="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
    local default_port=5672
    [[ "${url}" == amqps://* ]] && default_port=5671
    local rest="${url#*://}"
    rest="${rest%%/*}"
    rest="${rest##*@}"
    if [[ "${rest}" == *:* ]]; then
        printf '%s %s\n' "${rest%%:*}" "${rest##*:}"
    else
        printf '%s %s\n' "${rest:-127.0.0.1}" "${default_port}"
    fi
}
read -r AMQP_HOST AMQP_PORT < <(amqp_host_port)

# Host and port of RATE_LIMIT_STORAGE_URL (redis://[user:pass@]host:port/db), else the default.
redis_host_port() {
    local url="${RATE_LIMIT_STORAGE_URL:-redis://127.0.0.1:6379/0}"
    local rest="${url#*://}"
    rest="${rest%%/*}"
    rest="${rest##*@}"
    if [[ "${rest}" == *:* ]]; then
        printf '%s %s\n' "${rest%%:*}" "${rest##*:}"
    else
        printf '%s %s\n' "${rest:-127.0.0.1}" 6379
    fi
}
read -r REDIS_HOST REDIS_PORT < <(redis_host_port)

# Only a server on this machine is ours to start or install.
is_local() {
    case "$1" in
        127.0.0.1 | localhost | ::1 | /*) return 0 ;;
        *) return 1 ;;
    esac
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# shellcheck disable=SC2016  # $0/$1 are expanded by the inner bash, not here.
tcp_open() {
    local host="$1" port="$2"
    if command -v timeout >/dev/null 2>&1; then
        timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "${host}" "${port}" 2>/dev/null
    else
        bash -c 'exec 3<>"/dev/tcp/$0/$1"' "${host}" "${port}" 2>/dev/null
    fi
}

# Poll until "$@" succeeds or TIMEOUT seconds have passed.
wait_until() {
    local deadline=$((SECONDS + TIMEOUT))
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

apt_install() {
    if ((APT_UPDATED == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null
}

can_apt_install() { is_root && command -v apt-get >/dev/null 2>&1; }

# --- PostgreSQL -------------------------------------------------------------------------------

pg_reachable() {
    if command -v pg_isready >/dev/null 2>&1; then
        # 0 = accepting connections; 1 (still starting up) and 2 (no answer) are not ready yet.
        pg_isready -q -h "${PG_HOST}" -p "${PG_PORT}" -t 3 </dev/null
    else
        tcp_open "${PG_HOST}" "${PG_PORT}"
    fi
}

# Newest PostgreSQL version with a config directory (Debian layout), or nothing.
pg_version() {
    [[ -d /etc/postgresql ]] || return 0
    find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1
}

pg_cluster_online() {
    pg_lsclusters -h 2>/dev/null | awk -v v="$1" '$1 == v && $2 == "main" && $4 ~ /^online/' |
        grep -q .
}

# The contract's URL (postgresql+asyncpg://postgres@127.0.0.1:5432/...) has no password, so a
# development cluster must trust local TCP. Only applied to clusters this script installed.
pg_trust_local_tcp() {
    local hba="/etc/postgresql/$1/main/pg_hba.conf"
    local v4='host    all    all    127.0.0.1/32    trust'
    local v6='host    all    all    ::1/128         trust'
    if grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "${hba}" &&
        grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+::1/128[[:space:]]+trust' "${hba}"; then
        return 0
    fi
    local tmp
    tmp="$(mktemp)"
    {
        printf '# Added by scripts/ensure-services.sh: passwordless local TCP for development.\n'
        printf '%s\n%s\n' "${v4}" "${v6}"
        cat "${hba}"
    } >"${tmp}"
    # Write through the existing file so its owner and mode stay as they are.
    cat "${tmp}" >"${hba}"
    rm -f "${tmp}"
    if pg_cluster_online "$1"; then
        pg_ctlcluster --skip-systemctl-redirect "$1" main reload </dev/null
    fi
}

pg_install_hint() {
    printf 'sudo apt-get install -y postgresql, then add "host all all 127.0.0.1/32 trust" at the '
    printf 'top of pg_hba.conf (or run: sudo %s)' "$0"
}

ensure_postgres() {
    local where="${PG_HOST}:${PG_PORT}"
    if pg_reachable; then
        say "postgres: reachable at ${where}"
        pg_check_login
        return 0
    fi
    is_local "${PG_HOST}" || die "postgres: not reachable at ${where} (a remote host: start it there, or set PGHOST/PGPORT)"

    local version fresh=0
    version="$(pg_version)"
    if [[ -z "${version}" ]] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
        can_apt_install || die "postgres: not reachable at ${where} and not installed. Run: $(pg_install_hint)"
        say "postgres: not installed; installing with apt-get"
        apt_install postgresql
        version="$(pg_version)"
        [[ -n "${version}" ]] || die "postgres: installed, but no cluster under /etc/postgresql"
        fresh=1
    fi
    if [[ ! -d "/etc/postgresql/${version}/main" ]]; then
        is_root || die "postgres: no cluster ${version}/main. Run: sudo pg_createcluster ${version} main"
        pg_createcluster "${version}" main </dev/null
        fresh=1
    fi
    if ((fresh)); then
        pg_trust_local_tcp "${version}"
    fi

    local start_cmd=(pg_ctlcluster --skip-systemctl-redirect "${version}" main start)
    if pg_cluster_online "${version}"; then
        # Running but not answering where we look: starting it again would not help.
        if ! wait_until pg_reachable; then
            local port
            port="$(pg_lsclusters -h 2>/dev/null | awk -v v="${version}" '$1 == v && $2 == "main" {print $3}')"
            die "postgres: cluster ${version}/main is running (port ${port:-?}) but not reachable at ${where}; check PGHOST/PGPORT, or port and listen_addresses in /etc/postgresql/${version}/main/postgresql.conf"
        fi
    else
        say "postgres: stopped; starting cluster ${version}/main"
        if ! "${start_cmd[@]}" </dev/null; then
            die "postgres: could not start it. Run: sudo ${start_cmd[*]}"
        fi
        wait_until pg_reachable ||
            die "postgres: started but not reachable at ${where} after ${TIMEOUT}s; see /var/log/postgresql/postgresql-${version}-main.log"
    fi
    say "postgres: reachable at ${where}"
    pg_check_login
}

# Reachable is not enough if the contract's passwordless URL is refused: say how to fix it, but
# leave the configuration of a server we did not install alone.
pg_check_login() {
    command -v psql >/dev/null 2>&1 || return 0
    if ! psql -w -h "${PG_HOST}" -p "${PG_PORT}" -U postgres -d postgres -Atqc 'select 1' \
        </dev/null >/dev/null 2>&1; then
        warn "postgres: warning: passwordless login as user postgres failed at ${PG_HOST}:${PG_PORT};" \
            "the default database URLs need \"host all all 127.0.0.1/32 trust\" at the top of" \
            "pg_hba.conf (then reload), or set USER_SVC_DATABASE_URL/ORDER_SVC_DATABASE_URL with credentials"
    fi
}

# --- RabbitMQ ---------------------------------------------------------------------------------

rabbit_reachable() { tcp_open "${AMQP_HOST}" "${AMQP_PORT}"; }

rabbit_installed() { command -v rabbitmq-server >/dev/null 2>&1; }

# A node that is booting (or listening elsewhere) must not get a second start.
rabbit_running() { pgrep -f 'beam.*rabbit' >/dev/null 2>&1; }

ensure_rabbitmq() {
    local where="${AMQP_HOST}:${AMQP_PORT}"
    if rabbit_reachable; then
        say "rabbitmq: reachable at ${where}"
        return 0
    fi
    is_local "${AMQP_HOST}" || die "rabbitmq: not reachable at ${where} (a remote host: start it there, or set AMQP_URL)"

    if ! rabbit_installed; then
        can_apt_install || die "rabbitmq: not reachable at ${where} and not installed. Run: sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached"
        say "rabbitmq: not installed; installing with apt-get"
        apt_install rabbitmq-server
    fi

    if rabbit_running; then
        say "rabbitmq: running but not yet reachable; waiting"
    else
        say "rabbitmq: stopped; starting it"
        local log
        log="$(mktemp)"
        if ! rabbitmq-server -detached </dev/null >"${log}" 2>&1; then
            cat "${log}" >&2
            rm -f "${log}"
            die "rabbitmq: could not start it. Run: sudo rabbitmq-server -detached"
        fi
        rm -f "${log}"
    fi
    wait_until rabbit_reachable ||
        die "rabbitmq: not reachable at ${where} after ${TIMEOUT}s; see /var/log/rabbitmq/ (or run: sudo rabbitmqctl await_startup)"
    say "rabbitmq: reachable at ${where}"
}

# --- Redis ------------------------------------------------------------------------------------

redis_reachable() { tcp_open "${REDIS_HOST}" "${REDIS_PORT}"; }

ensure_redis() {
    local where="${REDIS_HOST}:${REDIS_PORT}"
    if redis_reachable; then
        say "redis: reachable at ${where}"
        return 0
    fi
    is_local "${REDIS_HOST}" || die "redis: not reachable at ${where} (a remote host: start it there, or set RATE_LIMIT_STORAGE_URL)"

    if ! command -v redis-server >/dev/null 2>&1; then
        can_apt_install || die "redis: not reachable at ${where} and not installed. Run: sudo apt-get install -y redis-server"
        say "redis: not installed; installing with apt-get"
        apt_install redis-server
        # The package may have started it already.
        if redis_reachable; then
            say "redis: reachable at ${where}"
            return 0
        fi
    fi

    # Counters only: no snapshots, no append-only file.
    local start_cmd=(redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "${REDIS_PORT}" --save "" --appendonly no)
    say "redis: not running; starting it"
    if ! "${start_cmd[@]}" </dev/null >/dev/null; then
        die "redis: could not start it. Run: ${start_cmd[*]}"
    fi
    wait_until redis_reachable ||
        die "redis: started but not reachable at ${where} after ${TIMEOUT}s (is port ${REDIS_PORT} taken?). Run it in the foreground to see why: redis-server --port ${REDIS_PORT}"
    say "redis: reachable at ${where}"
}

ensure_postgres
ensure_rabbitmq
ensure_redis
