#!/usr/bin/env bash
# The tools the tests' private servers need besides PostgreSQL and RabbitMQ themselves: HAProxy
# (in front of the private RabbitMQ cluster) and iptables (partitions inside its network
# namespaces). Installed from Debian's packages when missing and we are root on an apt system;
# otherwise fail, naming the command to run. Installing never starts or touches a server.
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
((${#missing[@]} == 0)) && exit 0

if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    printf 'error: the tests need %s; run: sudo apt-get install -y %s\n' "${missing[*]}" "${missing[*]}" >&2
    exit 1
fi
printf 'test tools: installing %s with apt-get\n' "${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
    { apt-get update -qq </dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null; }
