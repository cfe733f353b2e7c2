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
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/wundr-io/orchestrator-otel/exporters/otlp"
	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// The end-to-end tests push through a real OpenTelemetry Collector (built
// by .ci/build-collector.sh, started by internal/testpeer) and read back
// what it wrote with its file exporter, and what its Prometheus exporter
// serves. Each test function starts one Collector; its subtests keep apart
// by orchestrator ID (and service.name, for the exporter's own metric).

const e2eWait = 20 * time.Second

// newE2ECollector returns an otelcollector.Collector exporting through exp
// with the resource service.name=service, closed when the test ends.
func newE2ECollector(t *testing.T, exp *otlp.Exporter, service string) *otelcollector.Collector {
	t.Helper()
	res := resource.NewSchemaless(attribute.String("service.name", service))
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

// endpoint returns the peer's receiver address for protocol.
func endpoint(peer *testpeer.Collector, protocol otlp.Protocol) string {
	if protocol == otlp.ProtocolHTTP {
		return peer.HTTPEndpoint()
	}
	return peer.GRPCEndpoint()
}

func newE2EExporter(t *testing.T, protocol otlp.Protocol, endpoint string, opts ...otlp.Option) *otlp.Exporter {
	t.Helper()
	exp, err := otlp.New(context.Background(), append([]otlp.Option{
		otlp.WithProtocol(protocol), otlp.WithEndpoint(endpoint), otlp.WithInsecure(),
	}, opts...)...)
	if err != nil {
		t.Fatalf("otlp.New: %v", err)
	}
	return exp
}

var protocols = []otlp.Protocol{otlp.ProtocolGRPC, otlp.ProtocolHTTP}

func intValue(p testpeer.Point) int64 {
	v, _ := p.Int()
	return v
}

const cumulative = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE

// TestE2EAllMetrics: each of the eight metrics arrives with its name, type,
// unit, attributes and exact value, over gRPC and over HTTP, and the
// Collector's Prometheus exporter (without_scope_info) serves the legacy
// names with the same values.
func TestE2EAllMetrics(t *testing.T) {
	peer := testpeer.StartCollector(t, testpeer.CollectorOptions{})
	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			exp := newE2EExporter(t, protocol, endpoint(peer, protocol), otlp.WithInterval(time.Hour))
			c := newE2ECollector(t, exp, "orchestrator-e2e")
			ctx := context.Background()
			// This subtest's IDs.
			orch1, orch2, node1 := "orch-1-"+string(protocol), "orch-2-"+string(protocol), "node-1-"+string(protocol)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			for range 3 {
				must(c.RecordSessionStart(ctx, orch1, "claude-code"))
			}
			must(c.RecordSessionEnd(ctx, orch1, "claude-code"))
			must(c.RecordTokenUsage(ctx, orch1, "model-a", 1200))
			must(c.RecordTokenUsage(ctx, orch1, "model-a", 800))
			for _, d := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, 1500 * time.Millisecond, 7 * time.Second} {
				must(c.RecordMessageLatency(ctx, orch1, d))
			}
			for range 3 {
				must(c.RecordToolInvocation(ctx, orch1, "search", otelcollector.ToolSuccess))
			}
			must(c.RecordDelegation(ctx, orch1, orch2, otelcollector.DelegationSuccess))
			must(c.RecordDelegation(ctx, orch1, orch2, otelcollector.DelegationSuccess))
			must(c.UpdateNodeLoad(node1, 0.75))
			must(c.RecordError(ctx, orch1, "timeout"))
			must(c.UpdateBudgetUtilization(orch1, otelcollector.PeriodDaily, 42.5))
			must(c.Flush(ctx))

			type sumWant struct {
				name, unit string
				attrs      map[string]string
				monotonic  bool
				value      int64
			}
			for _, w := range []sumWant{
				{schema.SessionsActive, schema.UnitSessions, map[string]string{"orchestrator_id": orch1, "session_type": "claude-code"}, false, 2},
				{schema.TokensUsed, schema.UnitTokens, map[string]string{"orchestrator_id": orch1, "model": "model-a"}, true, 2000},
				{schema.ToolInvocations, schema.UnitInvocations, map[string]string{"orchestrator_id": orch1, "tool_name": "search", "status": "success"}, true, 3},
				{schema.Delegations, schema.UnitDelegations, map[string]string{"from_orchestrator": orch1, "to_orchestrator": orch2, "status": "success"}, true, 2},
				{schema.Errors, schema.UnitErrors, map[string]string{"orchestrator_id": orch1, "error_type": "timeout"}, true, 1},
			} {
				p := peer.WaitForPoint(e2eWait, w.name, w.attrs, nil)
				sum := p.Metric.GetSum()
				v, isInt := p.Int()
				switch {
				case sum == nil:
					t.Errorf("%s: not a sum", w.name)
				case !isInt || v != w.value:
					t.Errorf("%s%v = %v, want %d", w.name, w.attrs, p.Number.GetValue(), w.value)
				case sum.GetIsMonotonic() != w.monotonic || sum.GetAggregationTemporality() != cumulative:
					t.Errorf("%s: monotonic %v temporality %v, want %v cumulative", w.name, sum.GetIsMonotonic(), sum.GetAggregationTemporality(), w.monotonic)
				case p.Metric.GetUnit() != w.unit:
					t.Errorf("%s: unit %q, want %q", w.name, p.Metric.GetUnit(), w.unit)
				}
			}
			for _, w := range []struct {
				name, unit string
				attrs      map[string]string
				value      float64
			}{
				{schema.NodeLoad, "", map[string]string{"node_id": node1}, 0.75},
				{schema.BudgetUtilization, schema.UnitPercent, map[string]string{"orchestrator_id": orch1, "period": "daily"}, 42.5},
			} {
				p := peer.WaitForPoint(e2eWait, w.name, w.attrs, nil)
				v, isDouble := p.Double()
				switch {
				case p.Metric.GetGauge() == nil:
					t.Errorf("%s: not a gauge", w.name)
				case !isDouble || v != w.value:
					t.Errorf("%s%v = %v, want %v", w.name, w.attrs, p.Number.GetValue(), w.value)
				case p.Metric.GetUnit() != w.unit:
					t.Errorf("%s: unit %q, want %q", w.name, p.Metric.GetUnit(), w.unit)
				}
			}
			p := peer.WaitForPoint(e2eWait, schema.MessageLatency, map[string]string{"orchestrator_id": orch1}, nil)
			if h := p.Histogram; p.Metric.GetHistogram() == nil || h == nil {
				t.Errorf("%s: not a histogram", schema.MessageLatency)
			} else {
				if h.GetCount() != 4 || h.Sum == nil || math.Abs(h.GetSum()-8.85) > 1e-9 {
					t.Errorf("%s: count %d sum %v, want 4 and 8.85", schema.MessageLatency, h.GetCount(), h.Sum)
				}
				if want := []uint64{1, 1, 0, 1, 0, 1, 0}; !slices.Equal(h.GetBucketCounts(), want) {
					t.Errorf("%s: bucket counts %v, want %v", schema.MessageLatency, h.GetBucketCounts(), want)
				}
				if want := schema.DefaultLatencyBuckets(); !slices.Equal(h.GetExplicitBounds(), want) {
					t.Errorf("%s: bounds %v, want %v", schema.MessageLatency, h.GetExplicitBounds(), want)
				}
				if p.Metric.GetUnit() != schema.UnitSeconds {
					t.Errorf("%s: unit %q, want s", schema.MessageLatency, p.Metric.GetUnit())
				}
			}

			// The Collector's Prometheus exporter serves the legacy names.
			families := scrape(t, peer.PrometheusURL(), map[string]string{"orchestrator_id": orch1, "model": "model-a"})
			for _, w := range []struct {
				name  string
				attrs map[string]string
				value float64
			}{
				{"orchestrator_sessions_active", map[string]string{"orchestrator_id": orch1, "session_type": "claude-code"}, 2},
				{"orchestrator_tokens_used_total", map[string]string{"orchestrator_id": orch1, "model": "model-a"}, 2000},
				{"orchestrator_tool_invocations_total", map[string]string{"orchestrator_id": orch1, "tool_name": "search", "status": "success"}, 3},
				{"orchestrator_federation_delegations_total", map[string]string{"from_orchestrator": orch1, "to_orchestrator": orch2, "status": "success"}, 2},
				{"orchestrator_errors_total", map[string]string{"orchestrator_id": orch1, "error_type": "timeout"}, 1},
				{"orchestrator_node_load", map[string]string{"node_id": node1}, 0.75},
				{"orchestrator_budget_utilization_percent", map[string]string{"orchestrator_id": orch1, "period": "daily"}, 42.5},
				{"orchestrator_message_latency_seconds_count", map[string]string{"orchestrator_id": orch1}, 4},
				{"orchestrator_message_latency_seconds_bucket", map[string]string{"orchestrator_id": orch1, "le": "2"}, 3},
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
	peer := testpeer.StartCollector(t, testpeer.CollectorOptions{})
	for _, protocol := range protocols {
		t.Run(string(protocol), func(t *testing.T) {
			exp := newE2EExporter(t, protocol, endpoint(peer, protocol), otlp.WithInterval(time.Hour))
			c := newE2ECollector(t, exp, "orchestrator-e2e")
			ctx := context.Background()
			id := "orch-close-" + string(protocol)
			if err := c.RecordTokenUsage(ctx, id, "model-a", 4321); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			attrs := map[string]string{"orchestrator_id": id, "model": "model-a"}
			p := peer.WaitForPoint(e2eWait, schema.TokensUsed, attrs, nil)
			if got, ok := p.Int(); !ok || got != 4321 {
				t.Errorf("%s = %v, want 4321", schema.TokensUsed, p.Number.GetValue())
			}
			if err := exp.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown after Close: %v", err)
			}
		})
	}
}

// TestE2EUnreachableAtStart: New succeeds while nothing listens, the
// failures are logged and counted, and the data arrives once the Collector
// is up on the address the exporters were given.
func TestE2EUnreachableAtStart(t *testing.T) {
	grpcAddr := testpeer.ClosedAddr(t)
	httpAddr := testpeer.ClosedAddr(t)
	for httpAddr == grpcAddr {
		httpAddr = testpeer.ClosedAddr(t)
	}
	type side struct {
		protocol otlp.Protocol
		kind     string
		exp      *otlp.Exporter
		logs     *syncBuffer
	}
	sides := []*side{
		{protocol: otlp.ProtocolGRPC, kind: "unavailable"},
		{protocol: otlp.ProtocolHTTP, kind: "unreachable"},
	}
	for _, s := range sides {
		addr := map[otlp.Protocol]string{otlp.ProtocolGRPC: grpcAddr, otlp.ProtocolHTTP: httpAddr}[s.protocol]
		s.logs = &syncBuffer{}
		s.exp = newE2EExporter(t, s.protocol, addr, otlp.WithInterval(200*time.Millisecond),
			otlp.WithTimeout(time.Second), otlp.WithLogger(slog.New(slog.NewTextHandler(s.logs, nil))))
		c := newE2ECollector(t, s.exp, "e2e-unreachable-"+string(s.protocol))
		if err := c.RecordTokenUsage(context.Background(), "orch-late-"+string(s.protocol), "model-a", 77); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range sides {
		t.Run(string(s.protocol)+"/down", func(t *testing.T) {
			testpeer.Eventually(t, e2eWait, func() error {
				if n := s.exp.FailedExports(); n < 2 {
					return fmt.Errorf("FailedExports = %d, want >= 2", n)
				}
				return nil
			})
			out := s.logs.String()
			if n := strings.Count(out, "OTLP metric export failed"); n != 1 {
				t.Errorf("%d failure lines for %d failures, want 1 (rate-limited):\n%s", n, s.exp.FailedExports(), out)
			}
			if !strings.Contains(out, "kind="+s.kind) {
				t.Errorf("log does not name kind %q:\n%s", s.kind, out)
			}
		})
	}

	peer := testpeer.StartCollector(t, testpeer.CollectorOptions{GRPCAddr: grpcAddr, HTTPAddr: httpAddr})
	for _, s := range sides {
		t.Run(string(s.protocol)+"/up", func(t *testing.T) {
			attrs := map[string]string{"orchestrator_id": "orch-late-" + string(s.protocol), "model": "model-a"}
			p := peer.WaitForPoint(e2eWait, schema.TokensUsed, attrs, nil)
			if got, ok := p.Int(); !ok || got != 77 {
				t.Errorf("%s = %v, want 77", schema.TokensUsed, p.Number.GetValue())
			}
			failed := s.exp.FailedExports()
			service := "e2e-unreachable-" + string(s.protocol)
			fp := peer.WaitForPoint(e2eWait, schema.OTLPFailedExports, nil, func(p testpeer.Point) bool {
				return p.ResourceAttr("service.name") == service && intValue(p) > 0
			})
			if got := intValue(fp); got > failed {
				t.Errorf("%s = %d, more than FailedExports %d", schema.OTLPFailedExports, got, failed)
			}
			t.Logf("%d exports failed before the Collector came up; %s arrived as %d", failed, schema.OTLPFailedExports, intValue(fp))
		})
	}
}

// TestE2EAuth: the Collector requires a bearer token. The right one gets
// the data in; a wrong one is refused, reported and counted.
func TestE2EAuth(t *testing.T) {
	const token = "right-token"
	peer := testpeer.StartCollector(t, testpeer.CollectorOptions{BearerToken: token})
	for _, tc := range []struct {
		protocol otlp.Protocol
		kind     string
	}{{otlp.ProtocolGRPC, "unauthenticated"}, {otlp.ProtocolHTTP, "http_401"}} {
		t.Run(string(tc.protocol), func(t *testing.T) {
			ctx := context.Background()
			goodID, badID := "orch-good-"+string(tc.protocol), "orch-bad-"+string(tc.protocol)
			good := newE2EExporter(t, tc.protocol, endpoint(peer, tc.protocol), otlp.WithInterval(time.Hour),
				otlp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
			gc := newE2ECollector(t, good, "e2e-auth-good")
			if err := gc.RecordTokenUsage(ctx, goodID, "model-a", 5); err != nil {
				t.Fatal(err)
			}
			if err := gc.Flush(ctx); err != nil {
				t.Fatalf("Flush with the right token: %v", err)
			}
			p := peer.WaitForPoint(e2eWait, schema.TokensUsed, map[string]string{"orchestrator_id": goodID, "model": "model-a"}, nil)
			if got, ok := p.Int(); !ok || got != 5 {
				t.Errorf("%s = %v, want 5", schema.TokensUsed, p.Number.GetValue())
			}

			var logs syncBuffer
			bad := newE2EExporter(t, tc.protocol, endpoint(peer, tc.protocol), otlp.WithInterval(time.Hour),
				otlp.WithHeaders(map[string]string{"Authorization": "Bearer wrong-token"}),
				otlp.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			bc := newE2ECollector(t, bad, "e2e-auth-bad")
			if err := bc.RecordTokenUsage(ctx, badID, "model-a", 6); err != nil {
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
			if err := gc.RecordTokenUsage(ctx, goodID, "model-a", 1); err != nil {
				t.Fatal(err)
			}
			if err := gc.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			peer.WaitForPoint(e2eWait, schema.TokensUsed, map[string]string{"orchestrator_id": goodID, "model": "model-a"},
				func(p testpeer.Point) bool { return intValue(p) == 6 })
			if _, ok := peer.LastPoint(schema.TokensUsed, map[string]string{"orchestrator_id": badID, "model": "model-a"}); ok {
				t.Error("data pushed with the wrong token arrived")
			}
		})
	}
}

// TestE2EOutage: the Collector is stopped for several export intervals,
// then restarted, while three Collectors of this library push to it:
//
//   - two with cumulative temporality (gRPC and HTTP), whose eight
//     goroutines keep recording through the outage: the totals read back at
//     the end equal exactly what was recorded, and recording went on while
//     the exports failed;
//   - one with delta temporality (gRPC, no retries), driven interval by
//     interval: each interval's records are complete before its Flush, so a
//     ledger knows each export's exact delta. Every export while the
//     Collector is up must arrive as one point of exactly its delta, every
//     one while it is down must fail, and nothing else may arrive.
//
// Record latency is measured before, during and after the outage and only
// logged: a timing on a loaded machine is no assertion.
func TestE2EOutage(t *testing.T) {
	peer := testpeer.StartCollector(t, testpeer.CollectorOptions{})
	type run struct {
		name string
		exp  *otlp.Exporter
		c    *otelcollector.Collector
		w    *workload
		// FailedExports when the outage began.
		failedBefore int64
	}
	var runs []*run
	for _, protocol := range protocols {
		name := "outage-cumulative-" + string(protocol)
		exp := newE2EExporter(t, protocol, endpoint(peer, protocol), otlp.WithTemporality(otlp.Cumulative),
			otlp.WithInterval(outageInterval), otlp.WithTimeout(500*time.Millisecond))
		c := newE2ECollector(t, exp, name)
		runs = append(runs, &run{name: name, exp: exp, c: c, w: startWorkload(t, c, name)})
	}
	d := newDeltaLedger(t, peer)

	// Up: a first delivery from each, and delta exports that all succeed.
	for _, r := range runs {
		peer.WaitForPoint(e2eWait, schema.TokensUsed, r.w.attrs(0), nil)
	}
	d.intervals(t, "before", 3)

	for _, r := range runs {
		r.w.phase.Store(phaseOutage)
		r.failedBefore = r.exp.FailedExports()
	}
	peer.Stop()
	d.intervals(t, "outage", 3)
	for _, r := range runs {
		testpeer.Eventually(t, e2eWait, func() error {
			if n := r.exp.FailedExports() - r.failedBefore; n < 2 {
				return fmt.Errorf("%s: %d exports failed since the Collector stopped, want >= 2", r.name, n)
			}
			return nil
		})
	}

	for _, r := range runs {
		r.w.phase.Store(phaseAfter)
	}
	peer.Restart()
	restarted := uint64(time.Now().UnixNano())
	// Keep recording until an export reaches the new process.
	for _, r := range runs {
		peer.WaitForPoint(e2eWait, schema.TokensUsed, r.w.attrs(0), func(p testpeer.Point) bool {
			return p.TimeUnixNano() > restarted
		})
	}
	d.reconnect(t)
	d.intervals(t, "after", 3)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range runs {
		r.w.stop()
		if err := r.c.Close(ctx); err != nil {
			t.Fatalf("%s: Close: %v", r.name, err)
		}
	}

	for _, r := range runs {
		lat := r.w.latencies()
		for ph := range phaseNames {
			t.Logf("%s: record latency %-7s n=%-6d p50=%v p99=%v max=%v", r.name, phaseNames[ph], len(lat[ph]),
				quantile(lat[ph], 0.5), quantile(lat[ph], 0.99), quantile(lat[ph], 1))
			// Not blocked: recording went on in every phase, the outage
			// included.
			if len(lat[ph]) == 0 {
				t.Errorf("%s: nothing was recorded %s the outage", r.name, phaseNames[ph])
			}
		}
		t.Logf("%s: exports failed during the outage: %d (interval %v); FailedExports total %d",
			r.name, r.exp.FailedExports()-r.failedBefore, outageInterval, r.exp.FailedExports())
		// Close delivered the final totals: exactly what was recorded.
		for i := range workloadOrchestrators {
			attrs := r.w.attrs(i)
			id := attrs["orchestrator_id"]
			want, wantMessages := r.w.tokens[i].Load(), r.w.messages[i].Load()
			testpeer.Eventually(t, e2eWait, func() error {
				p, ok := peer.LastPoint(schema.TokensUsed, attrs)
				if got := intValue(p); !ok || got != want {
					return fmt.Errorf("%s%v = %d (found %v), recorded %d", schema.TokensUsed, attrs, got, ok, want)
				}
				h, _ := peer.LastPoint(schema.MessageLatency, map[string]string{"orchestrator_id": id})
				if got := h.Histogram.GetCount(); int64(got) != wantMessages {
					return fmt.Errorf("%s count for %s = %d, recorded %d", schema.MessageLatency, id, got, wantMessages)
				}
				return nil
			})
		}
	}
	d.check(t, peer)
}

const (
	outageInterval        = 250 * time.Millisecond
	workloadGoroutines    = 8
	workloadOrchestrators = 4
)

const (
	phaseBefore int32 = iota
	phaseOutage
	phaseAfter
)

var phaseNames = []string{"before", "during", "after"}

// workload records from many goroutines and keeps exact totals of what it
// recorded, and the latency of each RecordTokenUsage call by phase.
type workload struct {
	prefix   string
	phase    atomic.Int32
	tokens   [workloadOrchestrators]atomic.Int64
	messages [workloadOrchestrators]atomic.Int64

	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	lat  [3][]time.Duration
}

// startWorkload records for the orchestrators prefix-0 … prefix-3 until
// stopped.
func startWorkload(t *testing.T, c *otelcollector.Collector, prefix string) *workload {
	w := &workload{prefix: prefix, done: make(chan struct{})}
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
			id := w.attrs(o)["orchestrator_id"]
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
	return map[string]string{"orchestrator_id": fmt.Sprintf("%s-%d", w.prefix, o), "model": "model-a"}
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

// deltaLedger drives a delta-temporality Collector of this library one
// export at a time and records what each export carried.
type deltaLedger struct {
	c     *otelcollector.Collector
	attrs map[string]string
	// delivered holds, in order, the delta of each export that succeeded.
	delivered []int64
	lost      int64
	step      int64
}

func newDeltaLedger(t *testing.T, peer *testpeer.Collector) *deltaLedger {
	// Without retries a failed export is given up at once; the periodic
	// exports (hourly) never run, so each Flush is one export.
	exp := newE2EExporter(t, otlp.ProtocolGRPC, peer.GRPCEndpoint(), otlp.WithTemporality(otlp.Delta),
		otlp.WithInterval(time.Hour), otlp.WithRetry(false))
	return &deltaLedger{
		c:     newE2ECollector(t, exp, "outage-delta-grpc"),
		attrs: map[string]string{"orchestrator_id": "outage-delta-0", "model": "model-a"},
	}
}

// interval records from workloadGoroutines goroutines, waits for them, and
// flushes: one export carrying exactly what they recorded. It returns the
// Flush error.
func (d *deltaLedger) interval(t *testing.T) error {
	t.Helper()
	var (
		wg    sync.WaitGroup
		total atomic.Int64
	)
	ctx := context.Background()
	for range workloadGoroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				n := 1 + atomic.AddInt64(&d.step, 1)%7
				if err := d.c.RecordTokenUsage(ctx, d.attrs["orchestrator_id"], "model-a", n); err != nil {
					t.Errorf("RecordTokenUsage: %v", err)
					return
				}
				total.Add(n)
			}
		}()
	}
	wg.Wait()
	err := d.c.Flush(ctx)
	if err == nil {
		d.delivered = append(d.delivered, total.Load())
	} else {
		d.lost += total.Load()
	}
	return err
}

// intervals runs n intervals in a phase: each must succeed while the
// Collector is up, and fail while it is down.
func (d *deltaLedger) intervals(t *testing.T, phase string, n int) {
	t.Helper()
	for i := range n {
		err := d.interval(t)
		switch {
		case phase == "outage" && err == nil:
			t.Errorf("delta: export %d while the Collector was down succeeded", i)
		case phase != "outage" && err != nil:
			t.Fatalf("delta: export %d %s the outage failed: %v", i, phase, err)
		}
	}
}

// reconnect runs intervals until one succeeds: the gRPC connection comes
// back after a back-off of its own. What the failed ones carried is lost.
func (d *deltaLedger) reconnect(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for d.interval(t) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("delta: no export succeeded within %v of the restart", e2eWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// check: the file holds one delta point per successful export, in order,
// each exactly that export's delta, and nothing else.
func (d *deltaLedger) check(t *testing.T, peer *testpeer.Collector) {
	t.Helper()
	var got []int64
	testpeer.Eventually(t, e2eWait, func() error {
		got = got[:0]
		for _, p := range peer.Points(schema.TokensUsed, d.attrs) {
			if tm := p.Metric.GetSum().GetAggregationTemporality(); tm != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA {
				return fmt.Errorf("delta: a point with temporality %v", tm)
			}
			got = append(got, intValue(p))
		}
		if len(got) < len(d.delivered) {
			return fmt.Errorf("delta: %d of %d exports arrived", len(got), len(d.delivered))
		}
		return nil
	})
	if !slices.Equal(got, d.delivered) {
		t.Errorf("delta: points received %v, exports that succeeded carried %v", got, d.delivered)
	}
	var sum int64
	for _, v := range d.delivered {
		sum += v
	}
	t.Logf("delta: %d exports delivered %d tokens exactly; %d tokens went with the failed exports", len(d.delivered), sum, d.lost)
}

// scrape returns what url serves once it holds the tokens series with
// tokenAttrs.
func scrape(t *testing.T, url string, tokenAttrs map[string]string) map[string]*dto.MetricFamily {
	t.Helper()
	var families map[string]*dto.MetricFamily
	testpeer.Eventually(t, e2eWait, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		if families, err = parser.TextToMetricFamilies(resp.Body); err != nil {
			return err
		}
		if _, ok := sampleValue(families, "orchestrator_tokens_used_total", tokenAttrs); !ok {
			return fmt.Errorf("no orchestrator_tokens_used_total%v yet", tokenAttrs)
		}
		return nil
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
