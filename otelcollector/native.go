package otelcollector

import (
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

// The opt-in high-resolution latency stream of WithNativeLatencyHistogram.
const (
	// NativeLatencyName is the stream's OTel name; the Prometheus exporter
	// exposes it as orchestrator_message_latency_native_seconds, a native
	// histogram in the protobuf exposition.
	NativeLatencyName = schema.MessageLatency + ".native"
	// NativeLatencyMaxScale is the stream's finest scale: buckets grow by
	// 2^(2^-6), so that an estimate inside a bucket is within 1.09 % of the
	// true value, below the 2 % the fleet client promises.
	NativeLatencyMaxScale = 6
	// NativeLatencyMaxSize is the most buckets a series keeps. At scale 6,
	// 1024 buckets span a factor of 2^16 (1 ms to 65 s, say); a series whose
	// latencies spread wider is downscaled to scale 5 (2.19 %) or below.
	NativeLatencyMaxSize = 1024
)

// WithNativeLatencyHistogram also records every message latency in a
// second stream, NativeLatencyName, with base-2 exponential buckets
// (NativeLatencyMaxSize, NativeLatencyMaxScale), which Prometheus ingests as
// a native histogram when it runs with --enable-feature=native-histograms.
// The classic orchestrator_message_latency_seconds series are unchanged.
// The fleet client's percentiles use the native stream when the engine
// holds it (within 2 %), and the classic buckets otherwise (within their
// bucket). It costs one more histogram record per latency and up to
// NativeLatencyMaxSize buckets per orchestrator (docs/benchmarks.md).
// Default: off.
func WithNativeLatencyHistogram() Option {
	return optionFunc(func(c config) config {
		c.views = append(c.views, nativeView())
		return c
	})
}

// nativeView adds the native stream. The wildcard view of
// stats.NoExemplarsView keeps the classic stream; this view adds a second
// one.
func nativeView() sdkmetric.View {
	return sdkmetric.NewView(
		sdkmetric.Instrument{Name: schema.MessageLatency},
		sdkmetric.Stream{
			Name: NativeLatencyName,
			Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{
				MaxSize:  NativeLatencyMaxSize,
				MaxScale: NativeLatencyMaxScale,
			},
		},
	)
}
