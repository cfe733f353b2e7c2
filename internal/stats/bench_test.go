package stats

import (
	"testing"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

// BenchmarkReaderAggregation compares what one measurement costs on a
// provider whose only reader is NewReader's (exponential histogram for the
// latency, a one-bound histogram for sessions, no exemplar reservoirs there)
// with the SDK's default aggregation (explicit buckets, sum).
func BenchmarkReaderAggregation(b *testing.B) {
	for _, rc := range []struct {
		name string
		opts func() []sdkmetric.Option
	}{
		{"reader=stats", func() []sdkmetric.Option {
			return []sdkmetric.Option{sdkmetric.WithReader(NewReader()), NoExemplarsView()}
		}},
		{"reader=default", func() []sdkmetric.Option {
			return []sdkmetric.Option{sdkmetric.WithReader(sdkmetric.NewManualReader())}
		}},
	} {
		mp := sdkmetric.NewMeterProvider(rc.opts()...)
		m := mp.Meter(schema.MeterName)
		lat, _ := m.Float64Histogram(schema.MessageLatency)
		sess, _ := m.Int64UpDownCounter(schema.SessionsActive)
		as := metric.WithAttributeSet(set(schema.KeyOrchestratorID, "orch-1"))
		rec, add := []metric.RecordOption{as}, []metric.AddOption{as}
		b.Run("instrument=latency/"+rc.name, func(b *testing.B) {
			b.ReportAllocs()
			v := 0.0
			for b.Loop() {
				v += 0.001
				if v > 10 {
					v = 0.001
				}
				lat.Record(ctx, v, rec...)
			}
		})
		b.Run("instrument=sessions/"+rc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sess.Add(ctx, 1, add...)
				sess.Add(ctx, -1, add...)
			}
		})
		_ = mp.Shutdown(ctx)
	}
}
