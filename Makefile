# Targets: test (everything CI runs), unit, e2e, bench, fuzz, lint, collector.
GO        ?= go
PKGS      := ./...
# Packages whose tests start real peers (Prometheus, an OTel Collector).
E2E_PKGS  := ./exporters/... ./internal/testpeer/...
FUZZTIME  ?= 3s

.PHONY: test unit e2e bench bench-smoke fuzz fuzz-smoke lint collector quickstart

## test: lint, every test with -race (real Prometheus and Collector included),
## a smoke run of the benchmarks and of each fuzz target.
test: lint collector
	$(GO) test -race -count=1 $(PKGS)
	$(MAKE) bench-smoke fuzz-smoke

## unit: the fast tests, no peers.
unit:
	$(GO) test -race -short -count=1 $(PKGS)

## e2e: only the packages whose tests run against real servers.
e2e: collector
	$(GO) test -race -count=1 $(E2E_PKGS)

## collector: build the test OpenTelemetry Collector (cached by its go.sum).
collector:
	bash .ci/build-collector.sh

## bench-smoke: every benchmark once at a tiny benchtime; not a timing.
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime=100x -short $(PKGS)

## fuzz-smoke / fuzz: each fuzz target for a bounded time.
fuzz-smoke:
	$(MAKE) fuzz FUZZTIME=2s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## lint: gofmt and go vet.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## quickstart: the embedded default.
quickstart:
	$(GO) run ./examples/quickstart
