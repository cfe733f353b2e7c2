package otlp_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/wundr-io/orchestrator-otel/exporters/otlp"
	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// The end-to-end tests push through a real OpenTelemetry Collector (built
// by .ci/build-collector.sh, started by internal/testpeer) and read back
// what it wrote with its file exporter, and what its Prometheus exporter
// serves.

const e2eWait = 20 * time.Second

// newE2ECollector returns an otelcollector.Collector exporting through exp,
// closed when the test ends.
func newE2ECollector(t *testing.T, exp *otlp.Exporter) *otelcollector.Collector {
	t.Helper()
	res := resource.NewSchemaless(attribute.String("service.name", "orchestrator-e2e"))
	c, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp), otelcollector.WithResource(res))
	if err != nil {
		t.Fatalf("otelcollector.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx) // may fail on purpose (Collector stopped, bad token)
	})
	return c
}

func newE2EExporter(t *testing.T, protocol otlp.Protocol, peer *testpeer.Collector, opts ...otlp.Option) *otlp.Exporter {
	t.Helper()
	endpoint := peer.GRPCEndpoint()
	if protocol == otlp.ProtocolHTTP {
		endpoint = peer.HTTPEndpoint()
	}
	exp, err := otlp.New(context.Background(), append([]otlp.Option{
		otlp.WithProtocol(protocol), otlp.WithEndpoint(endpoint), otlp.WithInsecure(),
	}, opts...)...)
	if err != nil {
		t.Fatalf("otlp.New: %v", err)
	}
	return exp
}

var protocols = []otlp.Protocol{otlp.ProtocolGRPC, otlp.ProtocolHTTP}

// TestE2EAllMetrics: each of the eight metrics arrives with its name, type,
// unit, attributes and exact value, over gRPC and over HTTP, and the
// Collector's Prometheus exporter (without_scope_info) serves the legacy
// names with the same values.
func TestE2EAllMetrics(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			peer := testpeer.StartCollector(t, testpeer.CollectorOptions{})
			exp := newE2EExporter(t, protocol, peer, otlp.WithInterval(time.Hour))
			c := newE2ECollector(t, exp)
			ctx := context.Background()
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			for range 3 {
				must(c.RecordSessionStart(ctx, "orch-1", "claude-code"))
			}
			must(c.RecordSessionEnd(ctx, "orch-1", "claude-code"))
			must(c.RecordTokenUsage(ctx, "orch-1", "model-a", 1200))
			must(c.RecordTokenUsage(ctx, "orch-1", "model-a", 800))
			for _, d := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, 1500 * time.Millisecond, 7 * time.Second} {
				must(c.RecordMessageLatency(ctx, "orch-1", d))
			}
			for range 3 {
				must(c.RecordToolInvocation(ctx, "orch-1", "search", otelcollector.ToolSuccess))
			}
			must(c.RecordDelegation(ctx, "orch-1", "orch-2", otelcollector.DelegationSuccess))
			must(c.RecordDelegation(ctx, "orch-1", "orch-2", otelcollector.DelegationSuccess))
			must(c.UpdateNodeLoad("node-1", 0.75))
			must(c.RecordError(ctx, "orch-1", "timeout"))
			must(c.UpdateBudgetUtilization("orch-1", otelcollector.PeriodDaily, 42.5))
			must(c.Flush(ctx))

			type sumWant struct {
				name, unit string
				attrs      map[string]string
				monotonic  bool
				value      int64
			}
			for _, w := range []sumWant{
				{schema.SessionsActive, schema.UnitSessions, map[string]string{"orchestrator_id": "orch-1", "session_type": "claude-code"}, false, 2},
				{schema.TokensUsed, schema.UnitTokens, map[string]string{"orchestrator_id": "orch-1", "model": "model-a"}, true, 2000},
				{schema.ToolInvocations, schema.UnitInvocations, map[string]string{"orchestrator_id": "orch-1", "tool_name": "search", "status": "success"}, true, 3},
				{schema.Delegations, schema.UnitDelegations, map[string]string{"from_orchestrator": "orch-1", "to_orchestrator": "orch-2", "status": "success"}, true, 2},
				{schema.Errors, schema.UnitErrors, map[string]string{"orchestrator_id": "orch-1", "error_type": "timeout"}, true, 1},
			} {
				p := peer.WaitForPoint(e2eWait, w.name, w.attrs, nil)
				sum := p.Metric.Sum
				switch {
				case sum == nil:
					t.Errorf("%s: not a sum", w.name)
				case p.Number.AsInt == nil || *p.Number.AsInt != w.value:
					t.Errorf("%s%v = %v, want %d", w.name, w.attrs, p.Number.AsInt, w.value)
				case sum.IsMonotonic != w.monotonic || sum.AggregationTemporality != testpeer.TemporalityCumulative:
					t.Errorf("%s: monotonic %v temporality %v, want %v cumulative", w.name, sum.IsMonotonic, sum.AggregationTemporality, w.monotonic)
				case p.Metric.Unit != w.unit:
					t.Errorf("%s: unit %q, want %q", w.name, p.Metric.Unit, w.unit)
				}
			}
			for _, w := range []struct {
				name, unit string
				attrs      map[string]string
				value      float64
			}{
				{schema.NodeLoad, "", map[string]string{"node_id": "node-1"}, 0.75},
				{schema.BudgetUtilization, schema.UnitPercent, map[string]string{"orchestrator_id": "orch-1", "period": "daily"}, 42.5},
			} {
				p := peer.WaitForPoint(e2eWait, w.name, w.attrs, nil)
				switch {
				case p.Metric.Gauge == nil:
					t.Errorf("%s: not a gauge", w.name)
				case p.Number.AsDouble == nil || *p.Number.AsDouble != w.value:
					t.Errorf("%s%v = %v, want %v", w.name, w.attrs, p.Number.AsDouble, w.value)
				case p.Metric.Unit != w.unit:
					t.Errorf("%s: unit %q, want %q", w.name, p.Metric.Unit, w.unit)
				}
			}
			p := peer.WaitForPoint(e2eWait, schema.MessageLatency, map[string]string{"orchestrator_id": "orch-1"}, nil)
			if h := p.Histogram; p.Metric.Histogram == nil || h == nil {
				t.Errorf("%s: not a histogram", schema.MessageLatency)
			} else {
				if h.Count != 4 || h.Sum == nil || math.Abs(*h.Sum-8.85) > 1e-9 {
					t.Errorf("%s: count %d sum %v, want 4 and 8.85", schema.MessageLatency, h.Count, h.Sum)
				}
				if want := []uint64{1, 1, 0, 1, 0, 1, 0}; !slices.Equal(h.BucketCounts, want) {
					t.Errorf("%s: bucket counts %v, want %v", schema.MessageLatency, h.BucketCounts, want)
				}
				if want := schema.DefaultLatencyBuckets(); !slices.Equal(h.ExplicitBounds, want) {
					t.Errorf("%s: bounds %v, want %v", schema.MessageLatency, h.ExplicitBounds, want)
				}
				if p.Metric.Unit != schema.UnitSeconds {
					t.Errorf("%s: unit %q, want s", schema.MessageLatency, p.Metric.Unit)
				}
			}

			// The Collector's Prometheus exporter serves the legacy names.
			families := scrape(t, peer.PrometheusURL())
			for _, w := range []struct {
				name  string
				attrs map[string]string
				value float64
			}{
				{"orchestrator_sessions_active", map[string]string{"orchestrator_id": "orch-1", "session_type": "claude-code"}, 2},
				{"orchestrator_tokens_used_total", map[string]string{"orchestrator_id": "orch-1", "model": "model-a"}, 2000},
				{"orchestrator_tool_invocations_total", map[string]string{"orchestrator_id": "orch-1", "tool_name": "search", "status": "success"}, 3},
				{"orchestrator_federation_delegations_total", map[string]string{"from_orchestrator": "orch-1", "to_orchestrator": "orch-2", "status": "success"}, 2},
				{"orchestrator_errors_total", map[string]string{"orchestrator_id": "orch-1", "error_type": "timeout"}, 1},
				{"orchestrator_node_load", map[string]string{"node_id": "node-1"}, 0.75},
				{"orchestrator_budget_utilization_percent", map[string]string{"orchestrator_id": "orch-1", "period": "daily"}, 42.5},
				{"orchestrator_message_latency_seconds_count", map[string]string{"orchestrator_id": "orch-1"}, 4},
				{"orchestrator_message_latency_seconds_bucket", map[string]string{"orchestrator_id": "orch-1", "le": "2"}, 3},
			} {
				got, ok := sampleValue(families, w.name, w.attrs)
				if !ok || got != w.value {
					t.Errorf("scrape %s%v = %v (found %v), want %v", w.name, w.attrs, got, ok, w.value)
				}
			}
		})
	}
}

// TestE2ECloseFlushes: with an export interval of an hour, what was
// recorded just before Close still arrives.
func TestE2ECloseFlushes(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			peer := testpeer.StartCollector(t, testpeer.CollectorOptions{})
			exp := newE2EExporter(t, protocol, peer, otlp.WithInterval(time.Hour))
			c := newE2ECollector(t, exp)
			ctx := context.Background()
			if err := c.RecordTokenUsage(ctx, "orch-close", "model-a", 4321); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			attrs := map[string]string{"orchestrator_id": "orch-close", "model": "model-a"}
			p := peer.WaitForPoint(e2eWait, schema.TokensUsed, attrs, nil)
			if got := p.Number.AsInt; got == nil || *got != 4321 {
				t.Errorf("%s = %v, want 4321", schema.TokensUsed, got)
			}
			if err := exp.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown after Close: %v", err)
			}
		})
	}
}

// TestE2EUnreachableAtStart: New succeeds while nothing listens, the
// failures are logged and counted, and the data arrives once the Collector
// is up.
func TestE2EUnreachableAtStart(t *testing.T) {
	for _, tc := range []struct {
		protocol otlp.Protocol
		kind     string
	}{{otlp.ProtocolGRPC, "unavailable"}, {otlp.ProtocolHTTP, "unreachable"}} {
		t.Run(string(tc.protocol), func(t *testing.T) {
			peer := testpeer.StartCollector(t, testpeer.CollectorOptions{})
			peer.Stop() // its ports are known and closed

			var logs syncBuffer
			exp := newE2EExporter(t, tc.protocol, peer, otlp.WithInterval(200*time.Millisecond),
				otlp.WithTimeout(time.Second), otlp.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			c := newE2ECollector(t, exp)
			if err := c.RecordTokenUsage(context.Background(), "orch-late", "model-a", 77); err != nil {
				t.Fatal(err)
			}
			testpeer.WaitFor(t, e2eWait, func() bool { return exp.FailedExports() >= 2 })
			out := logs.String()
			if n := strings.Count(out, "OTLP metric export failed"); n != 1 {
				t.Errorf("%d failure lines for %d failures, want 1 (rate-limited):\n%s", n, exp.FailedExports(), out)
			}
			if !strings.Contains(out, "kind="+tc.kind) {
				t.Errorf("log does not name kind %q:\n%s", tc.kind, out)
			}

			peer.Restart()
			attrs := map[string]string{"orchestrator_id": "orch-late", "model": "model-a"}
			p := peer.WaitForPoint(e2eWait, schema.TokensUsed, attrs, nil)
			if got := p.Number.AsInt; got == nil || *got != 77 {
				t.Errorf("%s = %v, want 77", schema.TokensUsed, got)
			}
			failed := exp.FailedExports()
			fp := peer.WaitForPoint(e2eWait, schema.OTLPFailedExports, nil, func(p testpeer.Point) bool {
				return p.Number.AsInt != nil && *p.Number.AsInt > 0
			})
			if got := *fp.Number.AsInt; got > failed {
				t.Errorf("%s = %d, more than FailedExports %d", schema.OTLPFailedExports, got, failed)
			}
			t.Logf("%d exports failed before the Collector came up; %s arrived as %d", failed, schema.OTLPFailedExports, *fp.Number.AsInt)
		})
	}
}

// TestE2EAuth: the Collector requires a bearer token. The right one gets
// the data in; a wrong one is refused, reported and counted.
func TestE2EAuth(t *testing.T) {
	const token = "right-token"
	for _, tc := range []struct {
		protocol otlp.Protocol
		kind     string
	}{{otlp.ProtocolGRPC, "unauthenticated"}, {otlp.ProtocolHTTP, "http_401"}} {
		t.Run(string(tc.protocol), func(t *testing.T) {
			peer := testpeer.StartCollector(t, testpeer.CollectorOptions{BearerToken: token})
			ctx := context.Background()

			good := newE2EExporter(t, tc.protocol, peer, otlp.WithInterval(time.Hour),
				otlp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
			gc := newE2ECollector(t, good)
			if err := gc.RecordTokenUsage(ctx, "orch-good", "model-a", 5); err != nil {
				t.Fatal(err)
			}
			if err := gc.Flush(ctx); err != nil {
				t.Fatalf("Flush with the right token: %v", err)
			}
			p := peer.WaitForPoint(e2eWait, schema.TokensUsed, map[string]string{"orchestrator_id": "orch-good", "model": "model-a"}, nil)
			if got := p.Number.AsInt; got == nil || *got != 5 {
				t.Errorf("%s = %v, want 5", schema.TokensUsed, got)
			}

			var logs syncBuffer
			bad := newE2EExporter(t, tc.protocol, peer, otlp.WithInterval(time.Hour),
				otlp.WithHeaders(map[string]string{"Authorization": "Bearer wrong-token"}),
				otlp.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			bc := newE2ECollector(t, bad)
			if err := bc.RecordTokenUsage(ctx, "orch-bad", "model-a", 6); err != nil {
				t.Fatal(err)
			}
			if err := bc.Flush(ctx); err == nil {
				t.Fatal("Flush with a wrong token succeeded")
			}
			if got := bad.FailedExports(); got != 1 {
				t.Errorf("FailedExports = %d, want 1", got)
			}
			out := logs.String()
			if !strings.Contains(out, "OTLP metric export failed") || !strings.Contains(out, "kind="+tc.kind) {
				t.Errorf("no failure line of kind %q:\n%s", tc.kind, out)
			}
			if strings.Contains(out, "wrong-token") {
				t.Errorf("log contains the token:\n%s", out)
			}
			// The good exporter's next push proves the Collector is still
			// writing, and the refused data is not there.
			if err := gc.RecordTokenUsage(ctx, "orch-good", "model-a", 1); err != nil {
				t.Fatal(err)
			}
			if err := gc.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			peer.WaitForPoint(e2eWait, schema.TokensUsed, map[string]string{"orchestrator_id": "orch-good", "model": "model-a"},
				func(p testpeer.Point) bool { return p.Number.AsInt != nil && *p.Number.AsInt == 6 })
			if _, ok := peer.LastPoint(schema.TokensUsed, map[string]string{"orchestrator_id": "orch-bad", "model": "model-a"}); ok {
				t.Error("data pushed with the wrong token arrived")
			}
		})
	}
}

// TestE2EOutage: the Collector is stopped for several export intervals
// while eight goroutines keep recording, then restarted. With cumulative
// temporality the totals read back equal exactly what was recorded; with
// delta, what the failed exports carried is lost, and the test reports how
// much. Record latency is measured before, during and after the outage.
func TestE2EOutage(t *testing.T) {
	for _, tc := range []struct {
		name        string
		protocol    otlp.Protocol
		temporality otlp.Temporality
	}{
		{"cumulative/grpc", otlp.ProtocolGRPC, otlp.Cumulative},
		{"cumulative/http", otlp.ProtocolHTTP, otlp.Cumulative},
		{"delta/grpc", otlp.ProtocolGRPC, otlp.Delta},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := testpeer.StartCollector(t, testpeer.CollectorOptions{})
			exp := newE2EExporter(t, tc.protocol, peer, otlp.WithTemporality(tc.temporality),
				otlp.WithInterval(outageInterval), otlp.WithTimeout(500*time.Millisecond))
			c := newE2ECollector(t, exp)

			w := startWorkload(t, c)
			// Up: wait for a first delivery.
			peer.WaitForPoint(e2eWait, schema.TokensUsed, w.attrs(0), nil)
			time.Sleep(500 * time.Millisecond)

			w.phase.Store(phaseOutage)
			peer.Stop()
			failedBefore := exp.FailedExports()
			time.Sleep(outageDuration)
			failedOutage := exp.FailedExports() - failedBefore

			w.phase.Store(phaseAfter)
			peer.Restart()
			restarted := uint64(time.Now().UnixNano())
			// Keep recording until an export reaches the new process.
			peer.WaitForPoint(e2eWait, schema.TokensUsed, w.attrs(0), func(p testpeer.Point) bool {
				return p.Number.TimeUnixNano > restarted
			})
			time.Sleep(300 * time.Millisecond)
			w.stop()

			closing := uint64(time.Now().UnixNano())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			// The self-metric rides in every export: its point from the
			// final export marks that the whole file is there.
			peer.WaitForPoint(e2eWait, schema.OTLPFailedExports, nil, func(p testpeer.Point) bool {
				return p.Number.TimeUnixNano >= closing
			})

			lat := w.latencies()
			for _, ph := range []int32{phaseBefore, phaseOutage, phaseAfter} {
				t.Logf("record latency %-7s n=%-6d p50=%v p99=%v max=%v", phaseNames[ph], len(lat[ph]),
					quantile(lat[ph], 0.5), quantile(lat[ph], 0.99), quantile(lat[ph], 1))
			}
			t.Logf("exports failed during the %v outage: %d (interval %v); FailedExports total %d",
				outageDuration, failedOutage, outageInterval, exp.FailedExports())
			if failedOutage < 1 {
				t.Errorf("no export failed during the outage")
			}
			// Not blocked: during the outage the median record stays at
			// its normal level, and no record waits for an export.
			if p50b, p50o := quantile(lat[phaseBefore], 0.5), quantile(lat[phaseOutage], 0.5); p50o > 5*p50b+50*time.Microsecond {
				t.Errorf("median record latency %v during the outage, %v before", p50o, p50b)
			}
			if mx := quantile(lat[phaseOutage], 1); mx >= 250*time.Millisecond {
				t.Errorf("a record took %v during the outage", mx)
			}

			rms, err := peer.Metrics()
			if err != nil {
				t.Fatal(err)
			}
			for i := range workloadOrchestrators {
				attrs := w.attrs(i)
				want := w.tokens[i].Load()
				var got int64
				if tc.temporality == otlp.Cumulative {
					p, ok := peer.LastPoint(schema.TokensUsed, attrs)
					if !ok {
						t.Fatalf("no %s%v", schema.TokensUsed, attrs)
					}
					got = *p.Number.AsInt
					if got != want {
						t.Errorf("%s%v = %d, recorded %d", schema.TokensUsed, attrs, got, want)
					}
					h, _ := peer.LastPoint(schema.MessageLatency, map[string]string{"orchestrator_id": attrs["orchestrator_id"]})
					if h.Histogram == nil || int64(h.Histogram.Count) != w.messages[i].Load() {
						t.Errorf("%s count for %s = %v, recorded %d", schema.MessageLatency, attrs["orchestrator_id"], h.Histogram, w.messages[i].Load())
					}
				} else {
					got = sumPoints(rms, schema.TokensUsed, attrs)
					if got > want {
						t.Errorf("%s%v: received %d, more than the %d recorded", schema.TokensUsed, attrs, got, want)
					}
				}
				t.Logf("%s %s: recorded %d, received %d, lost %d (%.2f%%)", tc.name, attrs["orchestrator_id"],
					want, got, want-got, 100*float64(want-got)/float64(want))
			}
		})
	}
}

const (
	outageInterval        = 250 * time.Millisecond
	outageDuration        = 2 * time.Second
	workloadGoroutines    = 8
	workloadOrchestrators = 4
)

const (
	phaseBefore int32 = iota
	phaseOutage
	phaseAfter
)

var phaseNames = []string{"before", "outage", "after"}

// workload records from many goroutines and keeps exact totals of what it
// recorded, and the latency of each RecordTokenUsage call by phase.
type workload struct {
	phase    atomic.Int32
	tokens   [workloadOrchestrators]atomic.Int64
	messages [workloadOrchestrators]atomic.Int64

	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	lat  [3][]time.Duration
}

func startWorkload(t *testing.T, c *otelcollector.Collector) *workload {
	w := &workload{done: make(chan struct{})}
	for g := range workloadGoroutines {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			var lat [3][]time.Duration
			defer func() {
				w.mu.Lock()
				for i := range lat {
					w.lat[i] = append(w.lat[i], lat[i]...)
				}
				w.mu.Unlock()
			}()
			ctx := context.Background()
			o := g % workloadOrchestrators
			id := fmt.Sprintf("orch-%d", o)
			for i := 0; ; i++ {
				select {
				case <-w.done:
					return
				default:
				}
				n := int64(1 + i%7)
				ph := w.phase.Load()
				start := time.Now()
				err := c.RecordTokenUsage(ctx, id, "model-a", n)
				lat[ph] = append(lat[ph], time.Since(start))
				if err != nil {
					t.Errorf("RecordTokenUsage: %v", err)
					return
				}
				w.tokens[o].Add(n)
				if err := c.RecordMessageLatency(ctx, id, time.Duration(i%3000)*time.Millisecond); err != nil {
					t.Errorf("RecordMessageLatency: %v", err)
					return
				}
				w.messages[o].Add(1)
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	t.Cleanup(w.stop)
	return w
}

func (w *workload) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
}

func (w *workload) attrs(o int) map[string]string {
	return map[string]string{"orchestrator_id": fmt.Sprintf("orch-%d", o), "model": "model-a"}
}

func (w *workload) latencies() [3][]time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.lat {
		slices.Sort(w.lat[i])
	}
	return w.lat
}

// quantile returns the q-quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

// sumPoints adds up every point of the sum name with attrs in the file: the
// total received under delta temporality.
func sumPoints(rms []testpeer.ResourceMetrics, name string, attrs map[string]string) int64 {
	var total int64
	for _, rm := range rms {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != name || m.Sum == nil {
					continue
				}
				for _, dp := range m.Sum.DataPoints {
					if dp.AsInt != nil && sameAttrs(testpeer.Attrs(dp.Attributes), attrs) {
						total += *dp.AsInt
					}
				}
			}
		}
	}
	return total
}

func sameAttrs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	var families map[string]*dto.MetricFamily
	testpeer.WaitFor(t, e2eWait, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err = parser.TextToMetricFamilies(resp.Body)
		return err == nil && families["orchestrator_tokens_used_total"] != nil
	})
	return families
}

// sampleValue finds the sample of name (a family name or a histogram's
// _count or _bucket series) whose labels include attrs. Labels the
// Collector adds (job, instance) are ignored.
func sampleValue(families map[string]*dto.MetricFamily, name string, attrs map[string]string) (float64, bool) {
	base, suffix := name, ""
	for _, s := range []string{"_count", "_bucket"} {
		if f, ok := strings.CutSuffix(name, s); ok && families[f] != nil && families[f].GetType() == dto.MetricType_HISTOGRAM {
			base, suffix = f, s
		}
	}
	fam := families[base]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range attrs {
			if k != "le" && labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case suffix == "_count":
			return float64(m.GetHistogram().GetSampleCount()), true
		case suffix == "_bucket":
			for _, b := range m.GetHistogram().GetBucket() {
				if fmt.Sprint(b.GetUpperBound()) == attrs["le"] {
					return float64(b.GetCumulativeCount()), true
				}
			}
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}
