package stats

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

// ErrInvalidRange is returned by Query for a range that ends before it
// starts. ErrClosed is returned by Sample and Query after Close.
var (
	ErrInvalidRange = errors.New("stats: range ends before it starts")
	ErrClosed       = errors.New("stats: store is closed")
)

// Source is what a Store samples: the reader returned by NewReader.
type Source interface {
	Collect(ctx context.Context, rm *metricdata.ResourceMetrics) error
}

// Range is a time window. With Relative set it is the Last duration before
// the time of the query; otherwise it runs from Start to End, a zero End
// meaning the time of the query.
type Range struct {
	Start, End time.Time
	Last       time.Duration
	Relative   bool
}

// Stats are one orchestrator's statistics over a window; the fields are
// those of otelcollector.AggregatedStats, which documents them.
type Stats struct {
	OrchestratorID                                 string
	Start, End                                     time.Time
	Truncated                                      bool
	ActiveSessions                                 int64
	SessionsStarted, SessionsEnded                 int64
	TotalTokens                                    int64
	TokensByModel                                  map[string]int64
	Messages                                       int64
	AvgLatency, P50Latency, P95Latency, P99Latency time.Duration
	LatencyRelativeError                           float64
	ToolInvocations                                int64
	SuccessfulToolCalls, FailedToolCalls           int64
	ToolCallsByTool                                map[string]int64
	Errors                                         int64
	ErrorsByType                                   map[string]int64
	DelegationsOut, DelegationsIn                  int64
	ErrorRate, ToolFailureRate                     float64
	OverflowRecords                                int64
}

// Store samples a Source and keeps, per orchestrator, what changed at each
// sample for a retention. All methods are safe for concurrent use.
type Store struct {
	src        Source
	now        func() time.Time
	maxSamples int

	mu      sync.Mutex
	closed  bool
	rm      metricdata.ResourceMetrics // the collection being read; emptied after use
	samples ring[sample]
	seq     uint64
	evicted bool
	orchs   map[string]*orch
	ovf     *orch // the records of every orchestrator that went to overflow series
	series  map[seriesKey]*series
	gen     uint64
	seen    int // known series seen in the current sample
	dirty   []*orch
	delta   Hist   // scratch for histogram deltas
	buf     []byte // scratch for frame encoding
}

type sample struct {
	seq uint64
	t   time.Time
}

// metric kinds the store reads.
type kind uint8

const (
	kindNone kind = iota
	kindSessions
	kindTokens
	kindTools
	kindErrors
	kindDelegations
	kindLatency
	kindOverflow // the Collector's count of records past the cardinality limit
)

var kinds = map[string]kind{
	schema.SessionsActive:    kindSessions,
	schema.TokensUsed:        kindTokens,
	schema.ToolInvocations:   kindTools,
	schema.Errors:            kindErrors,
	schema.Delegations:       kindDelegations,
	schema.MessageLatency:    kindLatency,
	schema.CollectorOverflow: kindOverflow,
}

// rejectingGauges are the metrics whose updates past the cardinality limit
// are rejected rather than sent to an overflow series: their part of the
// overflow count is not in OverflowRecords.
var rejectingGauges = map[string]bool{schema.NodeLoad: true, schema.BudgetUtilization: true}

type seriesKey struct {
	kind kind
	set  attribute.Distinct
}

// series is the state of one series at the latest sample.
type series struct {
	gen   uint64
	kind  kind
	o, o2 *orch // owner; for delegations o is from, o2 is to
	slot  int32 // counter slot in o (tokens, tools, errors)
	// prev is the cumulative value at the latest sample: for sessions the
	// starts and ends (or the net count in atomic mode, in prev[0]), for
	// counters prev[0].
	prev   [2]int64
	active int64 // sessions: this series' share of o.active
	hist   *Hist // latency: cumulative histogram
}

// slot kinds: a slot is one value kept per orchestrator per step.
const (
	slotStarted uint8 = iota
	slotEnded
	slotOut
	slotIn
	slotTokens
	slotTool
	slotError
	slotOverflow
)

type slot struct {
	kind uint8
	a, b string
}

// orch is one orchestrator's history.
type orch struct {
	slots      []slot
	index      map[slot]int32
	frames     ring[frame]
	activeBase int64 // active sessions at the newest evicted frame
	active     int64 // active sessions at the latest sample
	pending    []entry
	dirty      bool
}

func newOrch(limit int) *orch {
	o := &orch{index: map[slot]int32{}}
	o.frames.limit = limit
	for _, k := range []uint8{slotStarted, slotEnded, slotOut, slotIn} {
		o.slotOf(slot{kind: k})
	}
	return o
}

func (o *orch) slotOf(s slot) int32 {
	if i, ok := o.index[s]; ok {
		return i
	}
	i := int32(len(o.slots))
	o.slots = append(o.slots, s)
	o.index[s] = i
	return i
}

// New returns a Store that keeps samples of src for retention, one per
// resolution step; now is its clock. The caller calls Sample every step.
// New records an empty first sample at now(): the store must be created
// before anything is recorded on the source's instruments.
func New(src Source, resolution, retention time.Duration, now func() time.Time) *Store {
	steps := int((retention + resolution - 1) / resolution)
	s := &Store{
		src:        src,
		now:        now,
		maxSamples: steps + 1,
		orchs:      map[string]*orch{},
		series:     map[seriesKey]*series{},
	}
	s.ovf = newOrch(s.maxSamples)
	s.samples.limit = s.maxSamples + 1
	s.samples.push(sample{seq: 0, t: now()})
	return s
}

// Close releases the history; later calls return ErrClosed.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.rm = metricdata.ResourceMetrics{}
	s.samples = ring[sample]{}
	s.orchs, s.series, s.dirty, s.buf, s.delta, s.ovf = nil, nil, nil, nil, Hist{}, nil
}

// Forget drops orchestrator id's history and the state of every series
// that carries it (delegations from or to it included), so that a later
// record for id starts fresh: its first sample counts the series' whole
// value, as a new series, and a window that began before Forget holds only
// what was recorded after it. Other orchestrators keep their history: a
// delegation between id and another orchestrator stays in the other's
// frames already written.
//
// Call Forget after the source has stopped reporting id's series (the
// Collector deletes them first). A series the source still reports with its
// old cumulative value would otherwise be counted again in full. A counter
// that restarts from zero and is reported again, whether or not a sample
// ran in between, never gives a negative or an inflated increase: with its
// state dropped it counts from zero. Forget of an unknown id does nothing.
func (s *Store) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	o, ok := s.orchs[id]
	if !ok {
		return
	}
	delete(s.orchs, id)
	for key, sr := range s.series {
		if sr.o != o && sr.o2 != o {
			continue
		}
		// A delegation's other end keeps its frames; it only loses the
		// series, which the source no longer reports either.
		delete(s.series, key)
	}
}

// Samples reports how many samples are retained.
func (s *Store) Samples() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples.len()
}

// Size reports the history kept: the number of frames and their encoded
// bytes (without the 24 bytes each frame's header takes).
func (s *Store) Size() (frames, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.orchs {
		frames += o.frames.len()
		for i := range o.frames.len() {
			bytes += len(o.frames.at(i).data)
		}
	}
	return frames, bytes
}

// Sample collects the source and records, per orchestrator, what changed
// since the previous sample.
func (s *Store) Sample(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	t := s.now()
	if err := s.src.Collect(ctx, &s.rm); err != nil {
		return fmt.Errorf("stats: sampling: %w", err)
	}
	if n := s.samples.len(); n > 0 {
		if last := s.samples.at(n - 1).t; t.Before(last) {
			t = last // a clock stepping back must not unsort the samples
		}
	}
	defer s.release()
	s.seq++
	s.gen++
	s.seen = 0
	s.ingest()
	s.samples.push(sample{seq: s.seq, t: t})
	s.evict()
	return nil
}

// ingest turns the collection in s.rm into frames: counters first, then
// removed series, then the latency histograms, whose deltas are encoded
// with the orchestrator's frame straight away.
func (s *Store) ingest() {
	known := len(s.series)
	walk(&s.rm, func(k kind, attrs attribute.Set, dp point) {
		if k != kindLatency {
			s.ingestCounter(k, attrs, dp)
		}
	})
	walk(&s.rm, func(k kind, attrs attribute.Set, dp point) {
		if k == kindLatency {
			s.lookup(k, attrs) // mark as seen before the sweep
		}
	})
	if s.seen < known {
		s.sweep()
	}
	walk(&s.rm, func(k kind, attrs attribute.Set, dp point) {
		if k == kindLatency {
			s.ingestLatency(attrs, dp.hist)
		}
	})
	for _, o := range s.dirty {
		if o.dirty {
			s.commit(o, nil)
		}
	}
	s.dirty = s.dirty[:0]
}

// point is one data point of the collection, as the store needs it.
type point struct {
	n    int64    // sum value
	hist *Hist    // latency
	ub   [2]int64 // sessions histogram: ends (<= 0), starts (> 0)
	isUB bool
}

// walk calls fn for each data point of the instruments the store reads.
func walk(rm *metricdata.ResourceMetrics, fn func(kind, attribute.Set, point)) {
	var h Hist
	for i := range rm.ScopeMetrics {
		sm := &rm.ScopeMetrics[i]
		if sm.Scope.Name != schema.MeterName {
			continue
		}
		for j := range sm.Metrics {
			m := &sm.Metrics[j]
			k := kinds[m.Name]
			if k == kindNone {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					fn(k, dp.Attributes, point{n: dp.Value})
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					if len(dp.BucketCounts) != 2 {
						continue
					}
					fn(k, dp.Attributes, point{isUB: true, ub: [2]int64{int64(dp.BucketCounts[0]), int64(dp.BucketCounts[1])}})
				}
			case metricdata.ExponentialHistogram[float64]:
				for _, dp := range d.DataPoints {
					h = Hist{
						Scale: dp.Scale, Count: dp.Count, ZeroCount: dp.ZeroCount, Sum: dp.Sum,
						Offset: dp.PositiveBucket.Offset, Counts: dp.PositiveBucket.Counts,
					}
					fn(k, dp.Attributes, point{hist: &h})
				}
			}
		}
	}
}

func attr(set attribute.Set, key string) string {
	v, _ := set.Value(attribute.Key(key))
	return v.AsString()
}

// lookup returns the state of a series, creating it on first sight, and
// marks it as seen in this sample.
func (s *Store) lookup(k kind, attrs attribute.Set) *series {
	key := seriesKey{k, attrs.Equivalent()}
	sr, ok := s.series[key]
	if ok {
		if sr.gen != s.gen {
			s.seen++
		}
		sr.gen = s.gen
		return sr
	}
	sr = &series{gen: s.gen, kind: k}
	switch k {
	case kindOverflow:
		if !rejectingGauges[attr(attrs, schema.KeyMetric)] {
			sr.o, sr.slot = s.ovf, s.ovf.slotOf(slot{kind: slotOverflow})
		}
	case kindDelegations:
		if from := attr(attrs, schema.KeyFromOrchestrator); from != "" {
			sr.o = s.orch(from)
		}
		if to := attr(attrs, schema.KeyToOrchestrator); to != "" {
			sr.o2 = s.orch(to)
		}
	default:
		if id := attr(attrs, schema.KeyOrchestratorID); id != "" {
			sr.o = s.orch(id)
		}
	}
	if sr.o != nil && k != kindOverflow {
		switch k {
		case kindTokens:
			sr.slot = sr.o.slotOf(slot{kind: slotTokens, a: attr(attrs, schema.KeyModel)})
		case kindTools:
			sr.slot = sr.o.slotOf(slot{kind: slotTool, a: attr(attrs, schema.KeyToolName), b: attr(attrs, schema.KeyStatus)})
		case kindErrors:
			sr.slot = sr.o.slotOf(slot{kind: slotError, a: attr(attrs, schema.KeyErrorType)})
		}
	}
	s.series[key] = sr
	return sr
}

func (s *Store) orch(id string) *orch {
	o, ok := s.orchs[id]
	if !ok {
		o = newOrch(s.maxSamples)
		s.orchs[id] = o
	}
	return o
}

func (s *Store) note(o *orch, sl int32, n uint64) {
	if n == 0 {
		return
	}
	o.pending = append(o.pending, entry{sl, n})
	s.touch(o)
}

func (s *Store) touch(o *orch) {
	if !o.dirty {
		o.dirty = true
		s.dirty = append(s.dirty, o)
	}
}

// increase is the increase of a cumulative value from prev to cur; a
// decrease means the series restarted, so the increase is cur.
func increase(cur, prev int64) uint64 {
	if cur < prev {
		return uint64(max(cur, 0))
	}
	return uint64(cur - prev)
}

func (s *Store) ingestCounter(k kind, attrs attribute.Set, dp point) {
	sr := s.lookup(k, attrs)
	switch k {
	case kindSessions:
		var starts, ends uint64
		var active int64
		if dp.isUB {
			starts, ends = increase(dp.ub[1], sr.prev[1]), increase(dp.ub[0], sr.prev[0])
			sr.prev = [2]int64{dp.ub[0], dp.ub[1]}
			active = dp.ub[1] - dp.ub[0]
		} else {
			// Atomic mode reports only the net count: its rises are
			// counted as starts and its falls as ends.
			d := dp.n - sr.prev[0]
			starts, ends = uint64(max(d, 0)), uint64(max(-d, 0))
			sr.prev[0] = dp.n
			active = dp.n
		}
		if o := sr.o; o != nil {
			s.note(o, int32(slotStarted), starts)
			s.note(o, int32(slotEnded), ends)
			if active != sr.active {
				o.active += active - sr.active
				s.touch(o)
			}
		}
		sr.active = active
	case kindDelegations:
		n := increase(dp.n, sr.prev[0])
		sr.prev[0] = dp.n
		if sr.o != nil {
			s.note(sr.o, int32(slotOut), n)
		}
		if sr.o2 != nil {
			s.note(sr.o2, int32(slotIn), n)
		}
	default:
		n := increase(dp.n, sr.prev[0])
		sr.prev[0] = dp.n
		if sr.o != nil {
			s.note(sr.o, sr.slot, n)
		}
	}
}

// sweep forgets the series the latest collection no longer holds. Their
// counts stay in the frames already written; a removed session series no
// longer contributes to its orchestrator's active sessions. A series that
// comes back starts from zero, so nothing ever counts negative.
func (s *Store) sweep() {
	for key, sr := range s.series {
		if sr.gen == s.gen {
			continue
		}
		if sr.kind == kindSessions && sr.o != nil && sr.active != 0 {
			sr.o.active -= sr.active
			s.touch(sr.o)
		}
		delete(s.series, key)
	}
}

func (s *Store) ingestLatency(attrs attribute.Set, h *Hist) {
	sr := s.lookup(kindLatency, attrs)
	if sr.hist == nil {
		sr.hist = &Hist{}
	}
	diff(&s.delta, h, sr.hist)
	sr.hist.set(h)
	if sr.o == nil || s.delta.Count == 0 && s.delta.total() == 0 {
		return
	}
	s.commit(sr.o, &s.delta)
}

// commit encodes o's frame for the current sample.
func (s *Store) commit(o *orch, h *Hist) {
	s.buf = encodeFrame(s.buf[:0], o.active, o.pending, h)
	o.frames.push(frame{seq: s.seq, data: string(s.buf)})
	o.pending = o.pending[:0]
	o.dirty = false
	if cap(o.pending) > 64 {
		o.pending = nil
	}
}

// evict drops the samples older than the retention, and the frames that
// only the dropped samples' windows could use.
func (s *Store) evict() {
	for s.samples.len() > s.maxSamples {
		s.samples.pop()
		s.evicted = true
	}
	oldest := s.samples.at(0).seq
	for _, o := range s.orchs {
		o.evict(oldest)
	}
	s.ovf.evict(oldest)
}

// evict drops the frames at or before the sample oldest.
func (o *orch) evict(oldest uint64) {
	for o.frames.len() > 0 && o.frames.at(0).seq <= oldest {
		f := o.frames.pop()
		o.activeBase = frameActive(f.data)
	}
}

// Query returns the statistics of orchestrator id over r. A window that
// ends at the time of the query includes a collection taken now.
func (s *Store) Query(ctx context.Context, id string, r Range) (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Stats{}, ErrClosed
	}
	now := s.now()
	start, end := r.Start, r.End
	if r.Relative {
		start, end = now.Add(-r.Last), now
	} else if end.IsZero() {
		end = now
	}
	if end.Before(start) {
		return Stats{}, ErrInvalidRange
	}
	endNow := !end.Before(now)
	if endNow {
		end = now
	}
	res := Stats{OrchestratorID: id}
	b := builder{st: &res, h: newAcc()}
	o := s.orchs[id]

	// Start bound: the sample at or before start.
	oldest := *s.samples.at(0)
	var seqA uint64
	if start.Before(oldest.t) {
		seqA, res.Start, res.Truncated = oldest.seq, oldest.t, s.evicted
	} else {
		i := s.samples.search(func(x *sample) bool { return x.t.After(start) }) - 1
		seqA, res.Start = s.samples.at(i).seq, s.samples.at(i).t
	}

	// End bound: now, or the sample at or before end.
	var seqB uint64
	switch {
	case endNow:
		seqB, res.End = s.samples.at(s.samples.len()-1).seq, now
	case end.Before(oldest.t):
		// Entirely before what is retained: nothing is known.
		res.Start, res.End, res.Truncated = end, end, s.evicted
		return b.finish(), nil
	default:
		i := s.samples.search(func(x *sample) bool { return x.t.After(end) }) - 1
		seqB, res.End = s.samples.at(i).seq, s.samples.at(i).t
	}
	zeroLen := start.Equal(end)
	if zeroLen {
		seqA, res.Start = seqB, res.End
	}

	if o != nil {
		res.ActiveSessions = o.sum(&b, seqA, seqB)
	}
	s.ovf.sum(&b, seqA, seqB)
	if endNow {
		defer s.release()
		if err := s.src.Collect(ctx, &s.rm); err != nil {
			return Stats{}, fmt.Errorf("stats: collecting: %w", err)
		}
		res.ActiveSessions = s.live(id, &b, zeroLen)
	}
	return b.finish(), nil
}

// sum adds o's frames after sample seqA up to sample seqB to b and returns
// o's active sessions at seqB.
func (o *orch) sum(b *builder, seqA, seqB uint64) int64 {
	active := o.activeBase
	var small [16]uint64
	sums := small[:0]
	if len(o.slots) <= len(small) {
		sums = small[:len(o.slots)]
	} else {
		sums = make([]uint64, len(o.slots))
	}
	add := func(sl int32, n uint64) { sums[sl] += n }
	first := o.frames.search(func(f *frame) bool { return f.seq > seqA })
	for i := 0; i < o.frames.len() && o.frames.at(i).seq <= seqB; i++ {
		f := o.frames.at(i)
		if i < first {
			active = frameActive(f.data)
			continue
		}
		active = decodeFrame(f.data, add, &b.h)
	}
	for sl, n := range sums {
		x := o.slots[sl]
		b.add(x.kind, x.a, x.b, n)
	}
	return active
}

// release drops the collection: between samples it would hold the SDK's
// per-point exemplar buffers (kilobytes per series) for nothing.
func (s *Store) release() { s.rm = metricdata.ResourceMetrics{} }

// live adds what orchestrator id changed since the latest sample, from the
// collection in s.rm, without changing the store, and returns its active
// sessions now.
func (s *Store) live(id string, b *builder, activeOnly bool) int64 {
	var active int64
	var delta Hist
	walk(&s.rm, func(k kind, attrs attribute.Set, dp point) {
		if k == kindOverflow {
			if !activeOnly && !rejectingGauges[attr(attrs, schema.KeyMetric)] {
				b.add(slotOverflow, "", "", increase(dp.n, s.prev(k, attrs)[0]))
			}
			return
		}
		if k == kindDelegations {
			from, to := attr(attrs, schema.KeyFromOrchestrator) == id, attr(attrs, schema.KeyToOrchestrator) == id
			if activeOnly || !from && !to {
				return
			}
			n := increase(dp.n, s.prev(k, attrs)[0])
			if from {
				b.add(slotOut, "", "", n)
			}
			if to {
				b.add(slotIn, "", "", n)
			}
			return
		}
		if attr(attrs, schema.KeyOrchestratorID) != id {
			return
		}
		switch k {
		case kindSessions:
			prev := s.prev(k, attrs)
			if dp.isUB {
				active += dp.ub[1] - dp.ub[0]
				if !activeOnly {
					b.add(slotStarted, "", "", increase(dp.ub[1], prev[1]))
					b.add(slotEnded, "", "", increase(dp.ub[0], prev[0]))
				}
				return
			}
			active += dp.n
			if d := dp.n - prev[0]; !activeOnly {
				b.add(slotStarted, "", "", uint64(max(d, 0)))
				b.add(slotEnded, "", "", uint64(max(-d, 0)))
			}
		case kindLatency:
			if activeOnly {
				return
			}
			var prev *Hist
			if sr := s.series[seriesKey{k, attrs.Equivalent()}]; sr != nil {
				prev = sr.hist
			}
			diff(&delta, dp.hist, prev)
			b.h.addHist(&delta)
		default:
			if activeOnly {
				return
			}
			n := increase(dp.n, s.prev(k, attrs)[0])
			switch k {
			case kindTokens:
				b.add(slotTokens, attr(attrs, schema.KeyModel), "", n)
			case kindTools:
				b.add(slotTool, attr(attrs, schema.KeyToolName), attr(attrs, schema.KeyStatus), n)
			case kindErrors:
				b.add(slotError, attr(attrs, schema.KeyErrorType), "", n)
			}
		}
	})
	return active
}

// prev returns a series' cumulative values at the latest sample; zeros for
// a series the store has not seen.
func (s *Store) prev(k kind, attrs attribute.Set) [2]int64 {
	if sr := s.series[seriesKey{k, attrs.Equivalent()}]; sr != nil {
		return sr.prev
	}
	return [2]int64{}
}

// toolSuccess is the status of a successful tool call; any other status
// (error, timeout) is a failure.
const toolSuccess = "success"

// builder accumulates a window's counts into Stats.
type builder struct {
	st *Stats
	h  acc
}

func (b *builder) add(k uint8, a, c string, n uint64) {
	if n == 0 {
		return
	}
	st, v := b.st, int64(n)
	switch k {
	case slotStarted:
		st.SessionsStarted += v
	case slotEnded:
		st.SessionsEnded += v
	case slotOut:
		st.DelegationsOut += v
	case slotIn:
		st.DelegationsIn += v
	case slotTokens:
		st.TotalTokens += v
		st.TokensByModel = addTo(st.TokensByModel, a, v)
	case slotTool:
		st.ToolInvocations += v
		if c == toolSuccess {
			st.SuccessfulToolCalls += v
		} else {
			st.FailedToolCalls += v
		}
		st.ToolCallsByTool = addTo(st.ToolCallsByTool, a, v)
	case slotError:
		st.Errors += v
		st.ErrorsByType = addTo(st.ErrorsByType, a, v)
	case slotOverflow:
		st.OverflowRecords += v
	}
}

func addTo(m map[string]int64, k string, v int64) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[k] += v
	return m
}

// finish derives the latency and rate fields.
func (b *builder) finish() Stats {
	st := b.st
	h := &b.h.Hist
	st.Messages = int64(h.Count)
	if h.Count > 0 {
		st.AvgLatency = seconds(h.Sum / float64(h.Count))
		st.P50Latency = seconds(h.Quantile(0.50))
		st.P95Latency = seconds(h.Quantile(0.95))
		st.P99Latency = seconds(h.Quantile(0.99))
		if h.ZeroCount < h.Count {
			st.LatencyRelativeError = RelativeError(h.Scale)
		}
	}
	if d := st.Messages + st.ToolInvocations; d > 0 {
		st.ErrorRate = float64(st.Errors) / float64(d)
	}
	if st.ToolInvocations > 0 {
		st.ToolFailureRate = float64(st.FailedToolCalls) / float64(st.ToolInvocations)
	}
	return *st
}

// RelativeError is the relative error bound of a percentile estimated from
// an exponential histogram of the given scale: the width of a bucket
// relative to its lower bound, 2^(2^-scale) - 1.
func RelativeError(scale int32) float64 {
	return math.Expm1(math.Ldexp(math.Ln2, -int(scale)))
}

func seconds(s float64) time.Duration {
	return time.Duration(math.Round(s * float64(time.Second)))
}
