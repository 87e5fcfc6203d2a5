#!/usr/bin/env bash
# The tools the tests need besides the servers themselves, from Debian's packages:
# - HAProxy (in front of the private RabbitMQ cluster) and iptables and iproute2 (partitions in
#   its network namespaces): the private servers of tests/support/servers;
# - Chromium and chromedriver: tests/docs opens every page of the docs site in headless Chromium;
# - promtool (package prometheus, --no-install-recommends; where services start on install, that
#   starts a Prometheus server too): tests/unit/test_alert_rules.py checks the alert rules;
# - ShellCheck: actionlint checks the example CI workflow's scripts with it
#   (tests/unit/test_ci_workflow.py).
# Installed when missing and we are root on an apt system; otherwise fail, naming the command to
# run. Installing never starts or touches the machine's PostgreSQL, RabbitMQ or Redis.
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
((${#missing[@]} == 0)) && exit 0

if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    printf 'error: the tests need %s; run: sudo apt-get install -y %s\n' "${missing[*]}" "${missing[*]}" >&2
    exit 1
fi
printf 'test tools: installing %s with apt-get\n' "${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
    { apt-get update -qq </dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null; }
