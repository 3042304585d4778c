# ClubCRM — customer intelligence & marketing service.
# GNU make. `make` (or `make help`) lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

GO ?= go
BIN_DIR ?= bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS ?= -X main.version=$(VERSION)

# Tests: keep go's default -p; each test creates its own database.
TEST_TIMEOUT ?= 9m
RACE_TIMEOUT ?= 20m
TESTFLAGS ?=
PKGS ?= ./...

# Benchmark size: smoke, small or large (crmbench's default); BENCH_FLAGS
# passes more, e.g. BENCH_FLAGS='-profile /tmp/prof -only service'.
BENCH_SCALE ?= large
BENCH_FLAGS ?=

# staticcheck, pinned. `go list -m -versions honnef.co/go/tools` lists what the
# module proxy has; v0.8.2 is staticcheck 2026.2.2, the newest release there.
STATICCHECK_VERSION ?= v0.8.2

# Development-only signing key for `make run` (exported only to that target).
CRM_JWT_SECRET ?= dev-secret-change-me
DEV_JWT_SECRET := dev-secret-change-me

.PHONY: help run services migrate migrate-status test test-race bench bench-small lint build clean

help: ## List the targets
	@echo "Usage: make <target>   (default: help)"
	@echo
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-14s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: BENCH_SCALE=$(BENCH_SCALE) STATICCHECK_VERSION=$(STATICCHECK_VERSION) VERSION=$(VERSION)"

services: ## Make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer
	@./.ci/ensure-services

migrate: services ## Create the database if missing and apply migrations (DATABASE_URL)
	$(GO) run ./cmd/crm migrate up

migrate-status: services ## Show which migrations are applied
	$(GO) run ./cmd/crm migrate status

run: export CRM_JWT_SECRET := $(CRM_JWT_SECRET)
run: services ## Migrate, then serve the API on :8080 (all roles) with a dev JWT secret
	$(GO) run ./cmd/crm migrate up
	@if [ "$$CRM_JWT_SECRET" = "$(DEV_JWT_SECRET)" ]; then \
		echo "WARNING: CRM_JWT_SECRET=$(DEV_JWT_SECRET) is a development secret; never use it in production."; \
	fi
	@echo
	@echo "------------------------------------------------------------------------"
	@echo " crm is starting on http://localhost:8080 (CRM_HTTP_ADDR to change)."
	@echo " In another terminal, mint a development token and make a first call:"
	@echo
	@if [ "$$CRM_JWT_SECRET" = "$(DEV_JWT_SECRET)" ]; then \
		echo "   export CRM_JWT_SECRET=$(DEV_JWT_SECRET)"; \
	else \
		echo "   export CRM_JWT_SECRET=...   # the same value this server uses"; \
	fi
	@echo '   TOKEN=$$(go run ./cmd/crm token --tenant demo --roles crm:read,crm:write,crm:admin)'
	@echo '   curl -s -H "Authorization: Bearer $$TOKEN" http://localhost:8080/api/v1/me'
	@echo
	@echo " Unauthenticated: /healthz /readyz /metrics /openapi.json. Ctrl-C stops."
	@echo "------------------------------------------------------------------------"
	@echo
	exec $(GO) run ./cmd/crm serve

test: services ## go vet, then all tests against the local PostgreSQL and Redis
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(TESTFLAGS) $(PKGS)

test-race: services ## All tests with the race detector
	$(GO) test -race -count=1 -timeout $(RACE_TIMEOUT) $(TESTFLAGS) $(PKGS)

bench: export BENCH_SCALE := $(BENCH_SCALE)
bench: services ## Run the benchmark harness (BENCH_SCALE=smoke|small|large, default large; docs/performance.md)
	$(GO) run ./cmd/crmbench $(BENCH_FLAGS)

bench-small: ## Run the benchmark harness at BENCH_SCALE=small (about two minutes)
	@$(MAKE) bench BENCH_SCALE=small

lint: ## gofmt (must list nothing), go vet and staticcheck
	@status=0; \
	echo "gofmt -l ."; \
	unformatted="$$(gofmt -l .)" || status=1; \
	if [ -n "$$unformatted" ]; then \
		echo "These files need gofmt:"; echo "$$unformatted" | sed 's/^/  /'; status=1; \
	fi; \
	echo "$(GO) vet $(PKGS)"; \
	$(GO) vet $(PKGS) || status=1; \
	echo "staticcheck $(STATICCHECK_VERSION) $(PKGS)"; \
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS) || status=1; \
	if [ $$status -ne 0 ]; then echo "lint: FAILED"; else echo "lint: ok"; fi; \
	exit $$status

build: ## Build bin/crm with the version from git describe
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN_DIR)/crm ./cmd/crm

clean: ## Remove build output
	rm -rf $(BIN_DIR)
