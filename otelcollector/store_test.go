package otelcollector_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// readerOnly hides an exporter's ProducerExporter methods, so that its
// reader reads the SDK's own state on the recording provider: the path
// every exporter took before the store.
type readerOnly struct{ e otelcollector.Exporter }

func (r readerOnly) Reader() sdkmetric.Reader           { return r.e.Reader() }
func (r readerOnly) Shutdown(ctx context.Context) error { return r.e.Shutdown(ctx) }

// TestStoreIdenticalExport proves that reading the Collector's store (what
// exporters/prometheus does) exports the same scrape, byte for byte, as
// reading the SDK's own cumulative state, in both counter modes.
func TestStoreIdenticalExport(t *testing.T) {
	for _, mode := range counterModes {
		t.Run(mode.name, func(t *testing.T) {
			limit := otelcollector.WithCardinalityLimit(8)
			viaStore := newPathRig(t, append(mode.opts, limit)...)
			direct, err := prometheus.New()
			if err != nil {
				t.Fatal(err)
			}
			c, err := otelcollector.New(context.Background(), append(mode.opts, limit,
				otelcollector.WithExporter(readerOnly{direct}), otelcollector.WithResource(resource.Empty()))...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close(context.Background()) })
			directRig := pathRig{c: c, exp: direct}
			for round := 1; round <= 3; round++ {
				identityWorkload(t, viaStore.c, round)
				identityWorkload(t, c, round)
				if want, got := directRig.scrape(t), viaStore.scrape(t); want != got {
					t.Fatalf("round %d: scrapes differ\nSDK state:\n%s\nstore:\n%s", round, want, got)
				}
			}
		})
	}
}

// deltaExporter is a ProducerExporter with delta temporality, as
// exporters/otlp with otlp.Delta: the store must convert its cumulative
// state for it.
type deltaExporter struct {
	r *sdkmetric.ManualReader
	p atomic.Pointer[sdkmetric.Producer]
}

func newDeltaExporter() *deltaExporter {
	e := &deltaExporter{}
	e.r = sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(deltaPreferred), sdkmetric.WithProducer(producerFunc(func(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
		if p := e.p.Load(); p != nil {
			return (*p).Produce(ctx)
		}
		return nil, nil
	})))
	return e
}

type producerFunc func(context.Context) ([]metricdata.ScopeMetrics, error)

func (f producerFunc) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) { return f(ctx) }

func deltaPreferred(k sdkmetric.InstrumentKind) metricdata.Temporality {
	switch k {
	case sdkmetric.InstrumentKindUpDownCounter, sdkmetric.InstrumentKindObservableUpDownCounter:
		return metricdata.CumulativeTemporality
	}
	return metricdata.DeltaTemporality
}

func (e *deltaExporter) Reader() sdkmetric.Reader               { return e.r }
func (e *deltaExporter) Shutdown(context.Context) error         { return nil }
func (e *deltaExporter) SetProducer(p sdkmetric.Producer) error { e.p.Store(&p); return nil }
func (e *deltaExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return deltaPreferred(k)
}

// TestStoreDeltaConversion proves that a reader asking for delta
// temporality gets from the store the same deltas, interval by interval,
// as from the SDK itself (sums, buckets and counts; timestamps aside).
func TestStoreDeltaConversion(t *testing.T) {
	ctx := context.Background()
	limit := otelcollector.WithCardinalityLimit(8)
	viaStore := newDeltaExporter()
	c1, err := otelcollector.New(ctx, limit, otelcollector.WithExporter(viaStore), otelcollector.WithResource(resource.Empty()))
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close(ctx)
	direct := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(deltaPreferred))
	c2, err := otelcollector.New(ctx, limit, otelcollector.WithReader(direct), otelcollector.WithResource(resource.Empty()))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(ctx)
	for round := 1; round <= 3; round++ {
		identityWorkload(t, c1, round)
		identityWorkload(t, c2, round)
		want := (pathRig{rdr: direct}).collectNormalized(t)
		got := (pathRig{rdr: viaStore.r}).collectNormalized(t)
		// The store's data comes as a scope of its own beside the
		// observable instruments'; compare metric by metric.
		wantM, gotM := byName(boolOverflow(want)), byName(got)
		for name, w := range wantM {
			g, ok := gotM[name]
			if !ok {
				t.Errorf("round %d: %s missing from the store's delta data", round, name)
				continue
			}
			metricdatatest.AssertEqual(t, w, g, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
		}
		for name := range gotM {
			if _, ok := wantM[name]; !ok {
				t.Errorf("round %d: %s only in the store's delta data", round, name)
			}
		}
	}
}

func byName(rm metricdata.ResourceMetrics) map[string]metricdata.Metrics {
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// boolOverflow rewrites the string overflow marker a WithReader reader sees
// into the SDK's bool form that the store exports.
func boolOverflow(rm metricdata.ResourceMetrics) metricdata.ResourceMetrics {
	strSet := attribute.NewSet(attribute.String("otel.metric.overflow", "true"))
	str := strSet.Equivalent()
	b := attribute.NewSet(attribute.Bool("otel.metric.overflow", true))
	for i := range rm.ScopeMetrics {
		for j := range rm.ScopeMetrics[i].Metrics {
			switch d := rm.ScopeMetrics[i].Metrics[j].Data.(type) {
			case metricdata.Sum[int64]:
				for k := range d.DataPoints {
					if d.DataPoints[k].Attributes.Equivalent() == str {
						d.DataPoints[k].Attributes = b
					}
				}
			case metricdata.Histogram[float64]:
				for k := range d.DataPoints {
					if d.DataPoints[k].Attributes.Equivalent() == str {
						d.DataPoints[k].Attributes = b
					}
				}
			}
		}
	}
	return rm
}

// TestKeptSeriesAfterOverflowInInterval: with delta readers the SDK's map
// starts empty at each collection; an interval whose first record goes to
// the overflow series must still give a kept series recorded after it its
// own series, in the statistics and in the exporters' store. (Found by
// TestCardinalityExplosion under -race, where the sampler's tick fell in
// the overflow phase: kept orchestrators lost their later records.)
func TestKeptSeriesAfterOverflowInInterval(t *testing.T) {
	ctx := context.Background()
	exp, err := prometheus.New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp), otelcollector.WithCardinalityLimit(20))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for i := range 40 { // 19 kept, 21 to the overflow series
		_ = c.RecordTokenUsage(ctx, fmt.Sprint("o", i), "m", 1)
	}
	_ = (pathRig{c: c, exp: exp}).scrape(t)    // a collection: the next interval starts empty
	_ = c.RecordTokenUsage(ctx, "o30", "m", 1) // overflow first
	_ = c.RecordTokenUsage(ctx, "o0", "m", 1)  // then a kept series
	st, err := c.AggregatedStats(ctx, "o0", otelcollector.TimeRange{})
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalTokens != 2 {
		t.Errorf("stats of o0: %d tokens, want 2", st.TotalTokens)
	}
	body := (pathRig{c: c, exp: exp}).scrape(t)
	for _, want := range []string{
		`orchestrator_tokens_used_total{model="m",orchestrator_id="o0"} 2`,
		`orchestrator_tokens_used_total{otel_metric_overflow="true"} 22`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s:\n%s", want, body)
		}
	}
}

// cumulativeExporter is a ProducerExporter that states its temporality,
// cumulative for every kind, as exporters/otlp does by default.
type cumulativeExporter struct {
	r *sdkmetric.ManualReader
	p atomic.Pointer[sdkmetric.Producer]
}

func newCumulativeExporter() *cumulativeExporter {
	e := &cumulativeExporter{}
	e.r = sdkmetric.NewManualReader(sdkmetric.WithProducer(producerFunc(func(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
		if p := e.p.Load(); p != nil {
			return (*p).Produce(ctx)
		}
		return nil, nil
	})))
	return e
}

func (e *cumulativeExporter) Reader() sdkmetric.Reader               { return e.r }
func (e *cumulativeExporter) Shutdown(context.Context) error         { return nil }
func (e *cumulativeExporter) SetProducer(p sdkmetric.Producer) error { e.p.Store(&p); return nil }
func (e *cumulativeExporter) Temporality(sdkmetric.InstrumentKind) metricdata.Temporality {
	return metricdata.CumulativeTemporality
}

// TestStoreCumulativeTimeIsCollectionTime: every cumulative point the store
// exports carries the time of the collection, as the SDK's own cumulative
// points do, also for a series with no record since the previous one. A
// point that kept the time of its latest change made a series that stops
// changing look old: through the Collector's prometheusremotewrite exporter
// its samples kept one timestamp, and 5 minutes (Prometheus' lookback)
// after its latest change an instant query lost a live daemon's series,
// such as its sessions gauge, and a window starting over an hour after a
// counter's latest change found no baseline for it (found by the fleet
// push test, whose waits saw a live daemon's latest remote-written sample
// never advance). Under WithStatsResolution, as the daemons run.
func TestStoreCumulativeTimeIsCollectionTime(t *testing.T) {
	for _, mode := range counterModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			exp := newCumulativeExporter()
			c, err := otelcollector.New(ctx, append(mode.opts, otelcollector.WithExporter(exp), otelcollector.WithResource(resource.Empty()),
				otelcollector.WithStatsResolution(50*time.Millisecond))...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			identityWorkload(t, c, 1)
			var rm metricdata.ResourceMetrics
			if err := exp.r.Collect(ctx, &rm); err != nil {
				t.Fatal(err)
			}
			// Nothing recorded since: a later collection must still stamp
			// every point with its own time, after the previous one.
			before := time.Now()
			if err := exp.r.Collect(ctx, &rm); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					for _, at := range pointTimes(m.Data) {
						n++
						if at.Before(before) {
							t.Errorf("%s: point time %v, before the collection began (%v)", m.Name, at, before)
						}
					}
				}
			}
			if n == 0 {
				t.Fatal("no points collected")
			}
		})
	}
}

// pointTimes returns the Time of every point of a.
func pointTimes(a metricdata.Aggregation) []time.Time {
	var out []time.Time
	switch d := a.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Time)
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Time)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Time)
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Time)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Time)
		}
	case metricdata.ExponentialHistogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Time)
		}
	}
	return out
}
