package otelcollector_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// explosionSize is the number of distinct label values each cardinality
// test records: 1,000,000, or 100,000 under the race detector, which makes
// each record about ten times slower.
func explosionSize() int {
	if raceDetector {
		return 100_000
	}
	return 1_000_000
}

// Heap bounds of the cardinality tests, in bytes of live heap after GC.
//
// explosionGrowthBound bounds the growth from the moment every instrument
// holds its limit of series to the end of the explosion, that is what
// explosionSize-limit further distinct values cost: nothing but noise,
// since they all land in the overflow series.
//
// explosionHeapBound bounds the growth from before New to the end: the
// Collector, its limit-1 series per instrument in the label cache and in
// the SDK's three readers (the test's ManualReader, the Prometheus exporter,
// the in-memory stats reader), with their exemplar reservoirs, and the
// stats samples. Measured: 4.4 to 5.1 MiB for a label feeding one counter,
// 12.8 to 28.1 MiB for orchestrator IDs (a counter and the histogram; the
// figure moved with the in-memory stats code), the same for 10,000, 100,000
// and 1,000,000 values (docs/reliability.md). An unbounded SDK would keep a
// series, with its reservoirs, per value: gigabytes for 1,000,000 values.
const (
	explosionGrowthBound = 2 << 20
	explosionHeapBound   = 40 << 20
)

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// sumPoints returns the int sum or histogram points of m by attribute set.
func sumPoints(t *testing.T, m metricdata.Metrics) map[attribute.Distinct]int64 {
	t.Helper()
	out := map[attribute.Distinct]int64{}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			out[dp.Attributes.Equivalent()] = dp.Value
		}
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			out[dp.Attributes.Equivalent()] = int64(dp.Count)
		}
	default:
		t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
	}
	return out
}

// overflowSet is the overflow series' attribute set as a WithReader reader
// sees it: the string form the synchronous instruments record (the
// exporters get the SDK's bool form from the Collector's store; both scrape
// as otel_metric_overflow="true").
var overflowSet = attribute.NewSet(attribute.String("otel.metric.overflow", "true"))

// explosion is one label that takes a million distinct values.
type explosion struct {
	name string
	// metrics are the instruments record adds 1 to.
	metrics []string
	// record adds n to the series of the i-th value of the label.
	record func(c *otelcollector.Collector, i int, n int64) error
	// attrs is the attribute set of the i-th value's series of metric.
	attrs func(metric string, i int) attribute.Set
	// check, if set, checks the in-memory stats; own is the expected count
	// of the first value's series.
	check func(t *testing.T, c *otelcollector.Collector, own func(i int) int64, kept int)
}

func toolName(i int) string  { return fmt.Sprintf("tool-%07d", i) }
func modelName(i int) string { return fmt.Sprintf("model-%07d", i) }
func orchID(i int) string    { return fmt.Sprintf("orch-%07d", i) }

var explosions = []explosion{
	{
		name:    "labels=tool_name",
		metrics: []string{"orchestrator.tool.invocations"},
		record: func(c *otelcollector.Collector, i int, n int64) error {
			for range n {
				if err := c.RecordToolInvocation(context.Background(), "orch", toolName(i), otelcollector.ToolSuccess); err != nil {
					return err
				}
			}
			return nil
		},
		attrs: func(_ string, i int) attribute.Set {
			return set("orchestrator_id", "orch", "tool_name", toolName(i), "status", "success")
		},
		check: func(t *testing.T, c *otelcollector.Collector, own func(int) int64, kept int) {
			st := statsOf(t, c, "orch")
			checkByName(t, "ToolCallsByTool", st.ToolCallsByTool, toolName, own, kept)
			if st.ToolInvocations != sumOwn(own, kept) {
				t.Errorf("stats ToolInvocations = %d, want %d (own series only)", st.ToolInvocations, sumOwn(own, kept))
			}
		},
	},
	{
		name:    "labels=model",
		metrics: []string{"orchestrator.tokens.used"},
		record: func(c *otelcollector.Collector, i int, n int64) error {
			return c.RecordTokenUsage(context.Background(), "orch", modelName(i), n)
		},
		attrs: func(_ string, i int) attribute.Set { return set("orchestrator_id", "orch", "model", modelName(i)) },
		check: func(t *testing.T, c *otelcollector.Collector, own func(int) int64, kept int) {
			st := statsOf(t, c, "orch")
			checkByName(t, "TokensByModel", st.TokensByModel, modelName, own, kept)
			if st.TotalTokens != sumOwn(own, kept) {
				t.Errorf("stats TotalTokens = %d, want %d (own series only)", st.TotalTokens, sumOwn(own, kept))
			}
		},
	},
	{
		name:    "labels=orchestrator_id",
		metrics: []string{"orchestrator.tokens.used", "orchestrator.message.latency"},
		record: func(c *otelcollector.Collector, i int, n int64) error {
			if err := c.RecordTokenUsage(context.Background(), orchID(i), "model", n); err != nil {
				return err
			}
			for range n {
				if err := c.RecordMessageLatency(context.Background(), orchID(i), 300*time.Millisecond); err != nil {
					return err
				}
			}
			return nil
		},
		attrs: func(metric string, i int) attribute.Set {
			if metric == "orchestrator.tokens.used" {
				return set("orchestrator_id", orchID(i), "model", "model")
			}
			return set("orchestrator_id", orchID(i))
		},
		check: func(t *testing.T, c *otelcollector.Collector, own func(int) int64, kept int) {
			for _, i := range []int{0, 1, kept - 1} {
				st := statsOf(t, c, orchID(i))
				if st.TotalTokens != own(i) || st.Messages != own(i) {
					t.Errorf("stats of %s: tokens %d, messages %d; want %d each", orchID(i), st.TotalTokens, st.Messages, own(i))
				}
			}
			// An orchestrator past the limit has its records in the overflow
			// series only: its stats are empty.
			if st := statsOf(t, c, orchID(kept)); st.TotalTokens != 0 || st.Messages != 0 {
				t.Errorf("stats of overflowed %s: %+v, want zero", orchID(kept), st)
			}
		},
	},
}

func statsOf(t *testing.T, c *otelcollector.Collector, id string) otelcollector.AggregatedStats {
	t.Helper()
	st, err := c.AggregatedStats(context.Background(), id, otelcollector.Last(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func sumOwn(own func(int) int64, kept int) int64 {
	var s int64
	for i := range kept {
		s += own(i)
	}
	return s
}

func checkByName(t *testing.T, what string, got map[string]int64, name func(int) string, own func(int) int64, kept int) {
	t.Helper()
	if len(got) != kept {
		t.Errorf("stats %s has %d names, want %d", what, len(got), kept)
	}
	for i := range kept {
		if got[name(i)] != own(i) {
			t.Errorf("stats %s[%s] = %d, want %d", what, name(i), got[name(i)], own(i))
			return
		}
	}
}

// TestCardinalityExplosion records explosionSize distinct values of one
// label (tool names, models, orchestrator IDs) into a Collector with the
// default cardinality limit (2000). It checks that:
//   - the values past the limit grow the live heap by less than
//     explosionGrowthBound, and the whole test by less than
//     explosionHeapBound;
//   - each instrument exports exactly limit-1 series of its own plus the
//     overflow series otel.metric.overflow=true;
//   - every kept series has its exact value, including records made to it
//     after the overflow began;
//   - the overflow series carries exactly the excess, and Overflowed and
//     orchestrator_collector_overflow_total{metric} count it;
//   - a Prometheus scrape passes promtool check metrics and shows the
//     overflow series with otel_metric_overflow="true";
//   - AggregatedStats agree with the kept series.
func TestCardinalityExplosion(t *testing.T) {
	n := explosionSize()
	limit := otelcollector.DefaultCardinalityLimit
	kept := limit - 1
	for _, ex := range explosions {
		t.Run(ex.name, func(t *testing.T) {
			start := time.Now()
			base := heapAfterGC()
			reader := sdkmetric.NewManualReader()
			exp, err := prometheus.New()
			if err != nil {
				t.Fatal(err)
			}
			c, err := otelcollector.New(context.Background(), otelcollector.WithReader(reader), otelcollector.WithExporter(exp))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())

			// own(i) is what the i-th kept series must hold: 1 + i%3 before
			// the explosion, 1 from it, and 1 more for i < 100 after it.
			own := func(i int) int64 {
				v := int64(1+i%3) + 1
				if i < 100 {
					v++
				}
				return v
			}
			for i := range kept {
				if err := ex.record(c, i, int64(1+i%3)); err != nil {
					t.Fatal(err)
				}
			}
			// Read everything back once, so that the readers' and the
			// stats' buffers are at their full size before measuring.
			collect(t, reader)
			scrapeHandler(t, exp.Handler())
			statsOf(t, c, "orch")
			// A collection hands the instruments' deltas to the Collector's
			// stores, and the SDK frees their state; the first record of
			// each kept series after it allocates that state again. Record
			// the kept series first, so that the bound below measures the
			// values past the limit only.
			for i := range kept {
				if err := ex.record(c, i, 1); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			full := heapAfterGC()

			for i := kept; i < n; i++ {
				if err := ex.record(c, i, 1); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			for i := range 100 {
				if err := ex.record(c, i, 1); err != nil {
					t.Fatal(err)
				}
			}
			recordTime := time.Since(start)
			exploded := heapAfterGC()
			excess := int64(n - kept)

			ms := collect(t, reader)
			for _, name := range ex.metrics {
				pts := sumPoints(t, ms[name])
				if len(pts) != limit {
					t.Errorf("%s: %d series, want %d (limit-1 own + overflow)", name, len(pts), limit)
				}
				if got := pts[overflowSet.Equivalent()]; got != excess {
					t.Errorf("%s: overflow series = %d, want the excess %d", name, got, excess)
				}
				for i := range kept {
					a := ex.attrs(name, i)
					if got := pts[a.Equivalent()]; got != own(i) {
						t.Fatalf("%s: series %v = %d, want %d", name, a.ToSlice(), got, own(i))
					}
				}
				if got, _ := intValue(ms["orchestrator.collector.overflow"], set("metric", name)); got != excess {
					t.Errorf("orchestrator.collector.overflow{metric=%s} = %d, want %d", name, got, excess)
				}
			}
			if got, want := c.Overflowed(), excess*int64(len(ex.metrics)); got != want {
				t.Errorf("Overflowed() = %d, want %d", got, want)
			}
			if ex.check != nil {
				ex.check(t, c, own, kept)
			}

			body := scrapeHandler(t, exp.Handler())
			if !strings.Contains(body, `otel_metric_overflow="true"`) {
				t.Error(`scrape has no otel_metric_overflow="true" series`)
			}
			if !strings.Contains(body, fmt.Sprintf(`orchestrator_collector_overflow_total{metric=%q} %d`, ex.metrics[0], excess)) {
				t.Errorf("scrape lacks orchestrator_collector_overflow_total{metric=%q} %d", ex.metrics[0], excess)
			}
			// Only this part needs promtool: without it (outside CI) the
			// subtest skips and the heap bounds below still hold.
			t.Run("promtool", func(t *testing.T) {
				out, err := testpeer.Promtool(t, []byte(body), "check", "metrics")
				if err != nil || len(out) != 0 {
					t.Errorf("promtool check metrics: %v\n%s", err, out)
				}
			})
			scrapeLen := len(body)
			body = ""
			ms = nil

			end := heapAfterGC()
			t.Logf("%d distinct values (+%d re-records) in %v: %d series per instrument, overflow %d; heap: +%.1f MiB to fill the limit, %+.2f MiB for the rest of the values, +%.1f MiB in all; scrape %d KiB",
				n, kept+100, recordTime.Round(time.Millisecond), limit, excess,
				mib(int64(full)-int64(base)), mib(int64(exploded)-int64(full)), mib(int64(end)-int64(base)), scrapeLen>>10)
			if d := int64(exploded) - int64(full); d > explosionGrowthBound {
				t.Errorf("%d values past the limit grew the heap by %d bytes, bound %d", excess, d, explosionGrowthBound)
			}
			if d := int64(end) - int64(base); d > explosionHeapBound {
				t.Errorf("heap grew by %d bytes in all, bound %d", d, explosionHeapBound)
			}
		})
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func scrapeHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d", rec.Code)
	}
	return rec.Body.String()
}

// TestGaugeCardinalityBound updates explosionSize distinct node IDs and
// budget series: the gauges keep limit-1 series each, reject the rest with
// ErrCardinalityLimit (counted by metric), keep updating the series they
// have, and accept a new series once one is forgotten.
func TestGaugeCardinalityBound(t *testing.T) {
	n := explosionSize()
	const limit = otelcollector.DefaultCardinalityLimit
	base := heapAfterGC()
	c, r := newTestCollector(t)
	var rejected int64
	for i := range n {
		err := c.UpdateNodeLoad(fmt.Sprintf("node-%07d", i), 0.5)
		switch {
		case i < limit-1 && err != nil:
			t.Fatalf("node %d: %v", i, err)
		case i >= limit-1 && !errors.Is(err, otelcollector.ErrCardinalityLimit):
			t.Fatalf("node %d past the limit: %v, want ErrCardinalityLimit", i, err)
		case err != nil:
			rejected++
		}
	}
	// Budget: one orchestrator per period, distinct orchestrators.
	for i := range limit + 10 {
		err := c.UpdateBudgetUtilization(orchID(i), otelcollector.PeriodDaily, 50)
		if (i < limit-1) != (err == nil) {
			t.Fatalf("budget %d: %v", i, err)
		}
	}
	if err := c.UpdateNodeLoad("node-0000000", 0.9); err != nil {
		t.Fatalf("updating a kept node: %v", err)
	}
	if err := c.UpdateNodeLoad("node-new", 0.1); !errors.Is(err, otelcollector.ErrCardinalityLimit) || !strings.Contains(err.Error(), `node_id "node-new"`) {
		t.Fatalf("new node at the limit: %v", err)
	}
	c.ForgetNode("node-0000001")
	if err := c.UpdateNodeLoad("node-new", 0.1); err != nil {
		t.Fatalf("new node after a Forget: %v", err)
	}
	ms := collect(t, r)
	if got := seriesCount(ms["orchestrator.node.load"]); got != limit-1 {
		t.Errorf("node load: %d series, want %d", got, limit-1)
	}
	if v, ok := floatGauge(ms["orchestrator.node.load"], set("node_id", "node-0000000")); !ok || v != 0.9 {
		t.Errorf("kept node = %v, %v; want 0.9", v, ok)
	}
	if _, ok := floatGauge(ms["orchestrator.node.load"], overflowSet); ok {
		t.Error("a gauge has an overflow series")
	}
	if got := seriesCount(ms["orchestrator.budget.utilization"]); got != limit-1 {
		t.Errorf("budget: %d series, want %d", got, limit-1)
	}
	wantNode := rejected + 1 // node-new at the limit
	if v, _ := intValue(ms["orchestrator.collector.overflow"], set("metric", "orchestrator.node.load")); v != wantNode {
		t.Errorf("overflow{node load} = %d, want %d", v, wantNode)
	}
	if v, _ := intValue(ms["orchestrator.collector.overflow"], set("metric", "orchestrator.budget.utilization")); v != 11 {
		t.Errorf("overflow{budget} = %d, want 11", v)
	}
	if c.Rejected() != 0 {
		t.Errorf("Rejected() = %d: limit rejections are counted as overflow, not as invalid input", c.Rejected())
	}
	ms = nil
	grown := int64(heapAfterGC()) - int64(base)
	t.Logf("%d node IDs: %d kept, %d rejected; heap +%.1f MiB", n, limit-1, rejected, float64(grown)/(1<<20))
	if grown > explosionHeapBound {
		t.Errorf("heap grew by %d bytes, bound %d", grown, explosionHeapBound)
	}
}

// TestOverflowNotExportedUntilItHappens: a Collector that never reaches its
// limit exports no orchestrator.collector.overflow series at all, so that
// existing scrapes are unchanged.
// TestOverflowExportedAtZero (issue 14): every metric's overflow count is
// exported from the start, at 0, so that increase() sees its first
// overflow and alerts work across scrape gaps and restarts; it counts from
// the first overflow on.
func TestOverflowExportedAtZero(t *testing.T) {
	c, r := newTestCollector(t, otelcollector.WithCardinalityLimit(3))
	ctx := context.Background()
	ms := collect(t, r)["orchestrator.collector.overflow"]
	for _, name := range []string{"orchestrator.sessions.active", "orchestrator.tokens.used", "orchestrator.message.latency",
		"orchestrator.tool.invocations", "orchestrator.federation.delegations", "orchestrator.node.load",
		"orchestrator.errors", "orchestrator.budget.utilization"} {
		if v, ok := intValue(ms, set("metric", name)); !ok || v != 0 {
			t.Errorf("before any record: overflow{metric=%s} = %d, present %v; want 0", name, v, ok)
		}
	}
	_ = c.RecordToolInvocation(ctx, "o", "a", otelcollector.ToolSuccess)
	_ = c.RecordToolInvocation(ctx, "o", "b", otelcollector.ToolSuccess)
	if v, ok := intValue(collect(t, r)["orchestrator.collector.overflow"], set("metric", "orchestrator.tool.invocations")); !ok || v != 0 {
		t.Fatalf("at the limit: overflow = %d, %v; want 0", v, ok)
	}
	_ = c.RecordToolInvocation(ctx, "o", "c", otelcollector.ToolSuccess)
	if v, _ := intValue(collect(t, r)["orchestrator.collector.overflow"], set("metric", "orchestrator.tool.invocations")); v != 1 {
		t.Fatalf("overflow = %d, want 1", v)
	}
	if c.Overflowed() != 1 {
		t.Fatalf("Overflowed() = %d, want 1", c.Overflowed())
	}
}

// TestOverflowThroughHandles: records through handles bound past the limit
// go to the overflow series and are counted like the Collector's methods.
func TestOverflowThroughHandles(t *testing.T) {
	for _, m := range counterModes {
		t.Run(m.name, func(t *testing.T) {
			c, r := newTestCollector(t, append(m.opts, otelcollector.WithCardinalityLimit(2))...)
			ctx := context.Background()
			o1, _ := c.Orchestrator("o1")
			o2, err := c.Orchestrator("o2") // past the latency limit
			if err != nil {
				t.Fatal(err)
			}
			_ = o1.RecordMessageLatency(ctx, time.Second)
			_ = o2.RecordMessageLatency(ctx, time.Second)
			_ = o2.RecordMessageLatency(ctx, time.Second)
			m1, _ := o1.Model("m")
			m2, _ := o2.Model("m") // past the token limit
			_ = m1.Add(ctx, 5)
			_ = m2.Add(ctx, 7)
			_ = m2.Add(ctx, 7)
			ms := collect(t, r)
			if v, _ := intValue(ms["orchestrator.tokens.used"], overflowSet); v != 14 {
				t.Errorf("tokens overflow series = %d, want 14", v)
			}
			if v, _ := intValue(ms["orchestrator.collector.overflow"], set("metric", "orchestrator.tokens.used")); v != 2 {
				t.Errorf("overflow{tokens} = %d, want 2 records", v)
			}
			if v, _ := intValue(ms["orchestrator.collector.overflow"], set("metric", "orchestrator.message.latency")); v != 2 {
				t.Errorf("overflow{latency} = %d, want 2 records", v)
			}
			if got := sumPoints(t, ms["orchestrator.message.latency"])[overflowSet.Equivalent()]; got != 2 {
				t.Errorf("latency overflow count = %d, want 2", got)
			}
		})
	}
}
