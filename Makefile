# Developer entry points. CI runs `make test` (see .ci/run).
#   make venv       .venv with the project and its dev tools (redone when pyproject.toml changes)
#   make services   make sure PostgreSQL and RabbitMQ are reachable (starts or installs them)
#   make test-tools HAProxy and iptables for the tests' private servers (installs them if missing)
#   make run        both services on 127.0.0.1:8001 / :8002 until Ctrl-C
#   make test       lint, format check, mypy, then pytest (PYTEST_ARGS="-k saga -x" to narrow)
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
.PHONY: help venv services test-tools run test chaos failover fuzz bench lint fmt typecheck clean

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

test-tools:
	bash scripts/ensure-test-tools.sh

run: venv services
	bash scripts/run.sh

test: venv services test-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

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
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .run build dist *.egg-info
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
