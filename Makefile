# The same few commands locally and in CI. Downloads and builds are cached outside the clone,
# keyed by version, so a fresh clone reuses them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE_DIR ?= $(HOME)/.cache/finplat
UV_VERSION := 0.13.8
UV := $(CACHE_DIR)/tools/uv-$(UV_VERSION)/bin/uv
export UV_CACHE_DIR := $(CACHE_DIR)/uv
export UV_PYTHON_DOWNLOADS := never
export npm_config_cache := $(CACHE_DIR)/npm
VENV := .venv
BIN := $(VENV)/bin
BUF := tools/buf/node_modules/.bin/buf
PY_SOURCES := src tests

.PHONY: help install system-deps generate lint check-generated lint-proto test test-unit \
	test-integration up down bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	@echo "[install] uv $(UV_VERSION) into $(dir $(UV))"
	python3 -m venv $(CACHE_DIR)/tools/uv-$(UV_VERSION)
	$(CACHE_DIR)/tools/uv-$(UV_VERSION)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-groups --python python3.11
	@touch $@

$(BUF): tools/buf/package.json tools/buf/package-lock.json
	npm ci --prefix tools/buf --no-audit --no-fund --loglevel=error
	@touch $@

install: $(VENV)/.synced $(BUF) ## Install the pinned Python dependencies and buf

# The native stack needs Debian's redis-server and the alert tests promtool; JDKs, Maven,
# Go and Rust come with the machine
# (`finplat stack up` names whatever is missing).
system-deps: ## Install the Debian packages the native stack needs (as root)
	@if ! command -v redis-server >/dev/null; then \
		echo "[install] redis-server from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	fi
	@if ! command -v promtool >/dev/null; then \
		echo "[install] promtool from Debian (package prometheus)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends prometheus; \
	fi

generate: install ## Regenerate src/finance and schemas/ from proto/
	$(BIN)/finplat proto generate
	$(BIN)/finplat schemas generate

check-generated: install ## Fail when generated code or Avro schemas are stale
	$(BIN)/finplat proto generate --check
	$(BIN)/finplat schemas generate --check
	$(BIN)/finplat settings-doc --check

lint-proto: install ## buf lint, format and breaking-change check
	$(BUF) lint
	$(BUF) format --diff --exit-code --path proto/finance
	scripts/buf-breaking.sh $(BUF)

lint: install lint-proto check-generated ## ruff, mypy, buf and freshness checks
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy

test-unit: install ## Unit tests only (no servers)
	$(BIN)/pytest tests/unit

test-integration: install system-deps ## Integration tests (starts the stack unless it runs)
	$(BIN)/pytest tests/integration

test: lint system-deps ## Everything CI runs: lint, type checks, freshness, unit and integration tests
	$(BIN)/pytest

bench: install system-deps ## Benchmarks: each prints a table beside a peer measured in the same run
	$(BIN)/finplat stack up
	$(BIN)/python bench/backtest_bench.py
	$(BIN)/python bench/price_decode_bench.py
	$(BIN)/python bench/price_bench.py
	$(BIN)/python bench/consumer_bench.py
	$(BIN)/python bench/gateway_bench.py

up: install system-deps ## Run the whole platform (stack, replay feed, services, gateway) until Ctrl-C
	$(BIN)/finplat up

down: install ## Stop whatever `make up` (or `finplat up --detach`) left running, then the stack
	$(BIN)/finplat down
