# Herald: one Go workspace of several modules. Targets that work on Go code loop over every
# module of the workspace (go list -m), because go vet, golangci-lint, go test and go mod tidy
# all work per module. Run `make` (or `make help`) for the list of targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
# Recursively expanded: only targets that loop over modules pay for go list.
MODULES = $(shell cd $(ROOT) && go list -m -f '{{.Dir}}')
SERVICES := gateway campaign recipient events-ingest worker

# Extra arguments: `make test ARGS='-run TestImport -race'`, `make dev ARGS=...`.
ARGS ?=
# Benchmarks to run: `make bench BENCH=Ingest`.
BENCH ?= .

# in_modules runs the shell command $(1) in every module that has Go packages (go test, vet
# and golangci-lint refuse a module without any); with $(2) = all, in every module. Every
# module runs even when one fails, and the failing ones are listed at the end.
define in_modules
failed=""; \
for dir in $(MODULES); do \
	rel="$${dir#$(ROOT)/}"; \
	if [[ "$(2)" != all && -z "$$(cd "$$dir" && go list -e ./... 2>/dev/null)" ]]; then \
		echo "--> $$rel: no packages, skipped"; \
		continue; \
	fi; \
	echo "==> $$rel"; \
	(cd "$$dir" && { $(1); }) || failed="$$failed $$rel"; \
done; \
if [[ -n "$$failed" ]]; then echo "failed in:$$failed" >&2; exit 1; fi
endef

# test_env exports HERALD_TEST_DATABASE_URL and HERALD_TEST_REDIS_ADDR: as given when both are
# set, else from the local stack, which it starts when needed.
define test_env
if [[ -z "$${HERALD_TEST_DATABASE_URL:-}" || -z "$${HERALD_TEST_REDIS_ADDR:-}" ]]; then \
	bash $(ROOT)/scripts/deps.sh >/dev/null; \
	bash $(ROOT)/scripts/stack.sh start >/dev/null; \
	eval "$$(bash $(ROOT)/scripts/stack.sh env)"; \
fi; \
export HERALD_TEST_DATABASE_URL HERALD_TEST_REDIS_ADDR
endef

# bench_env exports HERALD_TEST_DATABASE_URL and HERALD_TEST_REDIS_ADDR for the benchmarks: the
# benchmark cluster (durable as in production: scripts/stack.sh bench-start), started when
# needed, and the stack's Redis. It ignores the values already set, which name the fast test
# cluster when they come from `scripts/stack.sh env`, and prints the cluster's settings.
define bench_env
bash $(ROOT)/scripts/deps.sh >/dev/null; \
bash $(ROOT)/scripts/stack.sh start >/dev/null; \
bash $(ROOT)/scripts/stack.sh bench-start; \
bench_env="$$(bash $(ROOT)/scripts/stack.sh bench-env)"; \
eval "$$bench_env"; \
echo "bench: Redis $$HERALD_TEST_REDIS_ADDR (the stack's, shared with the tests)"; \
export HERALD_TEST_DATABASE_URL HERALD_TEST_REDIS_ADDR
endef

.PHONY: help
help: ## list the targets
	@echo "usage: make <target> [ARGS=...] [BENCH=...]"
	@echo
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN { FS = ":.*## " } { printf "  %-16s %s\n", $$1, $$2 }'

.PHONY: dev
dev: ## run the whole system locally (PostgreSQL, Redis, migrations, every service)
	@# A built binary, not `go run`: go run exits 1 on Ctrl-C whatever the program returns.
	@mkdir -p .dev/bin && go build -o .dev/bin/devstack ./tools/cmd/devstack
	@exec .dev/bin/devstack $(ARGS)

.PHONY: test
test: ## run every module's tests against PostgreSQL and Redis (ARGS='-run X -race')
	bash scripts/test.sh $(ARGS)

.PHONY: lint
lint: ## buf lint, go vet and golangci-lint in every module, actionlint, migration rules, flag debt
	bash scripts/tools.sh golangci-lint buf actionlint
	bin/buf lint
	go run ./migrations/cmd/migrate lint
	go run ./tools/cmd/flags check
	@$(call in_modules,rc=0; go vet ./... || rc=1; $(ROOT)/bin/golangci-lint run --allow-serial-runners --config $(ROOT)/.golangci.yml ./... || rc=1; exit $$rc)
	bin/actionlint

.PHONY: generate
generate: ## regenerate the code under proto/gen from the contracts
	bash scripts/generate.sh

.PHONY: generate-check
generate-check: ## fail when the generated code is not what the contracts generate
	bash scripts/generate.sh --check

.PHONY: build
build: ## go build every module, and the service binaries into dist/
	@$(call in_modules,go build ./...)
	@mkdir -p dist
	@for name in $(SERVICES); do \
		echo "==> dist/$$name"; \
		CGO_ENABLED=0 go build -trimpath -o dist/$$name ./services/$$name/cmd/$$name; \
	done

.PHONY: images
images: ## build the container images of the services
	bash scripts/images.sh $(ARGS)

.PHONY: migrate
migrate: ## apply the migrations (and, outside production, the seed data) to DATABASE_URL (default: the local stack's database)
	@if [[ -z "$${DATABASE_URL:-}" ]]; then \
		bash scripts/deps.sh >/dev/null; \
		bash scripts/stack.sh start >/dev/null; \
		eval "$$(bash scripts/stack.sh env)"; \
	fi; \
	go run ./migrations/cmd/migrate up

.PHONY: n-minus-1
n-minus-1: ## check the previous release's e2e tests on the current migrations, and that a breaking one fails (ARGS=REF)
	@$(test_env); \
	bash scripts/n-minus-1.sh $(ARGS); \
	cd tools && HERALD_N_MINUS_1=1 go test -count=1 -timeout 20m -run '^TestRenameFailsTheCheck$$' ./nminus1

.PHONY: bench
bench: ## run the benchmarks of every module on a durable PostgreSQL cluster (BENCH=regexp, default all)
	@$(bench_env); \
	$(call in_modules,go test -run '^$$' -bench '$(BENCH)' -benchmem -timeout 60m ./...)

.PHONY: tidy
tidy: ## go mod tidy in every module
	@$(call in_modules,go mod tidy,all)

.PHONY: stack-up
stack-up: ## start the local PostgreSQL and Redis under .dev/ (reused when running)
	bash scripts/stack.sh start

.PHONY: stack-down
stack-down: ## stop the local PostgreSQL and Redis (and the benchmark cluster)
	bash scripts/stack.sh stop

.PHONY: clean
clean: ## remove build output (dist/); keeps bin/ (pinned tools) and the stack's data in .dev/
	rm -rf dist
