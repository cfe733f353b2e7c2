package stats

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
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

// Tier is one resolution of the history: a sample every Step, kept for
// Retention. A Store keeps its tiers finest first; each tier's samples are
// a subset of the finer tier's, and each of its frames is the sum of the
// finer tier's frames over its step.
type Tier struct {
	Step, Retention time.Duration
	// MaxScale, when above 0 and below a histogram's scale, downscales the
	// tier's latency histograms to it (coarser buckets, less memory).
	MaxScale int32
}

// DefaultTiers are the tiers of a Store made without any: raw samples every
// 10 s for 5 min, minute rollups for an hour, hour rollups for a day, so
// that a day's window works in-process and costs bounded memory.
var DefaultTiers = []Tier{
	{Step: 10 * time.Second, Retention: 5 * time.Minute},
	{Step: time.Minute, Retention: time.Hour},
	{Step: time.Hour, Retention: 24 * time.Hour, MaxScale: 5},
}

// Errors of CheckTiers.
var ErrInvalidTiers = errors.New("stats: invalid tiers")

// CheckTiers reports whether tiers can make a Store: at least one; each
// step above 0 and at most its retention; each step a multiple of the
// previous tier's step, and each retention at least the previous one's; at
// most maxSteps samples in a tier.
func CheckTiers(tiers []Tier, maxSteps int) error {
	if len(tiers) == 0 {
		return fmt.Errorf("%w: no tier", ErrInvalidTiers)
	}
	for i, t := range tiers {
		switch {
		case t.Step <= 0:
			return fmt.Errorf("%w: tier %d: step %v, want > 0", ErrInvalidTiers, i, t.Step)
		case t.Retention < t.Step:
			return fmt.Errorf("%w: tier %d: retention %v is shorter than the step %v", ErrInvalidTiers, i, t.Retention, t.Step)
		case maxSteps > 0 && t.Retention/t.Step > time.Duration(maxSteps):
			return fmt.Errorf("%w: tier %d: retention %v is more than %d steps of %v", ErrInvalidTiers, i, t.Retention, maxSteps, t.Step)
		case t.MaxScale < 0 || t.MaxScale > 20:
			return fmt.Errorf("%w: tier %d: max scale %d, want 0 (none) to 20", ErrInvalidTiers, i, t.MaxScale)
		}
		if i == 0 {
			continue
		}
		p := tiers[i-1]
		switch {
		case t.Step%p.Step != 0 || t.Step == p.Step:
			return fmt.Errorf("%w: tier %d: step %v is not a multiple of the previous step %v", ErrInvalidTiers, i, t.Step, p.Step)
		case t.Retention < p.Retention:
			return fmt.Errorf("%w: tier %d: retention %v is shorter than the previous tier's %v", ErrInvalidTiers, i, t.Retention, p.Retention)
		}
	}
	return nil
}

// Store samples a Source and keeps, per orchestrator, what changed at each
// sample, in tiers of coarser steps and longer retentions. All methods are
// safe for concurrent use.
//
// The source's collections may be cumulative or delta (the Temporality of
// each metric says which): a delta collection carries only the series
// recorded since the previous one, so a sample costs what changed. Every
// collection, whether taken by Sample or by a Query ending now, is added to
// the open step, which the next Sample closes into a frame.
type Store struct {
	src   Source
	now   func() time.Time
	tiers []tier

	// collectMu serializes collections and their ingestion: each delta
	// collection must be added exactly once. flights coalesce the
	// collections of concurrent queries ending now.
	collectMu sync.Mutex
	rm        metricdata.ResourceMetrics // the collection being read; emptied after use
	fmu       sync.Mutex
	running   *flight
	queued    *flight
	// queuedCallers counts the callers that waited for a queued flight
	// (for tests).
	queuedCallers int

	mu      sync.RWMutex
	closed  bool
	cells   []*Cell // the live cells (live.go)
	seq     uint64
	orchs   map[string]*orch
	ovf     *orch // the records of every orchestrator that went to overflow series
	series  map[seriesKey]*series
	gen     uint64
	cumSeen int // cumulative series seen in the current collection
	cumKnow int // cumulative series known
	dirty   []*orch
	delta   Hist    // scratch for histogram deltas
	scratch series  // scratch for a delta series
	buf     []byte  // scratch for frame encoding
	entries []entry // scratch for frame encoding
	rsum    []uint64
	racc    acc
}

// tier is the sample times of one Tier.
type tier struct {
	Tier
	maxSamples int
	limit      int // capacity of the tier's rings
	samples    ring[sample]
	evicted    bool
}

type sample struct {
	seq uint64
	t   time.Time
}

// flight is one coalesced collection.
type flight struct {
	done chan struct{}
	err  error
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

// series is what the store knows of one series: whom it counts for and,
// for a cumulative series, its value at the latest collection.
type series struct {
	gen   uint64
	kind  kind
	cum   bool  // seen as a cumulative series
	stale bool  // an end was forgotten: resolve it again when next seen
	o, o2 *orch // owner; for delegations o is from, o2 is to
	slot  int32 // counter slot in o (tokens, tools, errors, overflow)
	c     *cumState
}

// cumState is what the store keeps of a cumulative series between
// collections (delta series need none).
type cumState struct {
	// prev is the cumulative value at the latest collection: for sessions
	// the starts and ends (or the net count in atomic mode, in prev[0]),
	// for counters prev[0].
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
	slots  []slot
	tiers  []orchTier
	active int64 // active sessions at the latest collection
	// The open step: increases per slot (psum, with the slots touched in
	// ptouched) and the latency histogram, since the latest sample.
	psum     []uint64
	ptouched []int32
	phist    acc
	dirty    bool
	// cells are the live cells that count for the orchestrator (live.go).
	cells []*Cell
}

// orchTier is one orchestrator's frames in one tier.
type orchTier struct {
	frames     ring[frame]
	activeBase int64 // active sessions at the newest evicted frame
}

func (s *Store) newOrch() *orch {
	o := &orch{tiers: make([]orchTier, len(s.tiers)), phist: newAcc()}
	for i := range o.tiers {
		o.tiers[i].frames.limit = s.tiers[i].limit
	}
	for _, k := range []uint8{slotStarted, slotEnded, slotOut, slotIn} {
		o.slotOf(slot{kind: k})
	}
	return o
}

// slotOf returns the index of slot s in o's table, adding it on first
// sight. A linear search: it runs once per new series, and a map would cost
// every orchestrator a few kilobytes for good.
func (o *orch) slotOf(s slot) int32 {
	for i := range o.slots {
		if o.slots[i] == s {
			return int32(i)
		}
	}
	i := int32(len(o.slots))
	o.slots = append(o.slots, s)
	o.psum = append(o.psum, 0)
	return i
}

// New returns a Store with one tier: a sample every resolution, kept for
// retention. See NewTiered.
func New(src Source, resolution, retention time.Duration, now func() time.Time) *Store {
	return NewTiered(src, []Tier{{Step: resolution, Retention: retention}}, now)
}

// NewTiered returns a Store that keeps samples of src in the given tiers
// (which CheckTiers must accept; DefaultTiers if empty); now is its clock.
// src may be nil: the Store then reads only the cells registered with it
// (Register), and neither Sample nor Query collects anything.
// The caller calls Sample every step of the first tier; the coarser tiers
// take a sample at the first of those on or after each multiple of their
// step. NewTiered records an empty first sample at now(): the store must be
// created before anything is recorded on the source's instruments.
func NewTiered(src Source, tiers []Tier, now func() time.Time) *Store {
	if len(tiers) == 0 {
		tiers = DefaultTiers
	}
	s := &Store{
		src:    src,
		now:    now,
		orchs:  map[string]*orch{},
		series: map[seriesKey]*series{},
		racc:   newAcc(),
	}
	t0 := now()
	for k, t := range tiers {
		steps := int((t.Retention + t.Step - 1) / t.Step)
		tr := tier{Tier: t, maxSamples: steps + 1}
		// A tier also keeps the samples its coarser tier has yet to roll
		// up, back to the latest coarse sample: with a retention shorter
		// than the coarse step, that is more than its retention. Its rings
		// are sized for that, so that they never grow one element at a
		// time.
		tr.limit = tr.maxSamples
		if k+1 < len(tiers) {
			tr.limit = max(tr.limit, int(tiers[k+1].Step/t.Step)+1)
		}
		tr.limit++
		tr.samples.limit = tr.limit
		tr.samples.push(sample{seq: 0, t: t0})
		s.tiers = append(s.tiers, tr)
	}
	s.ovf = s.newOrch()
	return s
}

// Close releases the history; later calls return ErrClosed.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.rm = metricdata.ResourceMetrics{}
	for i := range s.tiers {
		s.tiers[i].samples = ring[sample]{}
	}
	s.orchs, s.series, s.dirty, s.buf, s.delta, s.ovf = nil, nil, nil, nil, Hist{}, nil
	for _, c := range s.cells {
		c.at = -1
	}
	s.cells = nil
}

// Samples reports how many samples the first tier retains.
func (s *Store) Samples() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tiers[0].samples.len()
}

// TierSamples reports how many samples each tier retains.
func (s *Store) TierSamples() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := make([]int, len(s.tiers))
	for i := range s.tiers {
		n[i] = s.tiers[i].samples.len()
	}
	return n
}

// Size reports the history kept: the number of frames and their encoded
// bytes (without the 24 bytes each frame's header takes), over all tiers.
func (s *Store) Size() (frames, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	count := func(o *orch) {
		for k := range o.tiers {
			fr := &o.tiers[k].frames
			frames += fr.len()
			for i := range fr.len() {
				bytes += len(fr.at(i).data)
			}
		}
	}
	for _, o := range s.orchs {
		count(o)
	}
	if s.ovf != nil {
		count(s.ovf)
	}
	return frames, bytes
}

// Forget drops orchestrator id's history and the state of every series
// that carries it (delegations from or to it included), so that a later
// record for id starts fresh: its first collection counts the series' whole
// value, as a new series, and a window that began before Forget holds only
// what was recorded after it. Other orchestrators keep their history: a
// delegation between id and another orchestrator stays in the other's
// frames already written.
//
// Forget first collects the source, so that what id recorded before the
// call (still pending in a delta source) goes into the history it drops,
// not into the fresh one. Call it after the source has stopped reporting
// id's cumulative series (the Collector deletes them first): a cumulative
// series still reported with its old value would otherwise be counted again
// in full. A counter that restarts from zero and is reported again, whether
// or not a sample ran in between, never gives a negative or an inflated
// increase: with its state dropped it counts from zero. Forget of an
// unknown id does nothing. The error is the collection's; the history is
// dropped even then.
func (s *Store) Forget(id string) error {
	s.collectMu.Lock()
	defer s.collectMu.Unlock()
	err := s.collect(context.Background())
	if errors.Is(err, ErrClosed) {
		return nil
	}
	s.forget(id)
	return err
}

func (s *Store) forget(id string) {
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
	s.forgetLive(id, o)
	for key, sr := range s.series {
		if sr.o != o && sr.o2 != o {
			continue
		}
		if sr.cum && sr.kind == kindDelegations && (sr.o != o || sr.o2 != o) {
			// A cumulative delegation with another orchestrator: that end
			// keeps counting from the value it has seen (so nothing is
			// counted twice); the forgotten end is resolved anew if the
			// series is reported again.
			sr.stale = true
			if sr.o == o {
				sr.o = nil
			} else {
				sr.o2 = nil
			}
			continue
		}
		if sr.cum {
			s.cumKnow--
		}
		delete(s.series, key)
	}
	// A dirty orchestrator forgotten in the open step writes no frame, and
	// the list of dirty ones lets it go.
	o.dirty = false
	if i := slices.Index(s.dirty, o); i >= 0 {
		s.dirty[i] = s.dirty[len(s.dirty)-1]
		s.dirty[len(s.dirty)-1] = nil
		s.dirty = s.dirty[:len(s.dirty)-1]
	}
}

// Sample collects the source and closes the open step into a frame per
// orchestrator that changed, in the first tier, and in each coarser tier
// whose step ends.
func (s *Store) Sample(ctx context.Context) error {
	s.collectMu.Lock()
	defer s.collectMu.Unlock()
	if err := s.collect(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.sampleLive()
	t := s.now()
	if last := s.tiers[0].latest().t; t.Before(last) {
		t = last // a clock stepping back must not unsort the samples
	}
	s.seq++
	for _, o := range s.dirty {
		if o.dirty {
			s.commit(o)
		}
	}
	s.dirty = s.dirty[:0]
	s.commit(s.ovf)
	s.tiers[0].samples.push(sample{seq: s.seq, t: t})
	for k := 1; k < len(s.tiers); k++ {
		tr := &s.tiers[k]
		prev := tr.latest()
		if t.Truncate(tr.Step).After(prev.t.Truncate(tr.Step)) {
			s.rollup(k, prev.seq)
			tr.samples.push(sample{seq: s.seq, t: t})
		}
	}
	s.evict()
	return nil
}

func (t *tier) latest() sample  { return *t.samples.at(t.samples.len() - 1) }
func (t *tier) oldest() *sample { return t.samples.at(0) }

// collect takes a collection of the source and adds it to the open step.
// The caller holds collectMu.
func (s *Store) collect(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if s.src == nil {
		return nil // live cells only: Sample and Query read them
	}
	defer s.release()
	if err := s.src.Collect(ctx, &s.rm); err != nil {
		return fmt.Errorf("stats: collecting: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.ingest()
	return nil
}

// refresh makes sure that a collection started after the call has been
// added to the open step. Concurrent callers share collections: one runs
// at a time, and every caller that arrives while it runs waits for the
// next one, which starts when it ends and serves them all.
func (s *Store) refresh(ctx context.Context) error {
	if s.src == nil {
		return nil
	}
	s.fmu.Lock()
	if f := s.queued; f != nil {
		s.queuedCallers++
		s.fmu.Unlock()
		return f.wait(ctx)
	}
	f := &flight{done: make(chan struct{})}
	prev := s.running
	if prev == nil {
		s.running = f
	} else {
		s.queued = f
		s.queuedCallers++
	}
	s.fmu.Unlock()
	if prev != nil {
		<-prev.done
		s.fmu.Lock()
		s.running, s.queued = f, nil
		s.fmu.Unlock()
	}
	s.collectMu.Lock()
	f.err = s.collect(ctx)
	s.collectMu.Unlock()
	s.fmu.Lock()
	if s.running == f {
		s.running = nil
	}
	s.fmu.Unlock()
	close(f.done)
	return f.err
}

func (f *flight) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("stats: collecting: %w", ctx.Err())
	}
}

// ingest adds the collection in s.rm to the open step: counters first,
// then removed cumulative series, then the latency histograms.
func (s *Store) ingest() {
	s.gen++
	s.cumSeen = 0
	walk(&s.rm, func(k kind, attrs attribute.Set, dp point) {
		if k != kindLatency {
			s.ingestCounter(k, attrs, dp)
		}
	})
	walk(&s.rm, func(k kind, attrs attribute.Set, dp point) {
		if k == kindLatency && !dp.delta {
			s.lookup(k, attrs, true) // mark as seen before the sweep
		}
	})
	if s.cumSeen < s.cumKnow {
		s.sweep()
	}
	walk(&s.rm, func(k kind, attrs attribute.Set, dp point) {
		if k == kindLatency {
			s.ingestLatency(attrs, dp)
		}
	})
}

// point is one data point of the collection, as the store needs it.
type point struct {
	n     int64    // sum value
	hist  *Hist    // latency
	ub    [2]int64 // sessions histogram: ends (<= 0), starts (> 0)
	isUB  bool
	delta bool // delta temporality: the values are increases
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
				delta := d.Temporality == metricdata.DeltaTemporality
				for _, dp := range d.DataPoints {
					fn(k, dp.Attributes, point{n: dp.Value, delta: delta})
				}
			case metricdata.Histogram[int64]:
				delta := d.Temporality == metricdata.DeltaTemporality
				for _, dp := range d.DataPoints {
					if len(dp.BucketCounts) != 2 {
						continue
					}
					fn(k, dp.Attributes, point{isUB: true, delta: delta, ub: [2]int64{int64(dp.BucketCounts[0]), int64(dp.BucketCounts[1])}})
				}
			case metricdata.ExponentialHistogram[float64]:
				delta := d.Temporality == metricdata.DeltaTemporality
				for _, dp := range d.DataPoints {
					h = Hist{
						Scale: dp.Scale, Count: dp.Count, ZeroCount: dp.ZeroCount, Sum: dp.Sum,
						Offset: dp.PositiveBucket.Offset, Counts: dp.PositiveBucket.Counts,
					}
					fn(k, dp.Attributes, point{hist: &h, delta: delta})
				}
			}
		}
	}
}

func attr(set attribute.Set, key string) string {
	v, _ := set.Value(attribute.Key(key))
	return v.AsString()
}

// lookup returns the state of a series, creating it on first sight; a
// cumulative series is marked as seen in this collection.
//
// A delta series is not kept: it has no state between collections, so its
// owner and slot are resolved from its attributes each time (into scratch),
// which saves the map entry that 17,000 series would cost for good.
func (s *Store) lookup(k kind, attrs attribute.Set, cum bool) *series {
	if !cum {
		s.scratch = s.resolve(k, attrs)
		return &s.scratch
	}
	key := seriesKey{k, attrs.Equivalent()}
	sr, ok := s.series[key]
	if !ok {
		sr = s.newSeries(k, attrs)
		s.series[key] = sr
	}
	if cum {
		if !sr.cum {
			sr.cum, sr.c = true, &cumState{}
			s.cumKnow++
		}
		if sr.gen != s.gen {
			s.cumSeen++
			sr.gen = s.gen
		}
	}
	return sr
}

func (s *Store) newSeries(k kind, attrs attribute.Set) *series {
	sr := s.resolve(k, attrs)
	return &sr
}

// resolve returns a series' owner and slot, from its attributes.
func (s *Store) resolve(k kind, attrs attribute.Set) series {
	sr := series{kind: k}
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
	if sr.o != nil {
		switch k {
		case kindTokens:
			sr.slot = sr.o.slotOf(slot{kind: slotTokens, a: attr(attrs, schema.KeyModel)})
		case kindTools:
			sr.slot = sr.o.slotOf(slot{kind: slotTool, a: attr(attrs, schema.KeyToolName), b: attr(attrs, schema.KeyStatus)})
		case kindErrors:
			sr.slot = sr.o.slotOf(slot{kind: slotError, a: attr(attrs, schema.KeyErrorType)})
		}
	}
	return sr
}

func (s *Store) orch(id string) *orch {
	o, ok := s.orchs[id]
	if !ok {
		o = s.newOrch()
		s.orchs[id] = o
	}
	return o
}

func (s *Store) note(o *orch, sl int32, n uint64) {
	if n == 0 {
		return
	}
	if o.psum[sl] == 0 {
		o.ptouched = append(o.ptouched, sl)
	}
	o.psum[sl] += n
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
	sr := s.lookup(k, attrs, !dp.delta)
	if sr.stale {
		fresh := s.newSeries(k, attrs)
		if sr.o == nil {
			sr.o = fresh.o
		}
		if sr.o2 == nil {
			sr.o2 = fresh.o2
		}
		sr.stale = false
	}
	switch k {
	case kindSessions:
		var starts, ends uint64
		var d int64 // change of the active count
		switch {
		case dp.isUB && dp.delta:
			starts, ends = uint64(max(dp.ub[1], 0)), uint64(max(dp.ub[0], 0))
			d = dp.ub[1] - dp.ub[0]
		case dp.isUB:
			starts, ends = increase(dp.ub[1], sr.c.prev[1]), increase(dp.ub[0], sr.c.prev[0])
			sr.c.prev = [2]int64{dp.ub[0], dp.ub[1]}
			d = dp.ub[1] - dp.ub[0] - sr.c.active
		case dp.delta:
			// A net count reported as its change: rises are counted as
			// starts and falls as ends.
			starts, ends = uint64(max(dp.n, 0)), uint64(max(-dp.n, 0))
			d = dp.n
		default:
			// Atomic mode reports only the net count: its rises are
			// counted as starts and its falls as ends.
			diff := dp.n - sr.c.prev[0]
			starts, ends = uint64(max(diff, 0)), uint64(max(-diff, 0))
			sr.c.prev[0] = dp.n
			d = dp.n - sr.c.active
		}
		if o := sr.o; o != nil {
			s.note(o, int32(slotStarted), starts)
			s.note(o, int32(slotEnded), ends)
			if d != 0 {
				o.active += d
				s.touch(o)
			}
		}
		if !dp.delta {
			sr.c.active += d
		}
	case kindDelegations:
		n := uint64(max(dp.n, 0))
		if !dp.delta {
			n = increase(dp.n, sr.c.prev[0])
			sr.c.prev[0] = dp.n
		}
		if sr.o != nil {
			s.note(sr.o, int32(slotOut), n)
		}
		if sr.o2 != nil {
			s.note(sr.o2, int32(slotIn), n)
		}
	default:
		n := uint64(max(dp.n, 0))
		if !dp.delta {
			n = increase(dp.n, sr.c.prev[0])
			sr.c.prev[0] = dp.n
		}
		if sr.o != nil {
			s.note(sr.o, sr.slot, n)
		}
	}
}

// sweep forgets the cumulative series the latest collection no longer
// holds. Their counts stay in the frames already written; a removed session
// series no longer contributes to its orchestrator's active sessions. A
// series that comes back starts from zero, so nothing ever counts negative.
func (s *Store) sweep() {
	for key, sr := range s.series {
		if !sr.cum || sr.gen == s.gen {
			continue
		}
		if sr.kind == kindSessions && sr.o != nil && sr.c.active != 0 {
			sr.o.active -= sr.c.active
			s.touch(sr.o)
		}
		delete(s.series, key)
		s.cumKnow--
	}
}

func (s *Store) ingestLatency(attrs attribute.Set, dp point) {
	sr := s.lookup(kindLatency, attrs, !dp.delta)
	h := dp.hist
	if !dp.delta {
		if sr.c.hist == nil {
			sr.c.hist = &Hist{}
		}
		diff(&s.delta, h, sr.c.hist)
		sr.c.hist.set(h)
		h = &s.delta
	}
	if sr.o == nil || h.Count == 0 && h.total() == 0 {
		return
	}
	sr.o.phist.addHist(h)
	s.touch(sr.o)
}

// commit closes o's open step into a frame of the first tier.
func (s *Store) commit(o *orch) {
	s.entries = s.entries[:0]
	for _, sl := range o.ptouched {
		s.entries = append(s.entries, entry{sl, o.psum[sl]})
		o.psum[sl] = 0
	}
	o.ptouched = o.ptouched[:0]
	if cap(o.ptouched) > 64 {
		o.ptouched = nil
	}
	if !o.dirty && len(s.entries) == 0 && o.phist.Count == 0 {
		return
	}
	var h *Hist
	if !o.phist.empty || o.phist.Count > 0 {
		h = &o.phist.Hist
	}
	s.buf = encodeFrame(s.buf[:0], o.active, s.entries, h)
	o.tiers[0].frames.push(frame{seq: s.seq, data: string(s.buf)})
	o.phist.reset()
	o.dirty = false
}

// rollup writes, for every orchestrator, the frame of tier k that sums the
// frames of tier k-1 after sample since up to the current sample.
func (s *Store) rollup(k int, since uint64) {
	maxScale := s.tiers[k].MaxScale
	roll := func(o *orch) {
		fr := &o.tiers[k-1].frames
		n := fr.len()
		if n == 0 || fr.at(n-1).seq <= since {
			return // nothing in the step: skipped at the cost of a compare
		}
		if cap(s.rsum) < len(o.slots) {
			s.rsum = make([]uint64, len(o.slots))
		}
		sums := s.rsum[:len(o.slots)]
		clear(sums)
		s.racc.reset()
		active := int64(0)
		first := fr.search(func(f *frame) bool { return f.seq > since })
		for i := first; i < n; i++ {
			active = decodeFrame(fr.at(i).data, func(sl int32, v uint64) { sums[sl] += v }, &s.racc)
		}
		s.entries = s.entries[:0]
		for sl, v := range sums {
			if v != 0 {
				s.entries = append(s.entries, entry{int32(sl), v})
			}
		}
		var h *Hist
		if !s.racc.empty || s.racc.Count > 0 {
			h = &s.racc.Hist
			if maxScale > 0 && h.Scale > maxScale {
				h.downscale(h.Scale - maxScale)
			}
		}
		s.buf = encodeFrame(s.buf[:0], active, s.entries, h)
		o.tiers[k].frames.push(frame{seq: s.seq, data: string(s.buf)})
	}
	for _, o := range s.orchs {
		roll(o)
	}
	roll(s.ovf)
}

// evict drops, in each tier, the samples older than its retention, and
// the frames that only the dropped samples' windows could use. A tier
// keeps the frames the next coarser tier has yet to roll up.
func (s *Store) evict() {
	for k := range s.tiers {
		tr := &s.tiers[k]
		keepFrom := uint64(math.MaxUint64)
		if k+1 < len(s.tiers) {
			keepFrom = s.tiers[k+1].latest().seq
		}
		for tr.samples.len() > tr.maxSamples && tr.samples.at(1).seq <= keepFrom {
			tr.samples.pop()
			tr.evicted = true
		}
		oldest := tr.oldest().seq
		for _, o := range s.orchs {
			o.evict(k, oldest)
		}
		s.ovf.evict(k, oldest)
	}
}

// evict drops o's frames of tier k at or before the sample oldest.
func (o *orch) evict(k int, oldest uint64) {
	t := &o.tiers[k]
	for t.frames.len() > 0 && t.frames.at(0).seq <= oldest {
		f := t.frames.pop()
		t.activeBase = frameActive(f.data)
	}
}

// at returns the sample of tier k at or before t; ok is false if t is
// before the tier's oldest sample.
func (tr *tier) at(t time.Time) (sample, bool) {
	if t.Before(tr.oldest().t) {
		return sample{}, false
	}
	i := tr.samples.search(func(x *sample) bool { return x.t.After(t) }) - 1
	return *tr.samples.at(i), true
}

// atSeq returns the latest sample of tier k with seq <= seq.
func (tr *tier) atSeq(seq uint64) sample {
	i := tr.samples.search(func(x *sample) bool { return x.seq > seq }) - 1
	return *tr.samples.at(max(i, 0))
}

// firstFrom returns the first sample of the tier with seq >= seq.
func (tr *tier) firstFrom(seq uint64) (sample, bool) {
	i := tr.samples.search(func(x *sample) bool { return x.seq >= seq })
	if i == tr.samples.len() {
		return sample{}, false
	}
	return *tr.samples.at(i), true
}

// Query returns the statistics of orchestrator id over r. A window that
// ends at the time of the query includes a collection taken after the call
// began.
//
// A bound is a sample at or before the asked time, in the finest tier that
// reaches back to it: a window is exact to the step of the coarsest tier it
// needs. A window ending in the past whose end its coarse tiers cannot reach
// exactly ends at the latest sample they can (End says where).
func (s *Store) Query(ctx context.Context, id string, r Range) (Stats, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return Stats{}, ErrClosed
	}
	now := s.now()
	s.mu.RUnlock()
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
		if err := s.refresh(ctx); err != nil {
			return Stats{}, err
		}
	}
	// Queries only read: they hold the lock shared, so concurrent callers
	// do not wait for one another, only for a Sample or a registration.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Stats{}, ErrClosed
	}
	res := Stats{OrchestratorID: id}
	b := builder{st: &res, h: newAcc()}
	coarsest := &s.tiers[len(s.tiers)-1]

	// End bound: now, or the sample at or before end in the finest tier
	// that reaches it.
	var seqB uint64
	if endNow {
		seqB, res.End = s.tiers[0].latest().seq, now
	} else {
		found := false
		for k := range s.tiers {
			if sm, ok := s.tiers[k].at(end); ok {
				seqB, res.End, found = sm.seq, sm.t, true
				break
			}
		}
		if !found {
			// Entirely before what is retained: nothing is known.
			res.Start, res.End, res.Truncated = end, end, coarsest.evicted
			return b.finish(), nil
		}
	}
	// Start bound: the sample at or before start in the finest tier that
	// reaches it, or the oldest sample kept.
	kA, seqA := -1, uint64(0)
	for k := range s.tiers {
		if sm, ok := s.tiers[k].at(start); ok {
			seqA, res.Start, kA = sm.seq, sm.t, k
			break
		}
	}
	if kA < 0 {
		kA = len(s.tiers) - 1
		seqA, res.Start, res.Truncated = coarsest.oldest().seq, coarsest.oldest().t, coarsest.evicted
	}
	zeroLen := start.Equal(end)
	if zeroLen || seqA > seqB {
		seqA, res.Start = seqB, res.End
	}

	o := s.orchs[id]
	// Walk from seqA to seqB, in tier kA and then in finer tiers as soon as
	// they reach back far enough.
	cur, k := seqA, kA
	active := int64(0)
	for {
		for k > 0 && s.tiers[k-1].oldest().seq <= cur {
			k--
		}
		target := seqB
		if k > 0 {
			if sw, ok := s.tiers[k].firstFrom(s.tiers[k-1].oldest().seq); ok && sw.seq < target {
				target = sw.seq
			}
		}
		next := s.tiers[k].atSeq(target)
		if next.seq < cur {
			next.seq = cur
		}
		if o != nil {
			active = o.sum(&b, k, cur, next.seq)
		}
		s.ovf.sum(&b, k, cur, next.seq)
		if next.seq != target || target == seqB {
			if next.seq != seqB && !endNow {
				// The coarse tiers cannot reach the asked end exactly.
				res.End = next.t
			}
			break
		}
		cur = next.seq
	}
	res.ActiveSessions = active
	if endNow {
		// The open step, and the live cells' changes since the latest
		// sample: every record made before the call.
		if o != nil {
			res.ActiveSessions = o.active + o.addLive(&b, zeroLen)
			if !zeroLen {
				o.addOpen(&b)
			}
		}
		if !zeroLen {
			s.ovf.addLive(&b, false)
			s.ovf.addOpen(&b)
		}
	}
	if res.End.Before(res.Start) {
		res.Start = res.End
	}
	return b.finish(), nil
}

// sum adds o's frames of tier k after sample seqA up to sample seqB to b
// and returns o's active sessions at seqB.
func (o *orch) sum(b *builder, k int, seqA, seqB uint64) int64 {
	t := &o.tiers[k]
	active := t.activeBase
	var small [32]uint64
	var sums []uint64
	if len(o.slots) <= len(small) {
		sums = small[:len(o.slots)]
	} else {
		sums = make([]uint64, len(o.slots))
	}
	add := func(sl int32, n uint64) { sums[sl] += n }
	first := t.frames.search(func(f *frame) bool { return f.seq > seqA })
	for i := 0; i < t.frames.len() && t.frames.at(i).seq <= seqB; i++ {
		f := t.frames.at(i)
		if i < first {
			active = frameActive(f.data)
			continue
		}
		active = decodeFrame(f.data, add, &b.h)
	}
	for sl, n := range sums {
		if n != 0 {
			x := o.slots[sl]
			b.add(x.kind, x.a, x.b, n)
		}
	}
	return active
}

// addOpen adds o's open step to b.
func (o *orch) addOpen(b *builder) {
	for _, sl := range o.ptouched {
		x := o.slots[sl]
		b.add(x.kind, x.a, x.b, o.psum[sl])
	}
	if o.phist.Count > 0 || !o.phist.empty {
		b.h.addHist(&o.phist.Hist)
	}
}

// release drops the collection: between collections it would hold the
// SDK's per-point buffers for nothing.
func (s *Store) release() { s.rm = metricdata.ResourceMetrics{} }

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
