# Switchyard — every command a developer needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
# uv is installed into var/tools on first use when it is not on PATH; that directory is
# on PATH (last, so it never shadows python3) for every recipe, so tests that run `uv`
# themselves find it too.
export PATH := $(PATH):$(CURDIR)/var/tools/bin
UV := $(shell command -v uv 2>/dev/null || echo var/tools/bin/uv)
RUN := $(UV) run --frozen

.DEFAULT_GOAL := help
.PHONY: help bootstrap dev test test-unit lint format bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

var/tools/bin/uv:
	@echo "uv not found on PATH; installing it into var/tools"
	$(PYTHON) -m venv var/tools
	var/tools/bin/pip install --quiet uv

bootstrap: $(if $(shell command -v uv 2>/dev/null),,var/tools/bin/uv) ## install Python deps (uv sync)
	$(UV) sync --frozen --all-packages

dev: bootstrap ## start PostgreSQL, Redis, Kafka and all services; API on :8080
	$(RUN) switchyard dev

test: lint ## lint, then the whole suite against real PostgreSQL, Redis and Kafka
	$(RUN) pytest

test-unit: bootstrap ## only the tests that need no servers
	$(RUN) pytest -m "not integration"

lint: bootstrap ## formatting, ruff and mypy strict; fails on any finding
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) mypy shared/src services/*/src devtools/src

format: bootstrap ## apply ruff's formatting and its safe fixes (import order …)
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: bootstrap ## benchmarks; figures go to bench/results.md
	$(RUN) switchyard bench

clean: ## remove dev data (var/) and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
