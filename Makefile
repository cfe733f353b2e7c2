# Targets: test (everything CI runs), unit, e2e, bench, fuzz, lint, collector.
GO        ?= go
PKGS      := ./...
# Packages whose tests start real peers (Prometheus, an OTel Collector).
E2E_PKGS  := ./exporters/... ./internal/testpeer/... ./docs/... ./otelcollector/fleet/...
FUZZTIME  ?= 3s
# Test binaries run at once. More than the cores: the end-to-end packages
# spend most of their time waiting on their peers (scrape intervals).
TEST_P    ?= 4
# Modules of their own under internal/ (test-only peers): linted on their own,
# never part of ./... .
SUBMODULES := $(patsubst %/go.mod,%,$(shell git ls-files '*/go.mod'))

.PHONY: test test-go test-go-examples test-grafanacheck test-background unit e2e bench bench-stats bench-smoke fuzz fuzz-smoke lint collector quickstart rules-mutate fleet-scale

## test: lint, every test with -race (real Prometheus and Collector included),
## a smoke run of the benchmarks and of each fuzz target, and the rules'
## mutation check. The steps are independent and run at once (TEST_JOBS of
## them; each one's output is printed whole when it ends): the end-to-end
## tests spend most of their time waiting on their peers, and the other
## steps use the cores meanwhile. go test's own vet pass is off where lint
## has already run the whole of go vet.
## The checks that only use CPU (fuzzing, the benchmarks' smoke run, the
## rules' mutants) run at a lower priority, so that the end-to-end tests,
## the longest path, get a core when their peers answer.
TEST_JOBS ?= 6
test: collector
	$(MAKE) -j$(TEST_JOBS) --output-sync=target test-go test-go-examples lint test-grafanacheck test-background

test-background:
	nice -n 10 $(MAKE) -j$(if $(filter 1,$(TEST_JOBS)),1,3) --output-sync=target rules-mutate fuzz-smoke bench-smoke

## test-go: every package's tests with -race (test-go-examples: those of
## examples/). TEST_PARALLEL parallel tests per package, more than the
## cores: the end-to-end ones mostly wait.
## The test binaries are kept in TEST_BIN (go test -o): go test links a
## package's test binary again only when it is out of date, where without
## -o every run links every one (about 25 CPU-s with -race here). -o wants
## a name per package: examples/fleet and examples/otlp share theirs with
## otelcollector/fleet and exporters/otlp, so the examples have a step and
## a directory of their own.
TEST_PARALLEL ?= 4
TEST_BIN      ?= $(CURDIR)/.cache/test
test-go:
	@mkdir -p $(TEST_BIN)/race
	$(GO) test -race -count=1 -p $(TEST_P) -parallel $(TEST_PARALLEL) -vet=off -o $(TEST_BIN)/race/ $$($(GO) list $(PKGS) | grep -v '/examples/')
test-go-examples:
	@mkdir -p $(TEST_BIN)/race-examples
	$(GO) test -race -count=1 -p $(TEST_P) -parallel $(TEST_PARALLEL) -vet=off -o $(TEST_BIN)/race-examples/ ./examples/...

## test-grafanacheck: the dashboard checks, a module of its own.
test-grafanacheck:
	@mkdir -p $(TEST_BIN)/grafanacheck
	cd internal/grafanacheck && $(GO) vet ./... && $(GO) test -race -count=1 -o $(TEST_BIN)/grafanacheck/ ./...

## unit: the fast tests, no peers.
unit:
	$(GO) test -race -short -count=1 $(PKGS)

## e2e: only the packages whose tests run against real servers.
e2e: collector
	$(GO) test -race -count=1 -p $(TEST_P) $(E2E_PKGS)

## collector: build the test OpenTelemetry Collector (cached by its go.sum).
collector:
	bash .ci/build-collector.sh

## bench: the otelcollector benchmark suite side by side with client_golang
## and the raw OTel SDK (docs/benchmarks.md). The test binary is built once
## and run BENCH_COUNT times, one whole round after another, so that the
## implementations compared are interleaved in time; then benchstat, with a
## column per implementation. BENCH_LARGE=1 adds the 10000 and 100000 series
## scrape sizes. Raw results are kept in BENCH_OUT.
BENCH       ?= ^Benchmark(RecordTokenUsage|RecordMessageLatency|RecordToolInvocation|RecordSession|Scrape|Collect|MemoryPerSeries|MemoryPerLatencySeries)$$
BENCH_COUNT ?= 6
BENCH_TIME  ?= 0.5s
BENCH_LARGE ?= 1
BENCH_OUT   ?= $(or $(TMPDIR),/tmp)/orchestrator-otel-bench.out
BENCHSTAT   ?= $(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
bench:
	$(GO) test -c -o $(BENCH_OUT).test ./otelcollector
	rm -f $(BENCH_OUT)
	cd otelcollector && for i in $$(seq $(BENCH_COUNT)); do \
	  echo "round $$i of $(BENCH_COUNT)" >&2; \
	  BENCH_LARGE=$(BENCH_LARGE) $(BENCH_OUT).test -test.run '^$$' -test.bench '$(BENCH)' \
	    -test.benchmem -test.benchtime $(BENCH_TIME) -test.count 1 >> $(BENCH_OUT) || exit 1; \
	done
	rm -f $(BENCH_OUT).test
	$(BENCHSTAT) -col /impl $(BENCH_OUT)

## bench-stats: the AggregatedStats benchmarks (docs/benchmarks.md, Aggregated
## stats): a window ending now with recorders running, one sampler step's
## CPU, windows in the past, the history's memory (a day of tiers, built
## without the SDK in internal/stats). BENCH_COUNT rounds, interleaved.
BENCH_STATS ?= ^Benchmark(AggregatedStatsNow|StatsSampleCPU|AggregatedStats|StatsMemory)$$
bench-stats:
	$(GO) test -c -o $(BENCH_OUT).stats.test ./otelcollector
	rm -f $(BENCH_OUT).stats
	cd otelcollector && for i in $$(seq $(BENCH_COUNT)); do \
	  echo "round $$i of $(BENCH_COUNT)" >&2; \
	  $(BENCH_OUT).stats.test -test.run '^$$' -test.bench '$(BENCH_STATS)' \
	    -test.benchmem -test.benchtime 50x -test.count 1 >> $(BENCH_OUT).stats || exit 1; \
	done
	rm -f $(BENCH_OUT).stats.test
	$(GO) test -run '^$$' -bench '^BenchmarkTiersMemory$$' -benchtime 1x ./internal/stats >> $(BENCH_OUT).stats
	cat $(BENCH_OUT).stats

## bench-smoke: every benchmark and sub-benchmark run once (b.N = 1); not a
## timing. It covers exactly the statements that 100x did (compared with
## -coverpkg=./...), in a third of the time.
## Only the packages that have benchmarks: go test would build and link a
## test binary for every other package only to run nothing.
BENCH_PKGS = $(addprefix ./,$(sort $(dir $(shell git grep -l '^func Benchmark' -- '*_test.go' $(addprefix ':!',$(SUBMODULES))))))
bench-smoke:
	@mkdir -p $(TEST_BIN)/bench
	$(GO) test -vet=off -run '^$$' -bench . -benchtime=1x -short -o $(TEST_BIN)/bench/ $(BENCH_PKGS)

## fuzz-smoke / fuzz: each fuzz target for a bounded time, with FUZZ_WORKERS
## workers (default: one per CPU). The smoke run uses one worker: it checks
## that every target fuzzes (seeds, corpus, mutator) for 2 s of wall time,
## at half the CPU of two workers, whose executions make test's other steps
## would compete with for the same two cores anyway.
## Each package's fuzz test binary is built into FUZZ_BIN (go test -c
## -fuzz; not linked again while it is up to date) and run for each of its
## targets in the package's directory, with go test's own fuzz cache
## directory: go test -fuzz links the binary again for every target, each
## time. A failing input is written to the package's testdata/fuzz/ as
## with go test.
## Go 1.26's fuzzing coordinator can end a duration-bounded run with a bare
## "context deadline exceeded" failure when its deadline races a busy
## worker (go.dev/issue/75804, fixed in Go 1.27): such a run, with no
## failing input written, is run once more; any other failure fails.
FUZZ_WORKERS ?=
FUZZ_BIN     ?= $(CURDIR)/.cache/fuzz
fuzz-smoke:
	$(MAKE) fuzz FUZZTIME=2s FUZZ_WORKERS=1
fuzz:
	@set -e; mkdir -p $(FUZZ_BIN); cache=$$($(GO) env GOCACHE)/fuzz; built=; \
	for file in $$(git grep -l '^func Fuzz' -- '*_test.go' $(addprefix ':!',$(SUBMODULES))); do \
	  pkg=./$$(dirname $$file); \
	  bin=$(FUZZ_BIN)/$$(echo "$${pkg#./}" | tr / _).test; \
	  case " $$built " in *" $$pkg "*) ;; *) $(GO) test -c -vet=off -fuzz . -o "$$bin" $$pkg; built="$$built $$pkg";; esac; \
	  dir=$$cache/$$($(GO) list $$pkg); \
	  for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
	    for try in 1 2; do \
	      echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	      if (cd $$pkg && "$$bin" -test.paniconexit0 -test.timeout 10m -test.fuzzcachedir "$$dir" \
	        -test.run '^$$' -test.fuzz "^$$target$$" -test.fuzztime $(FUZZTIME) $(if $(FUZZ_WORKERS),-test.parallel $(FUZZ_WORKERS))) > $(FUZZ_BIN)/out 2>&1; \
	      then cat $(FUZZ_BIN)/out; break; fi; \
	      cat $(FUZZ_BIN)/out; \
	      if [ $$try = 1 ] && grep -q '^    context deadline exceeded$$' $(FUZZ_BIN)/out && ! grep -q 'Failing input written' $(FUZZ_BIN)/out; then \
	        echo "fuzz $$target: the fuzzing coordinator's deadline race (go.dev/issue/75804, fixed in Go 1.27), no input failed: once more"; \
	      else exit 1; fi; \
	    done; \
	  done; \
	done

## lint: gofmt, go vet and staticcheck (pinned) over the main module, then
## go vet and staticcheck over each module of its own (internal/testcollector).
## A finding silenced in the code carries a //lint:ignore with its reason.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)
	@set -e; for m in $(SUBMODULES); do \
	  echo "lint $$m (a module of its own)"; \
	  (cd $$m && GOWORK=off $(GO) vet ./... && GOWORK=off $(STATICCHECK) ./...); \
	done

## rules-mutate: change each alert of docs/prometheus/rules.yml (its for
## lengthened by half, each threshold raised by half, > made >=, each window
## and offset halved) and fail if promtool test rules still passes.
RULES_TESTS := docs/prometheus/rules_test.yml docs/prometheus/rules_long_test.yml
rules-mutate:
	$(GO) run ./docs/prometheus/mutate docs/prometheus/rules.yml $(RULES_TESTS)

## quickstart: the embedded default.
quickstart:
	$(GO) run ./examples/quickstart

## fleet-scale: the fleet client's scale goals against backfilled Prometheus
## (docs/benchmarks.md, Fleet); minutes and several hundred MiB of disk.
fleet-scale:
	FLEET_SCALE=1 $(GO) test -count=1 -v -timeout 60m -run '^TestFleetScale$$' ./otelcollector/fleet/
