package otelcollector_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// newTestCollector returns a Collector with a ManualReader to read back.
func newTestCollector(t testing.TB, opts ...otelcollector.Option) (*otelcollector.Collector, *sdkmetric.ManualReader) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	c, err := otelcollector.New(context.Background(), append([]otelcollector.Option{otelcollector.WithReader(r)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c, r
}

func collect(t testing.TB, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func set(kv ...string) attribute.Set {
	var kvs []attribute.KeyValue
	for i := 0; i < len(kv); i += 2 {
		kvs = append(kvs, attribute.String(kv[i], kv[i+1]))
	}
	return attribute.NewSet(kvs...)
}

// intValue returns the value of the int sum series with attrs, and whether
// it exists.
func intValue(m metricdata.Metrics, attrs attribute.Set) (int64, bool) {
	s, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		return 0, false
	}
	for _, dp := range s.DataPoints {
		if dp.Attributes.Equals(&attrs) {
			return dp.Value, true
		}
	}
	return 0, false
}

func floatGauge(m metricdata.Metrics, attrs attribute.Set) (float64, bool) {
	g, ok := m.Data.(metricdata.Gauge[float64])
	if !ok {
		return 0, false
	}
	for _, dp := range g.DataPoints {
		if dp.Attributes.Equals(&attrs) {
			return dp.Value, true
		}
	}
	return 0, false
}

func seriesCount(m metricdata.Metrics) int {
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		return len(d.DataPoints)
	case metricdata.Gauge[float64]:
		return len(d.DataPoints)
	case metricdata.Histogram[float64]:
		return len(d.DataPoints)
	}
	return -1
}

func TestRecordEachMetric(t *testing.T) {
	ctx := context.Background()
	c, r := newTestCollector(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.RecordSessionStart(ctx, "o1", "claude-code"))
	must(c.RecordSessionStart(ctx, "o1", "claude-code"))
	must(c.RecordSessionStart(ctx, "o1", "ruflo"))
	must(c.RecordSessionEnd(ctx, "o1", "claude-code"))
	must(c.RecordTokenUsage(ctx, "o1", "m1", 7))
	must(c.RecordTokenUsage(ctx, "o1", "m1", 0))
	must(c.RecordTokenUsage(ctx, "o1", "m2", 3))
	must(c.RecordMessageLatency(ctx, "o1", 1500*time.Millisecond))
	must(c.RecordMessageLatency(ctx, "o1", 0))
	must(c.RecordToolInvocation(ctx, "o1", "grep", otelcollector.ToolSuccess))
	must(c.RecordToolInvocation(ctx, "o1", "grep", otelcollector.ToolError))
	must(c.RecordDelegation(ctx, "o1", "o2", otelcollector.DelegationRejected))
	must(c.RecordError(ctx, "o1", "rate_limit"))
	must(c.UpdateNodeLoad("n1", 0.2))
	must(c.UpdateNodeLoad("n1", 1))
	must(c.UpdateBudgetUtilization("o1", otelcollector.PeriodWeekly, 120))

	ms := collect(t, r)
	intCases := []struct {
		metric string
		attrs  attribute.Set
		want   int64
	}{
		{"orchestrator.sessions.active", set("orchestrator_id", "o1", "session_type", "claude-code"), 1},
		{"orchestrator.sessions.active", set("orchestrator_id", "o1", "session_type", "ruflo"), 1},
		{"orchestrator.tokens.used", set("orchestrator_id", "o1", "model", "m1"), 7},
		{"orchestrator.tokens.used", set("orchestrator_id", "o1", "model", "m2"), 3},
		{"orchestrator.tool.invocations", set("orchestrator_id", "o1", "tool_name", "grep", "status", "success"), 1},
		{"orchestrator.tool.invocations", set("orchestrator_id", "o1", "tool_name", "grep", "status", "error"), 1},
		{"orchestrator.federation.delegations", set("from_orchestrator", "o1", "to_orchestrator", "o2", "status", "rejected"), 1},
		{"orchestrator.errors", set("orchestrator_id", "o1", "error_type", "rate_limit"), 1},
	}
	for _, tc := range intCases {
		got, ok := intValue(ms[tc.metric], tc.attrs)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %d (present %v), want %d", tc.metric, tc.attrs.ToSlice(), got, ok, tc.want)
		}
	}
	if v, ok := floatGauge(ms["orchestrator.node.load"], set("node_id", "n1")); !ok || v != 1 {
		t.Errorf("node load = %v (%v), want 1 (last value)", v, ok)
	}
	if v, ok := floatGauge(ms["orchestrator.budget.utilization"], set("orchestrator_id", "o1", "period", "weekly")); !ok || v != 120 {
		t.Errorf("budget = %v (%v), want 120", v, ok)
	}
	h, ok := ms["orchestrator.message.latency"].Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 {
		t.Fatalf("latency histogram: %#v", ms["orchestrator.message.latency"].Data)
	}
	dp := h.DataPoints[0]
	if dp.Count != 2 || dp.Sum != 1.5 {
		t.Errorf("latency count=%d sum=%v, want 2 and 1.5", dp.Count, dp.Sum)
	}
	wantBounds := []float64{0.1, 0.5, 1, 2, 5, 10}
	if !equalFloats(dp.Bounds, wantBounds) {
		t.Errorf("bounds %v, want %v", dp.Bounds, wantBounds)
	}
	if ms["orchestrator.message.latency"].Unit != "s" {
		t.Errorf("latency unit %q, want s", ms["orchestrator.message.latency"].Unit)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBadInput checks that each bad input returns its sentinel naming the
// field, is counted, and changes no series.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("x", otelcollector.MaxLabelBytes+1)
	testCases := []struct {
		name   string
		call   func(c *otelcollector.Collector) error
		want   error
		field  string
		reason string
	}{
		{"empty orchestrator", func(c *otelcollector.Collector) error { return c.RecordTokenUsage(ctx, "", "m", 1) }, otelcollector.ErrInvalidLabel, "orchestratorID", "empty_label"},
		{"empty model", func(c *otelcollector.Collector) error { return c.RecordTokenUsage(ctx, "o", "", 1) }, otelcollector.ErrInvalidLabel, "model", "empty_label"},
		{"long model", func(c *otelcollector.Collector) error { return c.RecordTokenUsage(ctx, "o", long, 1) }, otelcollector.ErrInvalidLabel, "model", "label_too_long"},
		{"invalid utf8 model", func(c *otelcollector.Collector) error { return c.RecordTokenUsage(ctx, "o", "m\xff", 1) }, otelcollector.ErrInvalidLabel, "model", "invalid_utf8"},
		{"negative tokens", func(c *otelcollector.Collector) error { return c.RecordTokenUsage(ctx, "o", "m", -5) }, otelcollector.ErrInvalidValue, "tokens", "negative_value"},
		{"empty session type", func(c *otelcollector.Collector) error { return c.RecordSessionStart(ctx, "o", "") }, otelcollector.ErrInvalidLabel, "sessionType", "empty_label"},
		{"session end without start", func(c *otelcollector.Collector) error { return c.RecordSessionEnd(ctx, "o", "claude-code") }, otelcollector.ErrInvalidValue, "active sessions", "negative_value"},
		{"negative latency", func(c *otelcollector.Collector) error { return c.RecordMessageLatency(ctx, "o", -time.Second) }, otelcollector.ErrInvalidValue, "latency", "negative_value"},
		{"empty latency orchestrator", func(c *otelcollector.Collector) error { return c.RecordMessageLatency(ctx, "", time.Second) }, otelcollector.ErrInvalidLabel, "orchestratorID", "empty_label"},
		{"empty tool", func(c *otelcollector.Collector) error {
			return c.RecordToolInvocation(ctx, "o", "", otelcollector.ToolSuccess)
		}, otelcollector.ErrInvalidLabel, "toolName", "empty_label"},
		{"unknown tool status", func(c *otelcollector.Collector) error { return c.RecordToolInvocation(ctx, "o", "t", "ok") }, otelcollector.ErrUnknownStatus, "status", "unknown_status"},
		{"empty delegation target", func(c *otelcollector.Collector) error {
			return c.RecordDelegation(ctx, "o", "", otelcollector.DelegationSuccess)
		}, otelcollector.ErrInvalidLabel, "toOrchestrator", "empty_label"},
		{"unknown delegation status", func(c *otelcollector.Collector) error { return c.RecordDelegation(ctx, "o", "p", "done") }, otelcollector.ErrUnknownStatus, "status", "unknown_status"},
		{"empty error type", func(c *otelcollector.Collector) error { return c.RecordError(ctx, "o", "") }, otelcollector.ErrInvalidLabel, "errorType", "empty_label"},
		{"empty node", func(c *otelcollector.Collector) error { return c.UpdateNodeLoad("", 0.5) }, otelcollector.ErrInvalidLabel, "nodeID", "empty_label"},
		{"load above 1", func(c *otelcollector.Collector) error { return c.UpdateNodeLoad("n", 1.01) }, otelcollector.ErrInvalidValue, "load", "out_of_range"},
		{"load below 0", func(c *otelcollector.Collector) error { return c.UpdateNodeLoad("n", -0.01) }, otelcollector.ErrInvalidValue, "load", "out_of_range"},
		{"load NaN", func(c *otelcollector.Collector) error { return c.UpdateNodeLoad("n", math.NaN()) }, otelcollector.ErrInvalidValue, "load", "non_finite_value"},
		{"budget NaN", func(c *otelcollector.Collector) error {
			return c.UpdateBudgetUtilization("o", otelcollector.PeriodDaily, math.NaN())
		}, otelcollector.ErrInvalidValue, "percent", "non_finite_value"},
		{"budget +Inf", func(c *otelcollector.Collector) error {
			return c.UpdateBudgetUtilization("o", otelcollector.PeriodDaily, math.Inf(1))
		}, otelcollector.ErrInvalidValue, "percent", "non_finite_value"},
		{"budget negative", func(c *otelcollector.Collector) error {
			return c.UpdateBudgetUtilization("o", otelcollector.PeriodDaily, -1)
		}, otelcollector.ErrInvalidValue, "percent", "negative_value"},
		{"unknown period", func(c *otelcollector.Collector) error { return c.UpdateBudgetUtilization("o", "hourly", 1) }, otelcollector.ErrUnknownStatus, "period", "unknown_status"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			c, r := newTestCollector(t)
			// A valid series that must survive every rejection untouched.
			if err := c.RecordTokenUsage(ctx, "keep", "m", 11); err != nil {
				t.Fatal(err)
			}
			before := collect(t, r)
			err := tc.call(c)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name field %q", err, tc.field)
			}
			if got := c.Rejected(); got != 1 {
				t.Errorf("Rejected() = %d, want 1", got)
			}
			after := collect(t, r)
			if v, _ := intValue(after["orchestrator.tokens.used"], set("orchestrator_id", "keep", "model", "m")); v != 11 {
				t.Errorf("valid series changed to %d", v)
			}
			for name, m := range after {
				if name == "orchestrator.collector.rejected" {
					if v, _ := intValue(m, set("reason", tc.reason)); v != 1 {
						t.Errorf("rejected{reason=%s} = %d, want 1", tc.reason, v)
					}
					continue
				}
				if got, want := seriesCount(m), seriesCount(before[name]); got != want {
					t.Errorf("%s has %d series after the rejection, %d before", name, got, want)
				}
			}
		})
	}
}

func TestUseAfterClose(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestCollector(t)
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"RecordSessionStart":      func() error { return c.RecordSessionStart(ctx, "o", "s") },
		"RecordSessionEnd":        func() error { return c.RecordSessionEnd(ctx, "o", "s") },
		"RecordTokenUsage":        func() error { return c.RecordTokenUsage(ctx, "o", "m", 1) },
		"RecordMessageLatency":    func() error { return c.RecordMessageLatency(ctx, "o", time.Second) },
		"RecordToolInvocation":    func() error { return c.RecordToolInvocation(ctx, "o", "t", otelcollector.ToolSuccess) },
		"RecordDelegation":        func() error { return c.RecordDelegation(ctx, "o", "p", otelcollector.DelegationSuccess) },
		"RecordError":             func() error { return c.RecordError(ctx, "o", "e") },
		"UpdateNodeLoad":          func() error { return c.UpdateNodeLoad("n", 0.5) },
		"UpdateBudgetUtilization": func() error { return c.UpdateBudgetUtilization("o", otelcollector.PeriodDaily, 1) },
		"Flush":                   func() error { return c.Flush(ctx) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, otelcollector.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("second Close: %v, want the first call's nil", err)
	}
}

func TestForget(t *testing.T) {
	c, r := newTestCollector(t)
	_ = c.UpdateNodeLoad("n1", 0.1)
	_ = c.UpdateNodeLoad("n2", 0.2)
	_ = c.UpdateBudgetUtilization("o", otelcollector.PeriodDaily, 5)
	_ = c.UpdateBudgetUtilization("o", otelcollector.PeriodMonthly, 6)
	c.ForgetNode("n1")
	c.ForgetNode("never-seen")
	c.ForgetBudget("o", otelcollector.PeriodDaily)
	ms := collect(t, r)
	if _, ok := floatGauge(ms["orchestrator.node.load"], set("node_id", "n1")); ok {
		t.Error("forgotten node still reported")
	}
	if v, ok := floatGauge(ms["orchestrator.node.load"], set("node_id", "n2")); !ok || v != 0.2 {
		t.Errorf("n2 = %v, %v", v, ok)
	}
	if _, ok := floatGauge(ms["orchestrator.budget.utilization"], set("orchestrator_id", "o", "period", "daily")); ok {
		t.Error("forgotten budget still reported")
	}
	if v, ok := floatGauge(ms["orchestrator.budget.utilization"], set("orchestrator_id", "o", "period", "monthly")); !ok || v != 6 {
		t.Errorf("monthly = %v, %v", v, ok)
	}
}

func TestOptionsValidation(t *testing.T) {
	ctx := context.Background()
	testCases := []struct {
		name string
		opt  otelcollector.Option
	}{
		{"nil reader", otelcollector.WithReader(nil)},
		{"nil exporter", otelcollector.WithExporter(nil)},
		{"no buckets", otelcollector.WithLatencyBuckets()},
		{"decreasing buckets", otelcollector.WithLatencyBuckets(1, 0.5)},
		{"NaN bucket", otelcollector.WithLatencyBuckets(math.NaN())},
		{"negative bucket", otelcollector.WithLatencyBuckets(-1, 1)},
		{"zero cardinality", otelcollector.WithCardinalityLimit(0)},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := otelcollector.New(ctx, tc.opt)
			if !errors.Is(err, otelcollector.ErrInvalidOption) {
				t.Fatalf("New: %v, want ErrInvalidOption", err)
			}
			if c != nil {
				t.Fatal("New returned a Collector with an error")
			}
		})
	}
}

func TestNoExporterStillWorks(t *testing.T) {
	c, err := otelcollector.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RecordTokenUsage(context.Background(), "o", "m", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCustomLatencyBucketsAndResource(t *testing.T) {
	res := resource.NewSchemaless(attribute.String("service.name", "orchestrator-test"))
	c, r := newTestCollector(t, otelcollector.WithLatencyBuckets(0.01, 0.1), otelcollector.WithResource(res))
	_ = c.RecordMessageLatency(context.Background(), "o", 50*time.Millisecond)
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if v, ok := rm.Resource.Set().Value("service.name"); !ok || v.AsString() != "orchestrator-test" {
		t.Errorf("service.name = %v", v)
	}
	h := collect(t, r)["orchestrator.message.latency"].Data.(metricdata.Histogram[float64])
	if !equalFloats(h.DataPoints[0].Bounds, []float64{0.01, 0.1}) || h.DataPoints[0].BucketCounts[1] != 1 {
		t.Errorf("bounds %v counts %v", h.DataPoints[0].Bounds, h.DataPoints[0].BucketCounts)
	}
}

func TestCardinalityLimitOverflow(t *testing.T) {
	ctx := context.Background()
	c, r := newTestCollector(t, otelcollector.WithCardinalityLimit(10))
	for i := 0; i < 50; i++ {
		if err := c.RecordToolInvocation(ctx, "o", "tool-"+string(rune('A'+i)), otelcollector.ToolSuccess); err != nil {
			t.Fatal(err)
		}
	}
	m := collect(t, r)["orchestrator.tool.invocations"]
	s := m.Data.(metricdata.Sum[int64])
	var total int64
	overflow := false
	for _, dp := range s.DataPoints {
		total += dp.Value
		if v, ok := dp.Attributes.Value("otel.metric.overflow"); ok && v.String() == "true" {
			overflow = true
		}
	}
	if len(s.DataPoints) > 10 || !overflow || total != 50 {
		t.Fatalf("%d series, overflow %v, total %d; want <= 10 series, an overflow series, total 50", len(s.DataPoints), overflow, total)
	}
}

// TestDebugLogging checks that each record is logged at Debug level when
// the logger is enabled for it, and not otherwise.
func TestDebugLogging(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var buf strings.Builder
		var mu sync.Mutex
		logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: level}))
		c, _ := newTestCollector(t, otelcollector.WithLogger(logger))
		_ = c.RecordTokenUsage(context.Background(), "o", "m", 3)
		mu.Lock()
		logged := strings.Contains(buf.String(), "tokens=3")
		mu.Unlock()
		if want := level == slog.LevelDebug; logged != want {
			t.Errorf("level %v: logged=%v, want %v: %q", level, logged, want, buf.String())
		}
	}
}

type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestTwoCollectorsShareNothing(t *testing.T) {
	ctx := context.Background()
	a, ra := newTestCollector(t)
	b, rb := newTestCollector(t)
	_ = a.RecordTokenUsage(ctx, "o", "m", 1)
	_ = b.RecordTokenUsage(ctx, "o", "m", 100)
	va, _ := intValue(collect(t, ra)["orchestrator.tokens.used"], set("orchestrator_id", "o", "model", "m"))
	vb, _ := intValue(collect(t, rb)["orchestrator.tokens.used"], set("orchestrator_id", "o", "model", "m"))
	if va != 1 || vb != 100 {
		t.Fatalf("a=%d b=%d, want 1 and 100", va, vb)
	}
}

func TestFlush(t *testing.T) {
	c, _ := newTestCollector(t)
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}
