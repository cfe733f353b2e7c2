package stats

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

// synthSource is the delta collection of the benchmark workload of
// otelcollector's stats benchmarks (1,000 orchestrators x 5 models x 10
// tools, every series changing at every step, 10 latencies log-uniform over
// 10 ms .. 10 s per orchestrator and step), built without the SDK so that a
// day of 10 s steps runs in seconds.
type synthSource struct {
	rng                         *rand.Rand
	tokens, tools, errs, delegs []metricdata.DataPoint[int64]
	sessions                    []metricdata.HistogramDataPoint[int64]
	latency                     []metricdata.ExponentialHistogramDataPoint[float64]
	step                        int
	idle                        bool // report nothing: no record since the last collection
}

func newSynthSource(orchs int) *synthSource {
	models := []string{"claude-sonnet", "claude-haiku", "claude-opus", "gpt-4o", "gemini"}
	tools := []string{"bash", "read_file", "write_file", "edit", "grep", "glob", "web_search", "web_fetch", "task", "todo"}
	s := &synthSource{rng: rand.New(rand.NewPCG(9, 9))}
	for i := range orchs {
		id := fmt.Sprintf("orch-%04d", i)
		for _, m := range models {
			s.tokens = append(s.tokens, metricdata.DataPoint[int64]{Attributes: set(schema.KeyOrchestratorID, id, schema.KeyModel, m)})
		}
		for _, t := range tools {
			s.tools = append(s.tools, metricdata.DataPoint[int64]{Attributes: set(schema.KeyOrchestratorID, id, schema.KeyToolName, t, schema.KeyStatus, "success")})
		}
		s.tools = append(s.tools, metricdata.DataPoint[int64]{Attributes: set(schema.KeyOrchestratorID, id, schema.KeyToolName, "bash", schema.KeyStatus, "error")})
		s.errs = append(s.errs, metricdata.DataPoint[int64]{Attributes: set(schema.KeyOrchestratorID, id, schema.KeyErrorType, "timeout")})
		s.delegs = append(s.delegs, metricdata.DataPoint[int64]{Attributes: set(schema.KeyFromOrchestrator, id, schema.KeyToOrchestrator, fmt.Sprintf("orch-%04d", (i+1)%orchs), schema.KeyStatus, "success")})
		s.sessions = append(s.sessions, metricdata.HistogramDataPoint[int64]{Attributes: set(schema.KeyOrchestratorID, id, schema.KeySessionType, "claude-code"), Bounds: []float64{0}, BucketCounts: []uint64{1, 1}})
		s.latency = append(s.latency, metricdata.ExponentialHistogramDataPoint[float64]{Attributes: set(schema.KeyOrchestratorID, id), Scale: 6})
	}
	return s
}

func (s *synthSource) Collect(_ context.Context, rm *metricdata.ResourceMetrics) error {
	s.step++
	if s.idle {
		rm.ScopeMetrics = nil
		return nil
	}
	for i := range s.tokens {
		s.tokens[i].Value = int64(100 + s.rng.IntN(2000))
	}
	for i := range s.tools {
		s.tools[i].Value = 1
	}
	for i := range s.errs {
		s.errs[i].Value = 1
		s.delegs[i].Value = 1
	}
	for i := range s.latency {
		dp := &s.latency[i]
		var js [10]int32
		lo, hi := int32(math.MaxInt32), int32(math.MinInt32)
		sum := 0.0
		for k := range js {
			v := math.Exp(math.Log(0.01) + s.rng.Float64()*math.Log(1000))
			sum += v
			js[k] = int32(math.Ceil(math.Log2(v)*64)) - 1
			lo, hi = min(lo, js[k]), max(hi, js[k])
		}
		dp.Count, dp.Sum, dp.PositiveBucket.Offset = 10, sum, lo
		dp.PositiveBucket.Counts = append(dp.PositiveBucket.Counts[:0], make([]uint64, hi-lo+1)...)
		for _, j := range js {
			dp.PositiveBucket.Counts[j-lo]++
		}
	}
	d := metricdata.DeltaTemporality
	rm.ScopeMetrics = []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: schema.MeterName},
		Metrics: []metricdata.Metrics{
			{Name: schema.TokensUsed, Data: metricdata.Sum[int64]{DataPoints: s.tokens, Temporality: d, IsMonotonic: true}},
			{Name: schema.ToolInvocations, Data: metricdata.Sum[int64]{DataPoints: s.tools, Temporality: d, IsMonotonic: true}},
			{Name: schema.Errors, Data: metricdata.Sum[int64]{DataPoints: s.errs, Temporality: d, IsMonotonic: true}},
			{Name: schema.Delegations, Data: metricdata.Sum[int64]{DataPoints: s.delegs, Temporality: d, IsMonotonic: true}},
			{Name: schema.SessionsActive, Data: metricdata.Histogram[int64]{DataPoints: s.sessions, Temporality: d}},
			{Name: schema.MessageLatency, Data: metricdata.ExponentialHistogram[float64]{DataPoints: s.latency, Temporality: d}},
		},
	}}
	return nil
}

var _ = attribute.Set{}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkTiersMemory fills the default tiers with a day (and an hour
// more) of the worst-case workload at 1,000 orchestrators and reports the
// history kept: frames, their encoded payload, and the heap the store holds
// after GC minus the heap of the source's own collection. Short mode runs
// 100 orchestrators for 2 hours (a smoke run).
func BenchmarkTiersMemory(b *testing.B) {
	for _, tc := range []struct {
		name  string
		tiers []Tier
	}{
		{"tiers=default", DefaultTiers},
	} {
		orchs := 1000
		if testing.Short() {
			orchs = 100 // memory is linear in the orchestrators
		}
		b.Run(fmt.Sprintf("orchestrators=%d/%s", orchs, tc.name), func(b *testing.B) {
			steps := 25 * 360
			if testing.Short() {
				steps = 2 * 360 // a smoke run: the hour tier is not filled
			}
			var frames, payload int
			var heap, build float64
			for b.Loop() {
				src := newSynthSource(orchs)
				var rm metricdata.ResourceMetrics
				_ = src.Collect(ctx, &rm) // size the source's buffers first
				src.step = 0
				base := heapInUse()
				clk := &fakeClock{t: t0}
				s := NewTiered(src, tc.tiers, clk.now)
				start := time.Now()
				for i := 1; i <= steps; i++ {
					clk.set(t0.Add(time.Duration(i) * 10 * time.Second))
					if err := s.Sample(ctx); err != nil {
						b.Fatal(err)
					}
				}
				build = time.Since(start).Seconds()
				heap = float64(heapInUse() - base)
				frames, payload = s.Size()
				runtime.KeepAlive(s)
			}
			b.ReportMetric(heap, "store-heap-B")
			b.ReportMetric(float64(frames), "frames")
			b.ReportMetric(float64(payload), "payload-B")
			b.ReportMetric(float64(payload+24*frames), "history-B")
			b.ReportMetric(build/float64(steps)*1e3, "ms/sample")
		})
	}
}
