// Package stats turns the Collector's recording state into per-orchestrator
// statistics over time windows.
//
// A Store samples its live cells (live.go: the Collector's own counters and
// per-orchestrator latency histograms) and, optionally, a Source (an SDK
// reader such as NewReader's) at each resolution step, and keeps, per
// orchestrator, a compact frame of what changed in the step (counter
// increases, the latency histogram's difference) for a retention. A window's
// statistics are the sum of the frames between the samples at or before its
// bounds, which equals cumulative(End) - cumulative(Start); a window ending
// at the time of the query adds the live cells' changes since the latest
// sample (and a collection of the Source, if there is one).
package stats

import (
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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
//
// Its temporality is delta for the synchronous instruments, so that a
// collection holds only the series recorded since the previous one and
// costs what changed, and cumulative for the observable ones (the atomic
// counters), which report every series anyway. Gauges are dropped: the
// stats never read them. opts are added after these (a temporality
// selector given there replaces this one).
func NewReader(opts ...sdkmetric.ManualReaderOption) *sdkmetric.ManualReader {
	return sdkmetric.NewManualReader(append([]sdkmetric.ManualReaderOption{
		sdkmetric.WithAggregationSelector(selectAggregation),
		sdkmetric.WithTemporalitySelector(selectTemporality),
	}, opts...)...)
}

func selectTemporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	switch k {
	case sdkmetric.InstrumentKindCounter, sdkmetric.InstrumentKindUpDownCounter, sdkmetric.InstrumentKindHistogram:
		return metricdata.DeltaTemporality
	}
	return metricdata.CumulativeTemporality
}

// The aggregations of the in-memory reader that differ from the defaults.
var (
	latencyAggregation = sdkmetric.AggregationBase2ExponentialHistogram{
		MaxSize: HistogramMaxSize, MaxScale: 20, NoMinMax: true,
	}
	sessionsBounds = []float64{0}
)

func selectAggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	switch k {
	case sdkmetric.InstrumentKindHistogram:
		return latencyAggregation
	case sdkmetric.InstrumentKindUpDownCounter:
		return sdkmetric.AggregationExplicitBucketHistogram{Boundaries: sessionsBounds, NoMinMax: true}
	case sdkmetric.InstrumentKindGauge, sdkmetric.InstrumentKindObservableGauge:
		return sdkmetric.AggregationDrop{}
	}
	return sdkmetric.DefaultAggregationSelector(k)
}

// NoExemplarsView returns a MeterProvider option that gives the in-memory
// reader's histograms no exemplar reservoir and leaves every other stream
// as the SDK sets it up. The stats never read exemplars, and the SDK sizes
// the buffers it allocates for every series at every collection by the
// largest reservoir it has seen: without this, the 20-exemplar reservoirs
// of the exponential histograms make each collection allocate about 2 KB
// per series (measured: 4x the bytes of a sample). A view applies to every
// reader, so it matches the in-memory reader's streams by their exact
// aggregation; another reader configured with the very same aggregation
// would lose its exemplars too.
func NoExemplarsView() sdkmetric.Option {
	return sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "*"}, sdkmetric.Stream{
		ExemplarReservoirProviderSelector: selectReservoir,
	}))
}

func selectReservoir(agg sdkmetric.Aggregation) exemplar.ReservoirProvider {
	switch a := agg.(type) {
	case sdkmetric.AggregationBase2ExponentialHistogram:
		if a == latencyAggregation {
			return exemplar.FixedSizeReservoirProvider(0)
		}
	case sdkmetric.AggregationExplicitBucketHistogram:
		if a.NoMinMax && len(a.Boundaries) == 1 && a.Boundaries[0] == 0 {
			return exemplar.FixedSizeReservoirProvider(0)
		}
	}
	return sdkmetric.DefaultExemplarReservoirProviderSelector(agg)
}
