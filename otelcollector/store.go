package otelcollector

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/internal/stats"
)

// store keeps the cumulative state of the Collector's synchronous
// instruments so that series can be forgotten (ForgetOrchestrator), which
// the SDK cannot do for a synchronous instrument.
//
// The instruments record into the recording MeterProvider, on which the
// store's reader has delta temporality for the synchronous kinds: at each
// collection the SDK hands over what changed since the last one and drops
// its own state. The store merges those deltas, under one mutex, into the
// cumulative points it keeps, and forget deletes points from them. Data of
// cumulative temporality (the asynchronous instruments, whose callbacks
// report cumulative values) is kept as the latest snapshot, replaced at
// each collection, never summed.
//
// The store is read as an sdkmetric.Producer by the exporters' readers
// (producer, one per reader, converting to delta for a reader that asks for
// it) and as a stats.Source by the in-memory statistics (Collect).
type store struct {
	rdr   *sdkmetric.ManualReader
	start time.Time
	max   int // most points per metric; further series fold into the overflow point
	now   func() time.Time

	mu        sync.Mutex
	rm        metricdata.ResourceMetrics // scratch of the reader's collection
	res       metricdata.ResourceMetrics // resource of the latest collection
	scopes    []*storedScope
	sinks     []*deltaSink
	forgotten map[string]time.Time // orchestrator IDs forgotten, for the start time of their new series
	// byOrch lists, per orchestrator ID, the cumulative points that carry
	// it, so that forget touches only those. A reference whose point is
	// gone (the other end of a delegation was forgotten) is skipped, and
	// dropped when the list is compacted.
	byOrch map[string][]pointRef
}

type pointRef struct {
	m   *storedMetric
	key attribute.Distinct
}

type storedScope struct {
	Scope instrumentation.Scope
	index map[string]*storedMetric // by name
	order []*storedMetric          // in first-seen order
}

type storedMetric struct {
	meta     metricdata.Metrics // name, description, unit; Data holds the kind's zero value
	snapshot bool               // cumulative or gauge data: replaced, not summed
	data     metricdata.Aggregation
	points   map[attribute.Distinct]int // index into data's DataPoints
}

// maxForgotten bounds the IDs remembered by forget; past it the oldest are
// dropped, and a new series of a dropped ID starts at the store's start
// time (its value still starts from 0, which is what Prometheus reads).
const maxForgotten = 4096

func newStore(rdr *sdkmetric.ManualReader, limit int, now func() time.Time) *store {
	return &store{
		rdr:       rdr,
		start:     now(),
		max:       max(limit, minSDKCardinalityLimit) + 1,
		now:       now,
		forgotten: map[string]time.Time{},
		byOrch:    map[string][]pointRef{},
	}
}

// deltaReaderOptions returns the options of a store's reader: delta for
// the synchronous kinds, cumulative (what the callbacks report) for the
// asynchronous ones, with no cardinality limit of the SDK's own (the
// Collector and the store bound the series).
func deltaReaderOptions(dropAsync bool, sel sdkmetric.AggregationSelector) []sdkmetric.ManualReaderOption {
	if sel == nil {
		sel = sdkmetric.DefaultAggregationSelector
	}
	agg := sel
	if dropAsync {
		agg = func(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
			if isAsync(k) {
				return sdkmetric.AggregationDrop{}
			}
			return sel(k)
		}
	}
	return []sdkmetric.ManualReaderOption{
		sdkmetric.WithTemporalitySelector(func(k sdkmetric.InstrumentKind) metricdata.Temporality {
			if isAsync(k) {
				return metricdata.CumulativeTemporality
			}
			return metricdata.DeltaTemporality
		}),
		sdkmetric.WithAggregationSelector(agg),
	}
}

func isAsync(k sdkmetric.InstrumentKind) bool {
	switch k {
	case sdkmetric.InstrumentKindObservableCounter, sdkmetric.InstrumentKindObservableUpDownCounter,
		sdkmetric.InstrumentKindObservableGauge:
		return true
	}
	return false
}

// collectLocked collects the reader and merges what it returns.
func (s *store) collectLocked(ctx context.Context) error {
	if err := s.rdr.Collect(ctx, &s.rm); err != nil {
		return err
	}
	s.res.Resource = s.rm.Resource
	for _, sm := range s.rm.ScopeMetrics {
		sc := s.scope(sm)
		for _, m := range sc.order {
			if m.snapshot {
				m.data = nil // a snapshot not reported this time is gone
			}
		}
		for i := range sm.Metrics {
			s.merge(sc, &sm.Metrics[i])
		}
	}
	return nil
}

func (s *store) scope(sm metricdata.ScopeMetrics) *storedScope {
	for _, sc := range s.scopes {
		if sc.Scope.Name == sm.Scope.Name && sc.Scope.Version == sm.Scope.Version && sc.Scope.SchemaURL == sm.Scope.SchemaURL {
			return sc
		}
	}
	sc := &storedScope{Scope: sm.Scope, index: map[string]*storedMetric{}}
	s.scopes = append(s.scopes, sc)
	return sc
}

func (s *store) merge(sc *storedScope, m *metricdata.Metrics) {
	sm, ok := sc.index[m.Name]
	if !ok {
		sm = &storedMetric{meta: metricdata.Metrics{Name: m.Name, Description: m.Description, Unit: m.Unit}}
		sc.index[m.Name] = sm
		sc.order = append(sc.order, sm)
	}
	if !isDelta(m.Data) {
		sm.snapshot = true
		sm.data = copyAggregation(m.Data)
		return
	}
	sm.meta.Description, sm.meta.Unit = m.Description, m.Unit
	for _, k := range s.sinks {
		k.merge(sc.Scope.Name, m)
	}
	if sm.points == nil {
		sm.points = map[attribute.Distinct]int{}
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		mergeSum(s, sm, d)
	case metricdata.Sum[float64]:
		mergeSum(s, sm, d)
	case metricdata.Histogram[int64]:
		mergeHist(s, sm, d)
	case metricdata.Histogram[float64]:
		mergeHist(s, sm, d)
	case metricdata.ExponentialHistogram[int64]:
		mergeExpHist(s, sm, d)
	case metricdata.ExponentialHistogram[float64]:
		mergeExpHist(s, sm, d)
	}
}

func isDelta(a metricdata.Aggregation) bool {
	switch d := a.(type) {
	case metricdata.Sum[int64]:
		return d.Temporality == metricdata.DeltaTemporality
	case metricdata.Sum[float64]:
		return d.Temporality == metricdata.DeltaTemporality
	case metricdata.Histogram[int64]:
		return d.Temporality == metricdata.DeltaTemporality
	case metricdata.Histogram[float64]:
		return d.Temporality == metricdata.DeltaTemporality
	case metricdata.ExponentialHistogram[int64]:
		return d.Temporality == metricdata.DeltaTemporality
	case metricdata.ExponentialHistogram[float64]:
		return d.Temporality == metricdata.DeltaTemporality
	}
	return false
}

// slot returns the index of the point for attrs in a metric with n points,
// and whether it is new; past the store's bound it is the overflow point.
func (s *store) slot(sm *storedMetric, attrs attribute.Set, n int) (int, attribute.Set, bool) {
	if attrs.Equivalent() == recordOverflowSet.Equivalent() {
		attrs = exportOverflowSet // see recordOverflowAttr
	}
	if i, ok := sm.points[attrs.Equivalent()]; ok {
		return i, attrs, false
	}
	if n >= s.max {
		ov := exportOverflowSet
		if i, ok := sm.points[ov.Equivalent()]; ok {
			return i, ov, false
		}
		attrs = ov
	}
	key := attrs.Equivalent()
	sm.points[key] = n
	if s.byOrch != nil {
		for _, k := range orchestratorKeys {
			if v, ok := attrs.Value(k); ok {
				s.index(v.AsString(), pointRef{sm, key})
			}
		}
	}
	return n, attrs, true
}

// index adds a reference to id's list, compacting the list when its length
// reaches a power of two.
func (s *store) index(id string, r pointRef) {
	refs := s.byOrch[id]
	if n := len(refs); n >= 8 && n&(n-1) == 0 {
		kept := refs[:0]
		for _, x := range refs {
			if _, ok := x.m.points[x.key]; ok {
				kept = append(kept, x)
			}
		}
		clear(refs[len(kept):])
		refs = kept
	}
	s.byOrch[id] = append(refs, r)
}

// startOf is the start time of a new cumulative point: the store's start,
// as for every series the SDK reports cumulatively, unless the point's
// orchestrator was forgotten, whose new series starts with its first delta.
func (s *store) startOf(attrs attribute.Set, deltaStart time.Time) time.Time {
	if len(s.forgotten) > 0 {
		for _, k := range orchestratorKeys {
			if v, ok := attrs.Value(k); ok {
				if _, f := s.forgotten[v.AsString()]; f {
					return deltaStart
				}
			}
		}
	}
	return s.start
}

func mergeSum[N int64 | float64](s *store, sm *storedMetric, d metricdata.Sum[N]) {
	cur, _ := sm.data.(metricdata.Sum[N])
	cur.Temporality, cur.IsMonotonic = metricdata.CumulativeTemporality, d.IsMonotonic
	for _, p := range d.DataPoints {
		i, attrs, isNew := s.slot(sm, p.Attributes, len(cur.DataPoints))
		if isNew {
			cur.DataPoints = append(cur.DataPoints, metricdata.DataPoint[N]{Attributes: attrs, StartTime: s.startOf(attrs, p.StartTime)})
		}
		dp := &cur.DataPoints[i]
		dp.Value += p.Value
		dp.Time = p.Time
		if len(p.Exemplars) > 0 {
			dp.Exemplars = append(dp.Exemplars[:0], p.Exemplars...)
		}
	}
	sm.data = cur
}

func mergeHist[N int64 | float64](s *store, sm *storedMetric, d metricdata.Histogram[N]) {
	cur, _ := sm.data.(metricdata.Histogram[N])
	cur.Temporality = metricdata.CumulativeTemporality
	for _, p := range d.DataPoints {
		i, attrs, isNew := s.slot(sm, p.Attributes, len(cur.DataPoints))
		if isNew {
			cur.DataPoints = append(cur.DataPoints, metricdata.HistogramDataPoint[N]{
				Attributes: attrs, StartTime: s.startOf(attrs, p.StartTime),
				Bounds: slices.Clone(p.Bounds), BucketCounts: make([]uint64, len(p.BucketCounts)),
			})
		}
		addHistPoint(&cur.DataPoints[i], &p)
	}
	sm.data = cur
}

// addHistPoint adds the delta src to dst; both have the same bounds.
func addHistPoint[N int64 | float64](dst, src *metricdata.HistogramDataPoint[N]) {
	dst.Time = src.Time
	dst.Count += src.Count
	dst.Sum += src.Sum
	for j, n := range src.BucketCounts {
		if j < len(dst.BucketCounts) {
			dst.BucketCounts[j] += n
		}
	}
	dst.Min = minExtrema(dst.Min, src.Min)
	dst.Max = maxExtrema(dst.Max, src.Max)
	// The SDK keeps one exemplar per bucket: a newer exemplar replaces the
	// one of its bucket.
	for _, e := range src.Exemplars {
		b := sort.SearchFloat64s(dst.Bounds, float64(e.Value))
		replaced := false
		for k := range dst.Exemplars {
			if sort.SearchFloat64s(dst.Bounds, float64(dst.Exemplars[k].Value)) == b {
				dst.Exemplars[k] = e
				replaced = true
				break
			}
		}
		if !replaced {
			dst.Exemplars = append(dst.Exemplars, e)
		}
	}
}

func minExtrema[N int64 | float64](a, b metricdata.Extrema[N]) metricdata.Extrema[N] {
	av, aok := a.Value()
	bv, bok := b.Value()
	if !aok || (bok && bv < av) {
		return b
	}
	return a
}

func maxExtrema[N int64 | float64](a, b metricdata.Extrema[N]) metricdata.Extrema[N] {
	av, aok := a.Value()
	bv, bok := b.Value()
	if !aok || (bok && bv > av) {
		return b
	}
	return a
}

// expMaxSize bounds the buckets of a merged exponential histogram per sign,
// as the aggregation's MaxSize bounds the SDK's own.
const expMaxSize = stats.HistogramMaxSize

func mergeExpHist[N int64 | float64](s *store, sm *storedMetric, d metricdata.ExponentialHistogram[N]) {
	cur, _ := sm.data.(metricdata.ExponentialHistogram[N])
	cur.Temporality = metricdata.CumulativeTemporality
	for _, p := range d.DataPoints {
		i, attrs, isNew := s.slot(sm, p.Attributes, len(cur.DataPoints))
		if isNew {
			cur.DataPoints = append(cur.DataPoints, metricdata.ExponentialHistogramDataPoint[N]{
				Attributes: attrs, StartTime: s.startOf(attrs, p.StartTime),
				Scale: p.Scale, ZeroThreshold: p.ZeroThreshold,
			})
		}
		addExpPoint(&cur.DataPoints[i], &p)
	}
	sm.data = cur
}

// addExpPoint adds the delta src to dst, at the finer of the two scales at
// which both fit in expMaxSize buckets per sign.
func addExpPoint[N int64 | float64](dst, src *metricdata.ExponentialHistogramDataPoint[N]) {
	scale := min(dst.Scale, src.Scale)
	for scale > -10 && (expSpan(dst.PositiveBucket, dst.Scale-scale, src.PositiveBucket, src.Scale-scale) > expMaxSize ||
		expSpan(dst.NegativeBucket, dst.Scale-scale, src.NegativeBucket, src.Scale-scale) > expMaxSize) {
		scale--
	}
	dst.PositiveBucket = expCombine(dst.PositiveBucket, dst.Scale-scale, src.PositiveBucket, src.Scale-scale)
	dst.NegativeBucket = expCombine(dst.NegativeBucket, dst.Scale-scale, src.NegativeBucket, src.Scale-scale)
	dst.Scale = scale
	dst.Time = src.Time
	dst.Count += src.Count
	dst.Sum += src.Sum
	dst.ZeroCount += src.ZeroCount
	dst.ZeroThreshold = max(dst.ZeroThreshold, src.ZeroThreshold)
	dst.Min = minExtrema(dst.Min, src.Min)
	dst.Max = maxExtrema(dst.Max, src.Max)
	if len(src.Exemplars) > 0 {
		dst.Exemplars = append(dst.Exemplars[:0], src.Exemplars...)
	}
}

// expRange is the index range of b's buckets downscaled by d (b non-empty).
func expRange(b metricdata.ExponentialBucket, d int32) (lo, hi int32) {
	return b.Offset >> d, (b.Offset + int32(len(b.Counts)) - 1) >> d
}

func expSpan(a metricdata.ExponentialBucket, da int32, b metricdata.ExponentialBucket, db int32) int {
	switch {
	case len(a.Counts) == 0 && len(b.Counts) == 0:
		return 0
	case len(a.Counts) == 0:
		lo, hi := expRange(b, db)
		return int(hi-lo) + 1
	case len(b.Counts) == 0:
		lo, hi := expRange(a, da)
		return int(hi-lo) + 1
	}
	alo, ahi := expRange(a, da)
	blo, bhi := expRange(b, db)
	return int(max(ahi, bhi)-min(alo, blo)) + 1
}

func expCombine(a metricdata.ExponentialBucket, da int32, b metricdata.ExponentialBucket, db int32) metricdata.ExponentialBucket {
	if len(a.Counts) == 0 && len(b.Counts) == 0 {
		return metricdata.ExponentialBucket{}
	}
	lo, hi := int32(1<<30), int32(-1<<30)
	for _, x := range []struct {
		b metricdata.ExponentialBucket
		d int32
	}{{a, da}, {b, db}} {
		if len(x.b.Counts) > 0 {
			l, h := expRange(x.b, x.d)
			lo, hi = min(lo, l), max(hi, h)
		}
	}
	out := metricdata.ExponentialBucket{Offset: lo, Counts: make([]uint64, hi-lo+1)}
	for _, x := range []struct {
		b metricdata.ExponentialBucket
		d int32
	}{{a, da}, {b, db}} {
		for j, n := range x.b.Counts {
			out.Counts[((x.b.Offset+int32(j))>>x.d)-lo] += n
		}
	}
	return out
}

// forget collects what the instruments hold (so that nothing recorded
// before is merged after), then deletes every cumulative point that
// carries orchestrator id.
func (s *store) forget(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.collectLocked(ctx)
	if len(s.forgotten) >= maxForgotten {
		for k := range s.forgotten {
			delete(s.forgotten, k)
			if len(s.forgotten) < maxForgotten/2 {
				break
			}
		}
	}
	s.forgotten[id] = s.now()
	for _, r := range s.byOrch[id] {
		if i, ok := r.m.points[r.key]; ok {
			r.m.remove(i, r.key)
		}
	}
	delete(s.byOrch, id)
	return err
}

// remove deletes point i, whose key is key, moving the last point into its
// place.
func (m *storedMetric) remove(i int, key attribute.Distinct) {
	delete(m.points, key)
	switch d := m.data.(type) {
	case metricdata.Sum[int64]:
		d.DataPoints = removeAt(m, d.DataPoints, i, func(p *metricdata.DataPoint[int64]) attribute.Distinct { return p.Attributes.Equivalent() })
		m.data = d
	case metricdata.Sum[float64]:
		d.DataPoints = removeAt(m, d.DataPoints, i, func(p *metricdata.DataPoint[float64]) attribute.Distinct { return p.Attributes.Equivalent() })
		m.data = d
	case metricdata.Histogram[int64]:
		d.DataPoints = removeAt(m, d.DataPoints, i, func(p *metricdata.HistogramDataPoint[int64]) attribute.Distinct { return p.Attributes.Equivalent() })
		m.data = d
	case metricdata.Histogram[float64]:
		d.DataPoints = removeAt(m, d.DataPoints, i, func(p *metricdata.HistogramDataPoint[float64]) attribute.Distinct { return p.Attributes.Equivalent() })
		m.data = d
	case metricdata.ExponentialHistogram[int64]:
		d.DataPoints = removeAt(m, d.DataPoints, i, func(p *metricdata.ExponentialHistogramDataPoint[int64]) attribute.Distinct {
			return p.Attributes.Equivalent()
		})
		m.data = d
	case metricdata.ExponentialHistogram[float64]:
		d.DataPoints = removeAt(m, d.DataPoints, i, func(p *metricdata.ExponentialHistogramDataPoint[float64]) attribute.Distinct {
			return p.Attributes.Equivalent()
		})
		m.data = d
	}
}

// removeAt removes pts[i] by moving the last point into its place. The
// backing array is reallocated when it is mostly empty, so that a churn of
// series does not keep it large.
func removeAt[P any](m *storedMetric, pts []P, i int, key func(*P) attribute.Distinct) []P {
	last := len(pts) - 1
	if i != last {
		pts[i] = pts[last]
		m.points[key(&pts[i])] = i
	}
	var zero P
	pts[last] = zero
	pts = pts[:last]
	if cap(pts) > 64 && len(pts) < cap(pts)/4 {
		pts = slices.Clone(pts)
	}
	return pts
}

// Collect implements stats.Source: it collects and fills rm with a copy of
// every cumulative point and snapshot.
func (s *store) Collect(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.collectLocked(ctx); err != nil {
		return err
	}
	rm.Resource = s.res.Resource
	rm.ScopeMetrics = s.copyLocked(rm.ScopeMetrics[:0], nil, time.Time{})
	return nil
}

// copyLocked appends a copy of the stored scopes to dst. A metric that the
// sink wants as delta comes from the sink's pending deltas instead.
//
// A cumulative point of a synchronous instrument is stamped with now, the
// collection's time, as the SDK stamps its own cumulative points: the time
// merge left on it is that of the series' latest change, and a series that
// stops changing would keep exporting one old timestamp (through remote
// write, an engine would then drop it from instant queries after its
// lookback, and from a window's baseline). A zero now (the statistics'
// Collect, which reads no timestamps) keeps the stored times.
func (s *store) copyLocked(dst []metricdata.ScopeMetrics, k *deltaSink, now time.Time) []metricdata.ScopeMetrics {
	for _, sc := range s.scopes {
		out := metricdata.ScopeMetrics{Scope: sc.Scope}
		for _, m := range sc.order {
			var data metricdata.Aggregation
			if k != nil && !m.snapshot {
				if k.wantsDelta(m) {
					data = k.take(sc.Scope.Name, m.meta.Name, now)
				} else if m.data != nil {
					data = stampAt(copyAggregation(m.data), now)
				}
			} else if m.data != nil {
				data = copyAggregation(m.data)
				if !m.snapshot {
					data = stampAt(data, now)
				}
			}
			if data == nil || points(data) == 0 {
				continue
			}
			mm := m.meta
			mm.Data = data
			out.Metrics = append(out.Metrics, mm)
		}
		if len(out.Metrics) > 0 {
			dst = append(dst, out)
		}
	}
	return dst
}

func points(a metricdata.Aggregation) int {
	switch d := a.(type) {
	case metricdata.Sum[int64]:
		return len(d.DataPoints)
	case metricdata.Sum[float64]:
		return len(d.DataPoints)
	case metricdata.Gauge[int64]:
		return len(d.DataPoints)
	case metricdata.Gauge[float64]:
		return len(d.DataPoints)
	case metricdata.Histogram[int64]:
		return len(d.DataPoints)
	case metricdata.Histogram[float64]:
		return len(d.DataPoints)
	case metricdata.ExponentialHistogram[int64]:
		return len(d.DataPoints)
	case metricdata.ExponentialHistogram[float64]:
		return len(d.DataPoints)
	}
	return 0
}

// copyAggregation deep-copies a: the copy is read after the store's mutex
// is released, while later collections change the original.
func copyAggregation(a metricdata.Aggregation) metricdata.Aggregation {
	switch d := a.(type) {
	case metricdata.Sum[int64]:
		d.DataPoints = copySumPoints(d.DataPoints)
		return d
	case metricdata.Sum[float64]:
		d.DataPoints = copySumPoints(d.DataPoints)
		return d
	case metricdata.Gauge[int64]:
		d.DataPoints = copySumPoints(d.DataPoints)
		return d
	case metricdata.Gauge[float64]:
		d.DataPoints = copySumPoints(d.DataPoints)
		return d
	case metricdata.Histogram[int64]:
		d.DataPoints = copyHistPoints(d.DataPoints)
		return d
	case metricdata.Histogram[float64]:
		d.DataPoints = copyHistPoints(d.DataPoints)
		return d
	case metricdata.ExponentialHistogram[int64]:
		d.DataPoints = copyExpPoints(d.DataPoints)
		return d
	case metricdata.ExponentialHistogram[float64]:
		d.DataPoints = copyExpPoints(d.DataPoints)
		return d
	}
	return a
}

// stampAt sets the Time of every point of a, a copy, to now (unless now is
// zero) and returns it.
func stampAt(a metricdata.Aggregation, now time.Time) metricdata.Aggregation {
	if now.IsZero() {
		return a
	}
	return restamp(a, time.Time{}, now, false)
}

// restamp sets the Time of every point of a, which the caller owns, to now;
// with delta also their StartTime to start and a's temporality to delta.
func restamp(a metricdata.Aggregation, start, now time.Time, delta bool) metricdata.Aggregation {
	st := stamp{start: start, now: now, delta: delta}
	switch d := a.(type) {
	case metricdata.Sum[int64]:
		return restampSum(d, st)
	case metricdata.Sum[float64]:
		return restampSum(d, st)
	case metricdata.Histogram[int64]:
		return restampHistogram(d, st)
	case metricdata.Histogram[float64]:
		return restampHistogram(d, st)
	case metricdata.ExponentialHistogram[int64]:
		return restampExponential(d, st)
	case metricdata.ExponentialHistogram[float64]:
		return restampExponential(d, st)
	}
	return a
}

// stamp is what restamp writes: the points' Time, and with delta their
// StartTime and the temporality.
type stamp struct {
	start, now time.Time
	delta      bool
}

func (s stamp) point(start, t *time.Time) {
	*t = s.now
	if s.delta {
		*start = s.start
	}
}

func (s stamp) temporality(t *metricdata.Temporality) {
	if s.delta {
		*t = metricdata.DeltaTemporality
	}
}

func restampSum[N int64 | float64](d metricdata.Sum[N], s stamp) metricdata.Sum[N] {
	for i := range d.DataPoints {
		s.point(&d.DataPoints[i].StartTime, &d.DataPoints[i].Time)
	}
	s.temporality(&d.Temporality)
	return d
}

func restampHistogram[N int64 | float64](d metricdata.Histogram[N], s stamp) metricdata.Histogram[N] {
	for i := range d.DataPoints {
		s.point(&d.DataPoints[i].StartTime, &d.DataPoints[i].Time)
	}
	s.temporality(&d.Temporality)
	return d
}

func restampExponential[N int64 | float64](d metricdata.ExponentialHistogram[N], s stamp) metricdata.ExponentialHistogram[N] {
	for i := range d.DataPoints {
		s.point(&d.DataPoints[i].StartTime, &d.DataPoints[i].Time)
	}
	s.temporality(&d.Temporality)
	return d
}

func copySumPoints[N int64 | float64](pts []metricdata.DataPoint[N]) []metricdata.DataPoint[N] {
	out := slices.Clone(pts)
	for i := range out {
		out[i].Exemplars = slices.Clone(out[i].Exemplars)
	}
	return out
}

func copyHistPoints[N int64 | float64](pts []metricdata.HistogramDataPoint[N]) []metricdata.HistogramDataPoint[N] {
	out := slices.Clone(pts)
	for i := range out {
		out[i].BucketCounts = slices.Clone(out[i].BucketCounts)
		out[i].Exemplars = slices.Clone(out[i].Exemplars)
	}
	return out
}

func copyExpPoints[N int64 | float64](pts []metricdata.ExponentialHistogramDataPoint[N]) []metricdata.ExponentialHistogramDataPoint[N] {
	out := slices.Clone(pts)
	for i := range out {
		out[i].PositiveBucket.Counts = slices.Clone(out[i].PositiveBucket.Counts)
		out[i].NegativeBucket.Counts = slices.Clone(out[i].NegativeBucket.Counts)
		out[i].Exemplars = slices.Clone(out[i].Exemplars)
	}
	return out
}

// producer returns the Producer of one exporter's reader; sel is the
// temporality the reader asks for, nil meaning cumulative throughout.
func (s *store) producer(sel sdkmetric.TemporalitySelector) sdkmetric.Producer {
	p := &storeProducer{s: s}
	if sel != nil {
		k := &deltaSink{sel: sel, last: s.start, pending: map[string]*store{}}
		s.mu.Lock()
		s.sinks = append(s.sinks, k)
		s.mu.Unlock()
		p.sink = k
	}
	return p
}

type storeProducer struct {
	s    *store
	sink *deltaSink // nil: cumulative throughout
}

var _ sdkmetric.Producer = (*storeProducer)(nil)

// Produce collects the instruments and returns the store's data: the
// cumulative points, or for a delta reader what changed since its last
// collection.
func (p *storeProducer) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.collectLocked(ctx); err != nil {
		return nil, err
	}
	now := s.now()
	out := s.copyLocked(nil, p.sink, now)
	if p.sink != nil {
		p.sink.last = now
	}
	return out, nil
}

// deltaSink keeps, for one reader with delta temporality, the deltas merged
// since its last collection, per scope, in a store of their own.
type deltaSink struct {
	sel     sdkmetric.TemporalitySelector
	last    time.Time
	pending map[string]*store // by scope name; a store with no reader
}

func kindOf(a metricdata.Aggregation) sdkmetric.InstrumentKind {
	switch d := a.(type) {
	case metricdata.Sum[int64]:
		if !d.IsMonotonic {
			return sdkmetric.InstrumentKindUpDownCounter
		}
	case metricdata.Sum[float64]:
		if !d.IsMonotonic {
			return sdkmetric.InstrumentKindUpDownCounter
		}
	case metricdata.Histogram[int64], metricdata.Histogram[float64],
		metricdata.ExponentialHistogram[int64], metricdata.ExponentialHistogram[float64]:
		return sdkmetric.InstrumentKindHistogram
	}
	return sdkmetric.InstrumentKindCounter
}

func (k *deltaSink) wantsDelta(m *storedMetric) bool {
	return m.data != nil && k.sel(kindOf(m.data)) == metricdata.DeltaTemporality
}

// merge adds a delta to the pending data, if the sink's reader wants this
// metric as delta; otherwise the reader gets the cumulative points.
func (k *deltaSink) merge(scope string, m *metricdata.Metrics) {
	if k.sel(kindOf(m.Data)) != metricdata.DeltaTemporality {
		return
	}
	p := k.pending[scope]
	if p == nil {
		p = &store{start: k.last, max: 1 << 30, now: time.Now}
		k.pending[scope] = p
	}
	sc := p.scope(metricdata.ScopeMetrics{})
	p.merge(sc, m)
}

// take returns the pending deltas of one metric as delta data starting at
// the sink's last collection, and empties them.
func (k *deltaSink) take(scope, name string, now time.Time) metricdata.Aggregation {
	p := k.pending[scope]
	if p == nil {
		return nil
	}
	sc := p.scope(metricdata.ScopeMetrics{})
	m := sc.index[name]
	if m == nil || m.data == nil {
		return nil
	}
	d := m.data
	m.data, m.points = nil, nil
	return restamp(d, k.last, now, true)
}
