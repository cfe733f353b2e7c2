package otelcollector_test

// The benchmark suite: each workload through this library, through
// prometheus/client_golang and through the raw OTel SDK, side by side.
// `make bench` runs it and compares with benchstat; docs/benchmarks.md has
// the results. Names follow BenchmarkX/impl=.../mode=single|parallel:
//
//	impl=otelcollector               Collector method with string labels (default, synchronous counters)
//	impl=otelcollector-atomic        the same with WithAtomicCounters
//	impl=otelcollector-bound         a bound handle (TokenCounter, ToolCounter, ...)
//	impl=otelcollector-bound-atomic  the same with WithAtomicCounters
//	impl=otelcollector-nostats       WithoutAggregatedStats: the user's one reader only
//	impl=otelcollector-native        WithNativeLatencyHistogram (latency only)
//	impl=clientgolang                client_golang Vec.WithLabelValues(...).Add/Observe
//	impl=clientgolang-bound          a client_golang Counter/Observer bound once
//	impl=otelsdk                     SDK instrument, pre-built []AddOption passed as opts...,
//	                                 with two readers (what the Collector had until its stats
//	                                 read its own live state: a ManualReader plus a stats reader)
//	impl=otelsdk-1reader             the same with one reader: the Collector's readers now
//
// The sizes 10000 and 100000 of BenchmarkScrape and BenchmarkCollect, and
// 10000 series in BenchmarkMemoryPerSeries, run only with BENCH_LARGE=1 and
// never with -short, so that the smoke run (-benchtime=100x) stays quick.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// The labels every record benchmark uses: one series per benchmark.
const (
	benchOrch  = "orch-1"
	benchModel = "claude-sonnet"
	benchTool  = "search"
	benchSess  = "claude-code"
)

// Help texts and names as the Collector exports them, so that the
// client_golang comparison scrapes the same text.
const (
	helpTokens   = "LLM tokens consumed, by orchestrator and model."
	helpRejected = "Records the collector rejected as invalid, by reason; a rejected record changes no other series."
)

var benchLatencyBuckets = []float64{0.1, 0.5, 1, 2, 5, 10}

// runModes runs f as mode=single (one goroutine) and mode=parallel
// (b.RunParallel, GOMAXPROCS goroutines on the same series).
func runModes(b *testing.B, op func()) {
	b.Run("mode=single", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			op()
		}
	})
	b.Run("mode=parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				op()
			}
		})
	})
}

func benchCollector(b *testing.B, opts ...otelcollector.Option) *otelcollector.Collector {
	b.Helper()
	opts = append([]otelcollector.Option{otelcollector.WithReader(sdkmetric.NewManualReader())}, opts...)
	c, err := otelcollector.New(context.Background(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// benchMeter returns a Meter of a MeterProvider with readers ManualReaders
// and the Collector's default cardinality limit and resource.
func benchMeter(b *testing.B, readers int) metric.Meter {
	b.Helper()
	opts := []sdkmetric.Option{
		sdkmetric.WithResource(resource.Default()),
		sdkmetric.WithCardinalityLimit(otelcollector.DefaultCardinalityLimit),
	}
	for range readers {
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewManualReader()))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp.Meter("bench")
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

func BenchmarkRecordTokenUsage(b *testing.B) {
	ctx := context.Background()
	for _, atomicMode := range []bool{false, true} {
		suffix, opts := "", []otelcollector.Option(nil)
		if atomicMode {
			suffix, opts = "-atomic", []otelcollector.Option{otelcollector.WithAtomicCounters()}
		}
		b.Run("impl=otelcollector"+suffix, func(b *testing.B) {
			c := benchCollector(b, opts...)
			runModes(b, func() { _ = c.RecordTokenUsage(ctx, benchOrch, benchModel, 7) })
		})
		b.Run("impl=otelcollector-bound"+suffix, func(b *testing.B) {
			c := benchCollector(b, opts...)
			o, err := c.Orchestrator(benchOrch)
			must(b, err)
			m, err := o.Model(benchModel)
			must(b, err)
			runModes(b, func() { _ = m.Add(ctx, 7) })
		})
	}
	b.Run("impl=otelcollector-nostats", func(b *testing.B) {
		c := benchCollector(b, otelcollector.WithoutAggregatedStats())
		runModes(b, func() { _ = c.RecordTokenUsage(ctx, benchOrch, benchModel, 7) })
	})
	b.Run("impl=clientgolang", func(b *testing.B) {
		v := promclient.NewCounterVec(promclient.CounterOpts{Name: "orchestrator_tokens_used_total", Help: helpTokens},
			[]string{"orchestrator_id", "model"})
		runModes(b, func() { v.WithLabelValues(benchOrch, benchModel).Add(7) })
	})
	b.Run("impl=clientgolang-bound", func(b *testing.B) {
		v := promclient.NewCounterVec(promclient.CounterOpts{Name: "orchestrator_tokens_used_total", Help: helpTokens},
			[]string{"orchestrator_id", "model"})
		ctr := v.WithLabelValues(benchOrch, benchModel)
		runModes(b, func() { ctr.Add(7) })
	})
	for _, readers := range []int{2, 1} {
		b.Run(otelsdkName(readers), func(b *testing.B) {
			ctr, err := benchMeter(b, readers).Int64Counter("orchestrator.tokens.used")
			must(b, err)
			opts := []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String("orchestrator_id", benchOrch), attribute.String("model", benchModel)))}
			runModes(b, func() { ctr.Add(ctx, 7, opts...) })
		})
	}
	b.Run("impl=atomic", func(b *testing.B) {
		var n atomic.Int64
		runModes(b, func() { n.Add(7) })
	})
}

func otelsdkName(readers int) string {
	if readers == 1 {
		return "impl=otelsdk-1reader"
	}
	return "impl=otelsdk"
}

func BenchmarkRecordMessageLatency(b *testing.B) {
	ctx := context.Background()
	const d = 300 * time.Millisecond
	b.Run("impl=otelcollector", func(b *testing.B) {
		c := benchCollector(b)
		runModes(b, func() { _ = c.RecordMessageLatency(ctx, benchOrch, d) })
	})
	b.Run("impl=otelcollector-bound", func(b *testing.B) {
		o, err := benchCollector(b).Orchestrator(benchOrch)
		must(b, err)
		runModes(b, func() { _ = o.RecordMessageLatency(ctx, d) })
	})
	b.Run("impl=otelcollector-nostats", func(b *testing.B) {
		c := benchCollector(b, otelcollector.WithoutAggregatedStats())
		runModes(b, func() { _ = c.RecordMessageLatency(ctx, benchOrch, d) })
	})
	b.Run("impl=otelcollector-native", func(b *testing.B) {
		c := benchCollector(b, otelcollector.WithNativeLatencyHistogram())
		runModes(b, func() { _ = c.RecordMessageLatency(ctx, benchOrch, d) })
	})
	newVec := func() *promclient.HistogramVec {
		return promclient.NewHistogramVec(promclient.HistogramOpts{
			Name: "orchestrator_message_latency_seconds", Help: "h", Buckets: benchLatencyBuckets,
		}, []string{"orchestrator_id"})
	}
	b.Run("impl=clientgolang", func(b *testing.B) {
		v := newVec()
		runModes(b, func() { v.WithLabelValues(benchOrch).Observe(d.Seconds()) })
	})
	b.Run("impl=clientgolang-bound", func(b *testing.B) {
		h := newVec().WithLabelValues(benchOrch)
		runModes(b, func() { h.Observe(d.Seconds()) })
	})
	for _, readers := range []int{2, 1} {
		b.Run(otelsdkName(readers), func(b *testing.B) {
			h, err := benchMeter(b, readers).Float64Histogram("orchestrator.message.latency",
				metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(benchLatencyBuckets...))
			must(b, err)
			opts := []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("orchestrator_id", benchOrch)))}
			runModes(b, func() { h.Record(ctx, d.Seconds(), opts...) })
		})
	}
}

func BenchmarkRecordToolInvocation(b *testing.B) {
	ctx := context.Background()
	for _, atomicMode := range []bool{false, true} {
		suffix, opts := "", []otelcollector.Option(nil)
		if atomicMode {
			suffix, opts = "-atomic", []otelcollector.Option{otelcollector.WithAtomicCounters()}
		}
		b.Run("impl=otelcollector"+suffix, func(b *testing.B) {
			c := benchCollector(b, opts...)
			runModes(b, func() { _ = c.RecordToolInvocation(ctx, benchOrch, benchTool, otelcollector.ToolSuccess) })
		})
		b.Run("impl=otelcollector-bound"+suffix, func(b *testing.B) {
			o, err := benchCollector(b, opts...).Orchestrator(benchOrch)
			must(b, err)
			tool, err := o.Tool(benchTool)
			must(b, err)
			runModes(b, func() { _ = tool.Inc(ctx, otelcollector.ToolSuccess) })
		})
	}
	b.Run("impl=clientgolang", func(b *testing.B) {
		v := promclient.NewCounterVec(promclient.CounterOpts{Name: "orchestrator_tool_invocations_total", Help: "h"},
			[]string{"orchestrator_id", "tool_name", "status"})
		runModes(b, func() { v.WithLabelValues(benchOrch, benchTool, "success").Inc() })
	})
	for _, readers := range []int{2, 1} {
		b.Run(otelsdkName(readers), func(b *testing.B) {
			ctr, err := benchMeter(b, readers).Int64Counter("orchestrator.tool.invocations")
			must(b, err)
			opts := []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("orchestrator_id", benchOrch),
				attribute.String("tool_name", benchTool), attribute.String("status", "success")))}
			runModes(b, func() { ctr.Add(ctx, 1, opts...) })
		})
	}
}

// BenchmarkRecordSession measures one session start and its end per op
// (the up-down counter goes +1 then -1).
//
// The -sessioncounters variants add WithSessionCounters: two counters
// more per series, one measurement more per start and per end.
func BenchmarkRecordSession(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []struct {
		suffix string
		opts   []otelcollector.Option
	}{
		{"", nil},
		{"-atomic", []otelcollector.Option{otelcollector.WithAtomicCounters()}},
		{"-sessioncounters", []otelcollector.Option{otelcollector.WithSessionCounters()}},
		{"-sessioncounters-atomic", []otelcollector.Option{otelcollector.WithSessionCounters(), otelcollector.WithAtomicCounters()}},
	} {
		suffix, opts := mode.suffix, mode.opts
		b.Run("impl=otelcollector"+suffix, func(b *testing.B) {
			c := benchCollector(b, opts...)
			runModes(b, func() {
				_ = c.RecordSessionStart(ctx, benchOrch, benchSess)
				_ = c.RecordSessionEnd(ctx, benchOrch, benchSess)
			})
		})
		b.Run("impl=otelcollector-bound"+suffix, func(b *testing.B) {
			o, err := benchCollector(b, opts...).Orchestrator(benchOrch)
			must(b, err)
			s, err := o.SessionType(benchSess)
			must(b, err)
			runModes(b, func() {
				_ = s.Start(ctx)
				_ = s.End(ctx)
			})
		})
	}
	b.Run("impl=clientgolang", func(b *testing.B) {
		v := promclient.NewGaugeVec(promclient.GaugeOpts{Name: "orchestrator_sessions_active", Help: "h"},
			[]string{"orchestrator_id", "session_type"})
		runModes(b, func() {
			v.WithLabelValues(benchOrch, benchSess).Inc()
			v.WithLabelValues(benchOrch, benchSess).Dec()
		})
	})
	b.Run("impl=clientgolang-bound", func(b *testing.B) {
		g := promclient.NewGaugeVec(promclient.GaugeOpts{Name: "orchestrator_sessions_active", Help: "h"},
			[]string{"orchestrator_id", "session_type"}).WithLabelValues(benchOrch, benchSess)
		runModes(b, func() {
			g.Inc()
			g.Dec()
		})
	})
	for _, readers := range []int{2, 1} {
		b.Run(otelsdkName(readers), func(b *testing.B) {
			ctr, err := benchMeter(b, readers).Int64UpDownCounter("orchestrator.sessions.active")
			must(b, err)
			opts := []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String("orchestrator_id", benchOrch), attribute.String("session_type", benchSess)))}
			runModes(b, func() {
				ctr.Add(ctx, 1, opts...)
				ctr.Add(ctx, -1, opts...)
			})
		})
	}
}

// seriesLabels returns the labels of token series i of n: 10 models per
// orchestrator.
func seriesLabels(i int) (orch, model string) {
	return fmt.Sprintf("orch-%d", i/10), fmt.Sprintf("model-%d", i%10)
}

// scrapeTarget is something with n token series behind a Prometheus
// handler.
type scrapeTarget struct {
	handler http.Handler
}

// newOtelcollectorTarget records n token series through a Collector with
// the Prometheus exporter.
func newOtelcollectorTarget(tb testing.TB, n int, opts ...otelcollector.Option) scrapeTarget {
	tb.Helper()
	exp, err := prometheus.New()
	if err != nil {
		tb.Fatal(err)
	}
	opts = append([]otelcollector.Option{
		otelcollector.WithExporter(exp), otelcollector.WithCardinalityLimit(n + 1),
	}, opts...)
	c, err := otelcollector.New(context.Background(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close(context.Background()) })
	for i := range n {
		orch, model := seriesLabels(i)
		if err := c.RecordTokenUsage(context.Background(), orch, model, int64(i+1)); err != nil {
			tb.Fatal(err)
		}
	}
	return scrapeTarget{handler: exp.Handler()}
}

// newClientGolangTarget builds the same n series, plus the Collector's
// rejection and overflow counters, on a client_golang registry, so that the scrape text
// is the same.
func newClientGolangTarget(tb testing.TB, n int) scrapeTarget {
	tb.Helper()
	reg := promclient.NewRegistry()
	tokens := promclient.NewCounterVec(promclient.CounterOpts{Name: "orchestrator_tokens_used_total", Help: helpTokens},
		[]string{"orchestrator_id", "model"})
	rejected := promclient.NewCounterVec(promclient.CounterOpts{Name: "orchestrator_collector_rejected_total", Help: helpRejected},
		[]string{"reason"})
	overflow := promclient.NewCounterVec(promclient.CounterOpts{Name: "orchestrator_collector_overflow_total", Help: schema.DescCollectorOverflow},
		[]string{"metric"})
	reg.MustRegister(tokens, rejected, overflow)
	for _, m := range []string{schema.SessionsActive, schema.TokensUsed, schema.MessageLatency, schema.ToolInvocations,
		schema.Delegations, schema.NodeLoad, schema.Errors, schema.BudgetUtilization} {
		overflow.WithLabelValues(m)
	}
	for _, r := range []string{"empty_label", "label_too_long", "invalid_utf8", "negative_value", "non_finite_value", "out_of_range", "unknown_status", "closed", "value_overflow"} {
		rejected.WithLabelValues(r)
	}
	for i := range n {
		orch, model := seriesLabels(i)
		tokens.WithLabelValues(orch, model).Add(float64(i + 1))
	}
	return scrapeTarget{handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})}
}

// countingWriter is an http.ResponseWriter that discards the body and
// counts its bytes.
type countingWriter struct {
	h http.Header
	n int64
}

func (w *countingWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
func (w *countingWriter) WriteHeader(int)             {}

func (s scrapeTarget) scrapeBytes() int64 {
	w := &countingWriter{}
	s.handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return w.n
}

// benchLarge reports whether the large sizes run: with BENCH_LARGE=1
// (make bench sets it), never with -short, so that the smoke run
// (-benchtime=100x) stays quick.
func benchLarge() bool {
	return os.Getenv("BENCH_LARGE") == "1" && !testing.Short()
}

// scrapeSizes are the series counts of BenchmarkScrape and
// BenchmarkCollect: 1000, and 10000 and 100000 when benchLarge.
func scrapeSizes() []int {
	if benchLarge() {
		return []int{1000, 10000, 100000}
	}
	return []int{1000}
}

// BenchmarkScrape measures one Prometheus scrape (text format) of n token
// series; B/scrape is the size of the exposition.
func BenchmarkScrape(b *testing.B) {
	for _, n := range scrapeSizes() {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			targets := []struct {
				name string
				new  func() scrapeTarget
			}{
				{"impl=otelcollector", func() scrapeTarget { return newOtelcollectorTarget(b, n) }},
				{"impl=otelcollector-atomic", func() scrapeTarget {
					return newOtelcollectorTarget(b, n, otelcollector.WithAtomicCounters())
				}},
				{"impl=clientgolang", func() scrapeTarget { return newClientGolangTarget(b, n) }},
			}
			for _, tg := range targets {
				b.Run(tg.name, func(b *testing.B) {
					s := tg.new()
					b.ReportAllocs()
					var size int64
					for b.Loop() {
						size = s.scrapeBytes()
					}
					b.ReportMetric(float64(size), "B/scrape")
				})
			}
		})
	}
}

// BenchmarkCollect measures one ManualReader collection of n token series:
// the SDK's side of a scrape or an OTLP export, without the encoding.
func BenchmarkCollect(b *testing.B) {
	ctx := context.Background()
	for _, n := range scrapeSizes() {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			for _, atomicMode := range []bool{false, true} {
				name, opts := "impl=otelcollector", []otelcollector.Option{otelcollector.WithCardinalityLimit(n + 1)}
				if atomicMode {
					name, opts = "impl=otelcollector-atomic", append(opts, otelcollector.WithAtomicCounters())
				}
				b.Run(name, func(b *testing.B) {
					r := sdkmetric.NewManualReader()
					c := benchCollector(b, append(opts, otelcollector.WithReader(r))...)
					for i := range n {
						orch, model := seriesLabels(i)
						must(b, c.RecordTokenUsage(ctx, orch, model, 1))
					}
					var rm metricdata.ResourceMetrics
					b.ReportAllocs()
					for b.Loop() {
						must(b, r.Collect(ctx, &rm))
					}
				})
			}
		})
	}
}

// BenchmarkMemoryPerSeries reports the live heap each new token series
// costs (B/series), measured once between two GCs, over 1000 series (10000
// when benchLarge). Each op then builds the same series in a fresh instance
// and releases it: ns/op, B/op and allocs/op are the cost of creating n
// series (and, for the Collector, of New and Close).
func BenchmarkMemoryPerSeries(b *testing.B) {
	n := 1000
	if benchLarge() {
		n = 10000
	}
	ctx := context.Background()
	newCollector := func(opts ...otelcollector.Option) (any, func()) {
		opts = append([]otelcollector.Option{otelcollector.WithReader(sdkmetric.NewManualReader()),
			otelcollector.WithCardinalityLimit(n + 1)}, opts...)
		c, err := otelcollector.New(ctx, opts...)
		must(b, err)
		for i := range n {
			orch, model := seriesLabels(i)
			must(b, c.RecordTokenUsage(ctx, orch, model, 1))
		}
		return c, func() { _ = c.Close(ctx) }
	}
	impls := []struct {
		name  string
		build func() (any, func())
	}{
		{"impl=otelcollector", func() (any, func()) { return newCollector() }},
		{"impl=otelcollector-atomic", func() (any, func()) { return newCollector(otelcollector.WithAtomicCounters()) }},
		{"impl=clientgolang", func() (any, func()) {
			v := promclient.NewCounterVec(promclient.CounterOpts{Name: "orchestrator_tokens_used_total", Help: helpTokens},
				[]string{"orchestrator_id", "model"})
			for i := range n {
				orch, model := seriesLabels(i)
				v.WithLabelValues(orch, model).Add(1)
			}
			return v, func() {}
		}},
		{"impl=otelsdk-1reader", func() (any, func()) {
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()),
				sdkmetric.WithCardinalityLimit(n+1))
			ctr, err := mp.Meter("bench").Int64Counter("orchestrator.tokens.used")
			must(b, err)
			for i := range n {
				orch, model := seriesLabels(i)
				ctr.Add(ctx, 1, metric.WithAttributes(attribute.String("orchestrator_id", orch), attribute.String("model", model)))
			}
			return mp, func() { _ = mp.Shutdown(ctx) }
		}},
	}
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			// The label strings are made inside build: an implementation
			// keeps them, so they are part of its cost per series.
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			v, release := impl.build()
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(v)
			release()
			perSeries := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)

			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				_, release := impl.build()
				release()
			}
			b.ReportMetric(perSeries, "B/series")
		})
	}
}

// TestScrapeTextIdentical checks that the scrape benchmark compares like
// with like: the Collector (both counter modes) and the client_golang
// registry expose the same text.
func TestScrapeTextIdentical(t *testing.T) {
	const n = 1000
	scrape := func(s scrapeTarget) string {
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		return string(body)
	}
	want := scrape(newClientGolangTarget(t, n))
	if strings.Count(want, "orchestrator_tokens_used_total{") != n {
		t.Fatalf("client_golang scrape has not %d token series", n)
	}
	for name, got := range map[string]string{
		"synchronous": scrape(newOtelcollectorTarget(t, n)),
		"atomic":      scrape(newOtelcollectorTarget(t, n, otelcollector.WithAtomicCounters())),
	} {
		if got != want {
			t.Errorf("%s: scrape differs from client_golang's (%d and %d bytes)", name, len(got), len(want))
		}
	}
}

// BenchmarkMemoryPerLatencySeries is the live heap per latency series
// (one orchestrator each, 10 latencies over 10 ms .. 10 s, then one
// collection of the user's reader), default and with
// WithNativeLatencyHistogram, whose exponential stream keeps its own
// buckets per series.
func BenchmarkMemoryPerLatencySeries(b *testing.B) {
	n := 1000
	if benchLarge() {
		n = 10000
	}
	ctx := context.Background()
	for _, impl := range []struct {
		name string
		opts []otelcollector.Option
	}{
		{"impl=otelcollector", nil},
		{"impl=otelcollector-native", []otelcollector.Option{otelcollector.WithNativeLatencyHistogram()}},
	} {
		b.Run(impl.name, func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			rdr := sdkmetric.NewManualReader()
			c, err := otelcollector.New(ctx, append([]otelcollector.Option{otelcollector.WithReader(rdr),
				otelcollector.WithCardinalityLimit(n + 1)}, impl.opts...)...)
			must(b, err)
			for i := range n {
				orch, _ := seriesLabels(i)
				for k := range 10 {
					must(b, c.RecordMessageLatency(ctx, orch, time.Duration(10<<k)*time.Millisecond))
				}
			}
			var rm metricdata.ResourceMetrics
			must(b, rdr.Collect(ctx, &rm))
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(c)
			runtime.KeepAlive(&rm)
			perSeries := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
			_ = c.Close(ctx)
			for b.Loop() {
			}
			b.ReportMetric(perSeries, "B/series")
		})
	}
}
