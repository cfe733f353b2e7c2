package otelcollector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/wundr-io/orchestrator-otel/exporters/otlp"
	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// Regression tests of issue 10's defects; each failed before its fix.

// TestBindingTakesNoSlot (defect 1): binding handles takes no cardinality
// slot; only a record does, in both counter modes.
func TestBindingTakesNoSlot(t *testing.T) {
	for _, mode := range counterModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			c, _ := newTestCollector(t, append(mode.opts, otelcollector.WithCardinalityLimit(3))...)
			o, err := c.Orchestrator("a")
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{"m1", "m2", "m3"} {
				if _, err := o.Model(m); err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range []string{"s1", "s2", "s3"} {
				if _, err := o.SessionType(s); err != nil {
					t.Fatal(err)
				}
				if _, err := o.ErrorType(s); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range []string{"b", "c", "d"} {
				if _, err := c.Orchestrator(id); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.RecordTokenUsage(ctx, "b", "m", 5); err != nil {
				t.Fatal(err)
			}
			if err := c.RecordTokenUsage(ctx, "c", "m", 5); err != nil {
				t.Fatal(err)
			}
			_ = c.RecordSessionStart(ctx, "b", "s")
			_ = c.RecordError(ctx, "b", "e")
			_ = c.RecordMessageLatency(ctx, "x", time.Second)
			_ = c.RecordMessageLatency(ctx, "y", time.Second)
			if n := c.Overflowed(); n != 0 {
				t.Fatalf("Overflowed() = %d after binding only; want 0", n)
			}
			// A bad label still fails at bind time.
			if _, err := o.Model(""); !errors.Is(err, otelcollector.ErrInvalidLabel) {
				t.Fatalf("Model(\"\") = %v", err)
			}
		})
	}
}

// TestSessionEndPastLimit (defect 2) pins the documented rule: past the
// cardinality limit every session tuple shares the overflow series, so an
// end for an overflowed tuple is accepted while the overflow series has an
// active session, and rejected when it has none; a tuple with a series of
// its own is checked exactly.
func TestSessionEndPastLimit(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestCollector(t, otelcollector.WithCardinalityLimit(2))
	if err := c.RecordSessionStart(ctx, "own", "s"); err != nil { // the one series of its own
		t.Fatal(err)
	}
	if err := c.RecordSessionEnd(ctx, "never-started", "s"); !errors.Is(err, otelcollector.ErrInvalidValue) {
		t.Fatalf("end of a never-started overflowed tuple with no overflowed session active: %v", err)
	}
	if err := c.RecordSessionStart(ctx, "over-1", "s"); err != nil {
		t.Fatal(err)
	}
	// The documented loss of detail: the overflow series has one active
	// session, so an end of another overflowed tuple is accepted.
	if err := c.RecordSessionEnd(ctx, "over-2", "s"); err != nil {
		t.Fatalf("end of an overflowed tuple while the overflow series has a session: %v", err)
	}
	if err := c.RecordSessionEnd(ctx, "over-1", "s"); !errors.Is(err, otelcollector.ErrInvalidValue) {
		t.Fatalf("end with no overflowed session left: %v", err)
	}
	if err := c.RecordSessionEnd(ctx, "own", "s"); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordSessionEnd(ctx, "own", "s"); !errors.Is(err, otelcollector.ErrInvalidValue) {
		t.Fatalf("second end of an own series: %v", err)
	}
}

// TestFailedNewShutsDownExporters (defect 4): a New that fails releases
// the exporters it was handed, so their port is free again.
func TestFailedNewShutsDownExporters(t *testing.T) {
	exp, err := prometheus.New(prometheus.WithServer("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := exp.Addr()
	if _, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp), otelcollector.WithCardinalityLimit(0)); !errors.Is(err, otelcollector.ErrInvalidOption) {
		t.Fatalf("New with an invalid option: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = exp.Shutdown(context.Background())
		t.Fatalf("the exporter's port %s is still bound after the failed New: %v", addr, err)
	}
	_ = ln.Close()
}

// TestTypedNilExporter (defect 5): a typed-nil exporter or reader is an
// invalid option, and a nil *Collector returns ErrNilHandle everywhere.
func TestTypedNilExporter(t *testing.T) {
	ctx := context.Background()
	var exp *prometheus.Exporter
	if _, err := otelcollector.New(ctx, otelcollector.WithExporter(exp)); !errors.Is(err, otelcollector.ErrInvalidOption) {
		t.Fatalf("typed-nil exporter: %v", err)
	}
	var rdr *sdkmetric.ManualReader
	if _, err := otelcollector.New(ctx, otelcollector.WithReader(rdr)); !errors.Is(err, otelcollector.ErrInvalidOption) {
		t.Fatalf("typed-nil reader: %v", err)
	}
	var c *otelcollector.Collector
	for name, err := range map[string]error{
		"RecordSessionStart":       c.RecordSessionStart(ctx, "o", "s"),
		"RecordSessionEnd":         c.RecordSessionEnd(ctx, "o", "s"),
		"RecordTokenUsage":         c.RecordTokenUsage(ctx, "o", "m", 1),
		"RecordTokenUsageDetailed": c.RecordTokenUsageDetailed(ctx, "o", otelcollector.TokenUsage{Model: "m"}),
		"RecordMessageLatency":     c.RecordMessageLatency(ctx, "o", time.Second),
		"RecordToolInvocation":     c.RecordToolInvocation(ctx, "o", "t", otelcollector.ToolSuccess),
		"RecordDelegation":         c.RecordDelegation(ctx, "o", "p", otelcollector.DelegationSuccess),
		"RecordError":              c.RecordError(ctx, "o", "e"),
		"UpdateNodeLoad":           c.UpdateNodeLoad("n", 0.5),
		"UpdateBudgetUtilization":  c.UpdateBudgetUtilization("o", otelcollector.PeriodDaily, 1),
		"ForgetOrchestrator":       c.ForgetOrchestrator("o"),
		"Flush":                    c.Flush(ctx),
		"Close":                    c.Close(ctx),
	} {
		if !errors.Is(err, otelcollector.ErrNilHandle) {
			t.Errorf("nil Collector %s = %v, want ErrNilHandle", name, err)
		}
	}
	if _, err := c.Orchestrator("o"); !errors.Is(err, otelcollector.ErrNilHandle) {
		t.Errorf("nil Collector Orchestrator = %v", err)
	}
	if _, err := c.AggregatedStats(ctx, "o", otelcollector.Last(time.Minute)); !errors.Is(err, otelcollector.ErrNilHandle) {
		t.Errorf("nil Collector AggregatedStats = %v", err)
	}
	c.ForgetNode("n")
	c.ForgetBudget("o", otelcollector.PeriodDaily)
	if c.Rejected() != 0 || c.Overflowed() != 0 {
		t.Error("nil Collector counts")
	}
	if _, err := otelcollector.WithMetrics(ctx, c, "o", func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Errorf("WithMetrics with a nil Collector: %v", err)
	}
}

// TestSharedExporterRejected (defect 6): an exporter or reader already
// used by a Collector is rejected by a second New, and the first keeps
// working.
func TestSharedExporterRejected(t *testing.T) {
	ctx := context.Background()
	exp, err := prometheus.New()
	if err != nil {
		t.Fatal(err)
	}
	rdr := sdkmetric.NewManualReader()
	c1, err := otelcollector.New(ctx, otelcollector.WithExporter(exp), otelcollector.WithReader(rdr))
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close(ctx)
	if c2, err := otelcollector.New(ctx, otelcollector.WithExporter(exp)); !errors.Is(err, otelcollector.ErrInvalidOption) {
		if c2 != nil {
			_ = c2.Close(ctx)
		}
		t.Fatalf("second New with the same exporter: %v", err)
	}
	if c2, err := otelcollector.New(ctx, otelcollector.WithReader(rdr)); !errors.Is(err, otelcollector.ErrInvalidOption) {
		if c2 != nil {
			_ = c2.Close(ctx)
		}
		t.Fatalf("second New with the same reader: %v", err)
	}
	if _, err := otelcollector.New(ctx, otelcollector.WithReader(rdr), otelcollector.WithReader(rdr)); !errors.Is(err, otelcollector.ErrInvalidOption) {
		t.Fatalf("one reader given twice: %v", err)
	}
	_ = c1.RecordTokenUsage(ctx, "o", "m", 3)
	rec := httptest.NewRecorder()
	exp.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `orchestrator_tokens_used_total{model="m",orchestrator_id="o"} 3`) {
		t.Fatalf("first Collector's scrape after the rejected New: HTTP %d\n%s", rec.Code, rec.Body)
	}
	if v, _ := intValue(collect(t, rdr)["orchestrator.tokens.used"], set("orchestrator_id", "o", "model", "m")); v != 3 {
		t.Fatalf("first Collector's reader: tokens = %d", v)
	}
	// Once c1 is closed, the reader's exporter may not be reused either
	// (the SDK's readers cannot be registered twice), but the error must
	// still be the option error, not a silent half-working Collector.
}

// otlpReceiver is an OTLP/HTTP receiver that sums the tokens it receives.
type otlpReceiver struct {
	mu     sync.Mutex
	tokens int64
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var m colmetricspb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(body, &m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var n int64
	for _, rm := range m.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, mm := range sm.GetMetrics() {
				if mm.GetName() != "orchestrator.tokens.used" {
					continue
				}
				for _, dp := range mm.GetSum().GetDataPoints() {
					n += dp.GetAsInt()
				}
			}
		}
	}
	r.mu.Lock()
	r.tokens = max(r.tokens, n) // cumulative: the latest export holds the total
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&colmetricspb.ExportMetricsServiceResponse{})
	_, _ = w.Write(out)
}

// TestCloseWithCancelledContext (defect 7): Close with an already-done
// context, as `defer c.Close(ctx)` with a signal context gives, still
// delivers the final export, under a short deadline of its own.
func TestCloseWithCancelledContext(t *testing.T) {
	recv := &otlpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	exp, err := otlp.New(context.Background(), otlp.WithProtocol(otlp.ProtocolHTTP),
		otlp.WithEndpointURL(srv.URL+"/v1/metrics"), otlp.WithInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		_ = c.RecordTokenUsage(ctx, "o", "m", 1)
	}
	cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close with a cancelled context: %v", err)
	}
	recv.mu.Lock()
	got := recv.tokens
	recv.mu.Unlock()
	if got != 1000 {
		t.Fatalf("receiver got %d of 1000 tokens", got)
	}
}

// hangingExporter's Shutdown ignores ctx and blocks until released.
type hangingExporter struct {
	r       *sdkmetric.ManualReader
	release chan struct{}
}

func (h *hangingExporter) Reader() sdkmetric.Reader { return h.r }
func (h *hangingExporter) Shutdown(context.Context) error {
	<-h.release
	return nil
}

// failingExporter's Shutdown fails.
type failingExporter struct{ r *sdkmetric.ManualReader }

func (f failingExporter) Reader() sdkmetric.Reader { return f.r }
func (f failingExporter) Shutdown(context.Context) error {
	return errors.New("connection reset")
}

// TestCloseBoundedByDeadline (defect 8, and 7's "every Close error names
// the exporter and the cause"): an exporter whose Shutdown hangs does not
// hold Close past its deadline, and the error names it.
func TestCloseBoundedByDeadline(t *testing.T) {
	h := &hangingExporter{r: sdkmetric.NewManualReader(), release: make(chan struct{})}
	defer close(h.release)
	c, err := otelcollector.New(context.Background(),
		otelcollector.WithExporter(h), otelcollector.WithExporter(failingExporter{sdkmetric.NewManualReader()}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Close(ctx) }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Close did not return although its context's deadline passed")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close error %v does not wrap the deadline", err)
	}
	for _, want := range []string{"hangingExporter", "failingExporter", "connection reset"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Close error %v does not name %q", err, want)
		}
	}
}

// TestTokenCounterSaturates (defect 12): a record that would take a token
// series past MaxInt64 is rejected and counted; the series keeps its value
// instead of wrapping negative, in both counter modes.
func TestTokenCounterSaturates(t *testing.T) {
	for _, mode := range counterModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			c, r := newTestCollector(t, mode.opts...)
			if err := c.RecordTokenUsage(ctx, "o", "m", math.MaxInt64-10); err != nil {
				t.Fatal(err)
			}
			if err := c.RecordTokenUsage(ctx, "o", "m", 11); !errors.Is(err, otelcollector.ErrInvalidValue) {
				t.Fatalf("record past MaxInt64: %v", err)
			}
			o, _ := c.Orchestrator("o")
			m, _ := o.Model("m")
			if err := m.Add(ctx, math.MaxInt64); !errors.Is(err, otelcollector.ErrInvalidValue) {
				t.Fatalf("handle record past MaxInt64: %v", err)
			}
			if err := m.Add(ctx, 10); err != nil {
				t.Fatalf("record up to MaxInt64: %v", err)
			}
			if v, _ := intValue(collect(t, r)["orchestrator.tokens.used"], set("orchestrator_id", "o", "model", "m")); v != math.MaxInt64 {
				t.Fatalf("tokens = %d, want MaxInt64", v)
			}
			if c.Rejected() != 2 {
				t.Fatalf("Rejected() = %d, want 2", c.Rejected())
			}
			if v, _ := intValue(collect(t, r)["orchestrator.collector.rejected"], set("reason", "value_overflow")); v != 2 {
				t.Fatalf("rejected{reason=value_overflow} = %d, want 2", v)
			}
		})
	}
}

// TestGenAIOverflowReason (defect 13): Input+Output beyond int64 is
// rejected with its own reason, not out_of_range.
func TestGenAIOverflowReason(t *testing.T) {
	ctx := context.Background()
	c, r := newTestCollector(t, otelcollector.WithGenAIMetrics())
	err := c.RecordTokenUsageDetailed(ctx, "o", otelcollector.TokenUsage{Model: "m", Input: math.MaxInt64, Output: 1})
	if !errors.Is(err, otelcollector.ErrInvalidValue) {
		t.Fatal(err)
	}
	ms := collect(t, r)["orchestrator.collector.rejected"]
	if v, _ := intValue(ms, set("reason", "out_of_range")); v != 0 {
		t.Errorf("rejected{reason=out_of_range} = %d, want 0", v)
	}
	if v, _ := intValue(ms, set("reason", "value_overflow")); v != 1 {
		t.Errorf("rejected{reason=value_overflow} = %d, want 1", v)
	}
}

// TestBackgroundErrorsGoToLogger (issue 10 item 11, library side): the
// errors of WithMetrics and httpmetrics go to the Collector's logger,
// rate-limited, and never to the global otel.Handle unless asked.
func TestBackgroundErrorsGoToLogger(t *testing.T) {
	var global []error
	var mu sync.Mutex
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		global = append(global, err)
		mu.Unlock()
	}))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })

	var buf strings.Builder
	var bufMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{&buf, &bufMu}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	c, _ := newTestCollector(t, otelcollector.WithLogger(logger))
	for range 100 {
		_, _ = otelcollector.WithMetrics(ctx, c, "", func(context.Context) (int, error) { return 0, nil })
	}
	mu.Lock()
	n := len(global)
	mu.Unlock()
	if n != 0 {
		t.Errorf("otel.Handle got %d errors; want 0 (the Collector has a logger)", n)
	}
	bufMu.Lock()
	out := buf.String()
	bufMu.Unlock()
	if lines := strings.Count(out, "\n"); lines < 1 || lines > 2 {
		t.Errorf("logger got %d lines for 100 identical errors; want 1 or 2 (rate-limited):\n%s", lines, out)
	}
	if !strings.Contains(out, "WithMetrics") || !strings.Contains(out, "invalid label") {
		t.Errorf("log does not say what failed:\n%s", out)
	}

	// Asking for the global handler routes the errors there.
	c2, _ := newTestCollector(t, otelcollector.WithErrorHandler(otel.Handle))
	_, _ = otelcollector.WithMetrics(ctx, c2, "", func(context.Context) (int, error) { return 0, nil })
	mu.Lock()
	n = len(global)
	mu.Unlock()
	if n == 0 {
		t.Error("WithErrorHandler(otel.Handle): otel.Handle got nothing")
	}
}

var _ = fmt.Sprint

// TestGenAIPastLimitAllocs (defect 13): a GenAI record past the
// cardinality limit allocates nothing: it goes to one overflow series,
// counted in orchestrator_collector_overflow_total.
func TestGenAIPastLimitAllocs(t *testing.T) {
	ctx := context.Background()
	c, r := newTestCollector(t, otelcollector.WithGenAIMetrics(), otelcollector.WithCardinalityLimit(4))
	models := make([]string, 300)
	for i := range models {
		models[i] = fmt.Sprintf("model-%d", i)
	}
	i := 0
	record := func() {
		if err := c.RecordTokenUsageDetailed(ctx, "o", otelcollector.TokenUsage{Model: models[i%len(models)], Input: 1, Output: 2, Duration: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		i++
	}
	for range 10 {
		record()
	}
	if !raceDetector {
		if n := testing.AllocsPerRun(100, record); n != 0 {
			t.Errorf("RecordTokenUsageDetailed past the limit: %v allocs, want 0", n)
		}
	}
	ms := collect(t, r)
	if v, _ := intValue(ms["orchestrator.collector.overflow"], set("metric", "gen_ai.client.token.usage")); v < 7 {
		t.Errorf("overflow{metric=gen_ai.client.token.usage} = %d, want the records past the limit", v)
	}
}

// TestWithoutAggregatedStats (issue 12 goal 5): no in-memory reader and
// no sampler goroutine; records still reach the exporters; AggregatedStats
// fails with ErrStatsDisabled; the record paths allocate nothing.
func TestWithoutAggregatedStats(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	c, r := newTestCollector(t, otelcollector.WithoutAggregatedStats())
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after New, %d before: a sampler runs", n, before)
	}
	if err := c.RecordTokenUsage(ctx, "o", "m", 5); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordMessageLatency(ctx, "o", time.Second); err != nil {
		t.Fatal(err)
	}
	if v, _ := intValue(collect(t, r)["orchestrator.tokens.used"], set("orchestrator_id", "o", "model", "m")); v != 5 {
		t.Fatalf("tokens = %d, want 5", v)
	}
	if _, err := c.AggregatedStats(ctx, "o", otelcollector.Last(time.Minute)); !errors.Is(err, otelcollector.ErrStatsDisabled) {
		t.Fatalf("AggregatedStats = %v, want ErrStatsDisabled", err)
	}
	if err := c.ForgetOrchestrator("o"); err != nil {
		t.Fatalf("ForgetOrchestrator without stats: %v", err)
	}
	if !raceDetector {
		if n := testing.AllocsPerRun(100, func() { _ = c.RecordTokenUsage(ctx, "o", "m", 1) }); n != 0 {
			t.Errorf("RecordTokenUsage: %v allocs", n)
		}
		if n := testing.AllocsPerRun(100, func() { _ = c.RecordMessageLatency(ctx, "o", time.Millisecond) }); n != 0 {
			t.Errorf("RecordMessageLatency: %v allocs", n)
		}
	}
}
