# Waybill. `make run` to try it, `make test` to test it. `make help` lists the rest.
GO        ?= go
SQLC      ?= $(shell command -v sqlc 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/sqlc)
SQLC_VERSION := v1.31.1
BIN       := bin/waybill

.PHONY: help build run demo test fuzz check generate sqlc-install fmt vet sqlc-check mermaid-check ops-check ensure-postgres bench clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/waybill
	$(GO) build -o $(BIN) ./cmd/waybill

run: build ensure-postgres ## run Waybill locally: Postgres, migrations, sandbox carrier, River UI
	$(BIN) dev

N ?= 20

demo: build ## insert N sample orders (default 20) into the running `make run` (run it in another terminal)
	$(BIN) demo $(N)

FUZZTIME ?= 5s

test: ensure-postgres ## run every test against a real Postgres (started or installed if needed), fuzz briefly, print a summary
	@FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/test.sh

fuzz: ## run every fuzz target for FUZZTIME each (seed corpora already run in `go test`)
	@FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/test.sh --fuzz-only

BENCH_FLAGS ?= -mode all

bench: ensure-postgres ## measure: 3000 orders/s end to end, backlog drain, webhook intake (see BENCHMARKS.md)
	$(GO) run ./cmd/waybill-bench $(BENCH_FLAGS)

check: fmt vet sqlc-check mermaid-check ops-check ## what CI checks besides tests

MERMAID_CHECK := ../shared/tools/mermaid-check

# Every mermaid block in the Markdown renders with mermaid's own CLI (installs it on first use).
mermaid-check:
	@test -x $(MERMAID_CHECK) || { echo "mermaid-check: $(MERMAID_CHECK) is missing (it comes with the shared/ folder beside this repo)"; exit 1; }
	$(MERMAID_CHECK) $$(git ls-files '*.md' | xargs grep -l '^```mermaid')

# Prometheus rules (promtool: syntax and unit tests) and the Grafana dashboard (schema).
ops-check:
	@scripts/check-ops-assets.sh

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

sqlc-install:
	@test -x "$(SQLC)" || { echo "installing sqlc $(SQLC_VERSION) (a few minutes, once)"; GOFLAGS= $(GO) install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION); }

generate: sqlc-install ## regenerate internal/dbsqlc from db/queries
	$(SQLC) generate

sqlc-check: sqlc-install
	$(SQLC) diff

ensure-postgres:
	@scripts/ensure-postgres.sh

clean:
	rm -rf bin .waybill
