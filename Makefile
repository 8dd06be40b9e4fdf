# DR Portal: `make run` starts the portal on embedded defaults, `make test` runs the suite.
# Everything runs from the project's own virtualenv in .venv (created on first use).

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.11 creates the venv; override with `make PYTHON=/path/to/python3.11 venv`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
# Touched after a successful `pip install`: the install re-runs only when a requirements file changes.
STAMP := $(VENV)/.requirements-installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help venv run test lint format bench clean

help:
	@echo "make venv    create .venv (Python 3.11) and install requirements-dev.txt (only when they change)"
	@echo "make run     start the portal on embedded defaults: web on 127.0.0.1:\$${PORT:-8000}, Celery worker and beat"
	@echo "make test    run the test suite (needs PostgreSQL and Redis on localhost); PYTEST_ARGS='-k name' passes through"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make format  ruff format and ruff check --fix"
	@echo "make bench   run the backup benchmark (bench/backup_bench.py); BENCH_ARGS passes options"
	@echo "make clean   remove .venv and caches (var/, the local portal state, is kept)"

venv: $(STAMP)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "DR Portal needs Python 3.11 or newer; found " + sys.version.split()[0] + " at " + sys.executable + " (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt
	@touch $@

run:
	@bash scripts/run-dev.sh

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: venv
	$(PY) bench/backup_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
	find . -path ./var -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
