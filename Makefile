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
# Python keeps each module's bytecode (__pycache__, ignored by git) for every later process to
# read. With PYTHONDONTWRITEBYTECODE set, as some machines and images have it, every process
# compiles again each module it imports: 6 of the 9 s `finplat backtest --help` took here, paid
# again by each service, CLI and test process.
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
BIN := $(VENV)/bin
BUF := tools/buf/node_modules/.bin/buf
# The web page (web/): its npm packages, then its build into web/dist, served by the gateway.
WEB_MODULES := web/node_modules/.installed
WEB_BUILD := web/dist/index.html
WEB_SOURCES := web/build.mjs web/index.html web/docs.html $(wildcard web/src/*)
# grpcurl, for calling the gRPC services by hand and in the e2e tests: built with the machine's
# Go from the Go module proxy (GitHub's release binaries are out of reach), its modules and
# build cache kept under the cache too. src/finplat/platform/grpcurl.py names the same version.
GRPCURL_VERSION := 1.9.4
GRPCURL := $(CACHE_DIR)/tools/grpcurl-$(GRPCURL_VERSION)/grpcurl
GO_CACHE := $(CACHE_DIR)/go
PY_SOURCES := src tests bench examples

.PHONY: help install system-deps generate lint check-generated lint-proto test test-unit \
	test-integration test-cluster up down bench profile

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

$(WEB_MODULES): web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_BUILD): $(WEB_MODULES) $(WEB_SOURCES)
	npm run --prefix web --silent build

# GOTOOLCHAIN=local: build with the installed Go, never fetch another; CGO off: a static binary
# that needs no C compiler; -modcacherw: the cache can be deleted with plain rm -rf. The binary
# is built beside its final place and renamed, so its presence means a finished build.
$(GRPCURL):
	@command -v go >/dev/null || { echo "grpcurl is built with Go: install Go >= 1.25"; exit 1; }
	@echo "[install] grpcurl $(GRPCURL_VERSION), built with Go, into $(dir $(GRPCURL))"
	GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw GOMODCACHE=$(GO_CACHE)/mod \
		GOCACHE=$(GO_CACHE)/build GOBIN=$(dir $(GRPCURL)).partial \
		go install -ldflags '-X main.version=v$(GRPCURL_VERSION)' \
		github.com/fullstorydev/grpcurl/cmd/grpcurl@v$(GRPCURL_VERSION)
	mv $(dir $(GRPCURL)).partial/grpcurl $@
	@rmdir $(dir $(GRPCURL)).partial

install: $(VENV)/.synced $(BUF) $(GRPCURL) $(WEB_BUILD) ## Install the pinned Python dependencies, buf, grpcurl and the web page

# The native stack needs Debian's redis-server and PostgreSQL server, and the alert tests
# promtool; JDKs, Maven, Go and Rust come with the machine
# (`finplat stack up` names whatever is missing). The stack runs PostgreSQL in a cluster of its
# own, so Debian is told not to create (and start) its default cluster on port 5432.
system-deps: ## Install the Debian packages the native stack needs (as root)
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
		echo "[install] postgresql from Debian, without its default cluster"; \
		mkdir -p /etc/postgresql-common/createcluster.d && \
		echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/finplat.conf && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi
	@if ! command -v redis-server >/dev/null; then \
		echo "[install] redis-server from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	fi
	@if ! command -v promtool >/dev/null; then \
		echo "[install] promtool from Debian (package prometheus)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends prometheus; \
	fi
	@if ! command -v chromium >/dev/null; then \
		echo "[install] chromium from Debian (the browser test of the web page)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
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

lint: install lint-proto check-generated ## ruff, mypy, import direction, buf and freshness checks
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy
	$(BIN)/mypy bench/*.py
	$(BIN)/mypy examples/*/*.py
	$(BIN)/lint-imports --no-cache
	npm run --prefix web --silent check

test-unit: install system-deps ## Unit tests only (no stack; promtool and small local servers)
	$(BIN)/pytest tests/unit

test-integration: install system-deps ## Integration tests (starts the stack unless it runs)
	$(BIN)/pytest tests/integration

test: lint system-deps ## lint, type checks, freshness, unit and integration tests (the single-node stack)
	$(BIN)/pytest

# The scale-out: several instances on the default stack's PostgreSQL, and a stack of its own
# beside the default one (3 Kafka nodes on ports 29092..), started once for the session and
# stopped after. Apart from `make test`, whose time the single-node default keeps.
test-cluster: install system-deps ## Scale-out tests: several instances on PostgreSQL, a 3-node Kafka cluster they start (CI runs them after `make test`)
	$(BIN)/pytest -m "cluster or scaleout" tests/integration

bench: install system-deps ## Benchmarks: each prints a table beside a peer measured in the same run
	$(BIN)/finplat stack up
	$(BIN)/python bench/backtest_bench.py
	$(BIN)/python bench/sweep_bench.py
	$(BIN)/python bench/portfolio_bench.py
	$(BIN)/python bench/walk_forward_bench.py
	$(BIN)/python bench/price_decode_bench.py
	$(BIN)/python bench/price_bench.py
	$(BIN)/python bench/price_bench.py --section stream --client go
	$(BIN)/python bench/price_bench.py --section stream --client go --server-cpus 0
	$(BIN)/python bench/price_bench.py --section stream --client go --go-window 1048576
	$(BIN)/python bench/consumer_bench.py
	$(BIN)/python bench/cluster_bench.py
	$(BIN)/python bench/kafka_security_bench.py
	$(BIN)/python bench/gateway_bench.py

profile: install system-deps ## Flame graphs (SVG) of the price service under the ingest bench and of the consumer under its bench, in var/profiles
	$(BIN)/finplat stack up
	mkdir -p var/profiles
	$(BIN)/py-spy record --rate 250 --format flamegraph -o var/profiles/price-ingest.svg -- \
		$(BIN)/python bench/price_bench.py --section ingest --mix trade
	$(BIN)/py-spy record --rate 500 --format flamegraph -o var/profiles/consumer.svg -- \
		$(BIN)/python bench/consumer_bench.py

up: install system-deps ## Run the whole platform (stack, replay feed, services, gateway) until Ctrl-C
	$(BIN)/finplat up

down: install ## Stop whatever `make up` (or `finplat up --detach`) left running, then the stack
	$(BIN)/finplat down
