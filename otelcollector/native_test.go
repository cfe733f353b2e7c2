package otelcollector_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// TestNativeLatencyHistogram: the option adds a base-2 exponential stream
// named NativeLatencyName with the same count and sum as the classic
// stream, at the finest scale for latencies within a factor 2^16, and the
// classic stream is unchanged.
func TestNativeLatencyHistogram(t *testing.T) {
	ctx := context.Background()
	collect := func(opts ...otelcollector.Option) metricdata.ResourceMetrics {
		rdr := sdkmetric.NewManualReader()
		c, err := otelcollector.New(ctx, append([]otelcollector.Option{otelcollector.WithReader(rdr)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		for i := range 1000 {
			d := time.Duration(10e6 * math.Pow(1.005, float64(i))) // 10 ms .. 1.5 s
			if err := c.RecordMessageLatency(ctx, "orch-1", d); err != nil {
				t.Fatal(err)
			}
		}
		var rm metricdata.ResourceMetrics
		if err := rdr.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		return rm
	}
	find := func(rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == name {
					return m, true
				}
			}
		}
		return metricdata.Metrics{}, false
	}
	with, without := collect(otelcollector.WithNativeLatencyHistogram()), collect()
	if _, ok := find(without, otelcollector.NativeLatencyName); ok {
		t.Fatal("native stream without the option")
	}
	native, ok := find(with, otelcollector.NativeLatencyName)
	if !ok {
		t.Fatal("no native stream with the option")
	}
	eh, ok := native.Data.(metricdata.ExponentialHistogram[float64])
	if !ok || len(eh.DataPoints) != 1 {
		t.Fatalf("native stream is %T, want one exponential histogram point", native.Data)
	}
	p := eh.DataPoints[0]
	if p.Count != 1000 || p.Scale != otelcollector.NativeLatencyMaxScale {
		t.Errorf("native point: count %d, scale %d; want 1000 at scale %d", p.Count, p.Scale, otelcollector.NativeLatencyMaxScale)
	}
	classicWith, _ := find(with, "orchestrator.message.latency")
	classicWithout, _ := find(without, "orchestrator.message.latency")
	hw, ok1 := classicWith.Data.(metricdata.Histogram[float64])
	hwo, ok2 := classicWithout.Data.(metricdata.Histogram[float64])
	if !ok1 || !ok2 || len(hw.DataPoints) != 1 || len(hwo.DataPoints) != 1 {
		t.Fatalf("classic streams: %T, %T", classicWith.Data, classicWithout.Data)
	}
	a, b := hw.DataPoints[0], hwo.DataPoints[0]
	if fmt.Sprint(a.Bounds, a.BucketCounts, a.Count, a.Sum) != fmt.Sprint(b.Bounds, b.BucketCounts, b.Count, b.Sum) {
		t.Errorf("classic stream changed by the option:\n%v %v %d %v\n%v %v %d %v", a.Bounds, a.BucketCounts, a.Count, a.Sum, b.Bounds, b.BucketCounts, b.Count, b.Sum)
	}
	if math.Abs(p.Sum-a.Sum) > 1e-9 {
		t.Errorf("native sum %v, classic %v", p.Sum, a.Sum)
	}
}

// BenchmarkNativeLatencyHistogram: the record-path cost of the option, and
// its memory per orchestrator once latencies from 10 ms to 30 s were seen.
func BenchmarkNativeLatencyHistogram(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"off", "on"} {
		// A new reader per Collector: a reader registers once.
		opts := func() []otelcollector.Option {
			o := []otelcollector.Option{otelcollector.WithReader(sdkmetric.NewManualReader())}
			if mode == "on" {
				o = append(o, otelcollector.WithNativeLatencyHistogram())
			}
			return o
		}
		b.Run("native="+mode+"/op=record", func(b *testing.B) {
			c, err := otelcollector.New(ctx, opts()...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			o, err := c.Orchestrator("orch-1")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				_ = o.RecordMessageLatency(ctx, time.Duration(10e6+i%3000*10e6))
			}
		})
		b.Run("native="+mode+"/op=memory-1000-orchestrators", func(b *testing.B) {
			var perOrch float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				c, err := otelcollector.New(ctx, opts()...)
				if err != nil {
					b.Fatal(err)
				}
				for o := range 1000 {
					id := fmt.Sprintf("orch-%04d", o)
					for _, d := range []time.Duration{10 * time.Millisecond, 30 * time.Second} {
						_ = c.RecordMessageLatency(ctx, id, d)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perOrch = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / 1000
				_ = c.Close(ctx)
			}
			b.ReportMetric(perOrch, "B/orchestrator")
		})
	}
}

// TestNativeLatencyHistogramKeepsClassicStream: with the native stream on,
// the classic orchestrator_message_latency_seconds stream and the counters
// still reach a WithReader reader, with and without the aggregated stats.
// Without the stats it failed before the identity view: a view that
// matches an instrument replaces its default stream, and only the stats'
// own view (stats.NoExemplarsView, gone with the stats' reader) kept it.
func TestNativeLatencyHistogramKeepsClassicStream(t *testing.T) {
	ctx := context.Background()
	for _, stats := range []bool{true, false} {
		t.Run(fmt.Sprintf("stats=%v", stats), func(t *testing.T) {
			rdr := sdkmetric.NewManualReader()
			opts := []otelcollector.Option{otelcollector.WithReader(rdr), otelcollector.WithNativeLatencyHistogram()}
			if !stats {
				opts = append(opts, otelcollector.WithoutAggregatedStats())
			}
			c, err := otelcollector.New(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			if err := c.RecordMessageLatency(ctx, "orch-1", 300*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if err := c.RecordTokenUsage(ctx, "orch-1", "m", 5); err != nil {
				t.Fatal(err)
			}
			var rm metricdata.ResourceMetrics
			if err := rdr.Collect(ctx, &rm); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					seen[m.Name] = true
				}
			}
			for _, name := range []string{"orchestrator.message.latency", otelcollector.NativeLatencyName, "orchestrator.tokens.used"} {
				if !seen[name] {
					t.Errorf("%s not collected; got %v", name, seen)
				}
			}
		})
	}
}
