// Package stats turns the cumulative collections of the Collector's
// in-memory reader into per-orchestrator statistics over time windows.
//
// A Store samples the reader at each resolution step and keeps, per
// orchestrator, a compact frame of what changed in the step (counter
// increases, the latency histogram's difference) for a retention. A window's
// statistics are the sum of the frames between the samples at or before its
// bounds, which equals cumulative(End) - cumulative(Start); a window ending
// at the time of the query adds a collection taken then.
package stats

import (
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// HistogramMaxSize is the number of buckets of the in-memory reader's
// exponential latency histograms. The SDK picks the finest scale at which
// an orchestrator's latencies, over its lifetime, fit in that many buckets:
// 640 buckets keep scale 6 (buckets 1.09% wide) while the latencies span up
// to a factor 2^10 (such as 10 ms to 10 s), and scale 5 (2.19%) up to 2^20.
// A percentile estimate lies in the same bucket as the exact value, so its
// relative error is below the bucket width.
const HistogramMaxSize = 640

// NewReader returns the in-memory reader a Store samples. Its aggregation
// differs from the SDK default in two ways, for this reader only:
//   - histograms are base-2 exponential histograms of HistogramMaxSize
//     buckets, so that percentiles can be estimated precisely;
//   - up-down counters (active sessions) are histograms with the single
//     bound 0, so that their +1 and -1 measurements are counted apart: the
//     bucket (-inf, 0] counts session ends and (0, +inf) session starts.
func NewReader() *sdkmetric.ManualReader {
	return sdkmetric.NewManualReader(sdkmetric.WithAggregationSelector(selectAggregation))
}

func selectAggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	switch k {
	case sdkmetric.InstrumentKindHistogram:
		return sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: HistogramMaxSize, MaxScale: 20, NoMinMax: true}
	case sdkmetric.InstrumentKindUpDownCounter:
		return sdkmetric.AggregationExplicitBucketHistogram{Boundaries: []float64{0}, NoMinMax: true}
	}
	return sdkmetric.DefaultAggregationSelector(k)
}
