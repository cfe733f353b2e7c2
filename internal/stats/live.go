package stats

import (
	"math"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The live cells: the in-process statistics read the recording state the
// Collector keeps anyway, instead of a second aggregation of every record by
// an SDK reader.
//
// A Cell is one series the Store reads directly: a counter's running total
// (an atomic the record path adds to), a session series' starts and ends,
// or an orchestrator's LiveHist of the latencies recorded since the latest
// sample. The Store keeps, per cell, the value it had at the latest sample
// (prev), so that:
//   - Sample reads every cell and adds what changed since the previous
//     sample to the step it closes (a load and a compare per idle cell);
//   - a window ending now adds, to the frames, the asked orchestrator's
//     cells minus their values at the latest sample: it reads only that
//     orchestrator's cells and never collects anything.

// CellKind says what a Cell counts.
type CellKind uint8

// The kinds of cell. A and B of CellSpec are the labels besides the
// orchestrator's.
const (
	CellTokens      CellKind = iota + 1 // V: tokens of model A
	CellTool                            // V: calls of tool A with status B
	CellError                           // V: errors of type A
	CellDelegation                      // V: delegations from ID to ID2
	CellSessions                        // V: sessions started, V2: sessions ended
	CellSessionsNet                     // V: active sessions (WithAtomicCounters: starts and ends are its rises and falls)
	CellLatency                         // Hist: the orchestrator's latencies
	CellOverflow                        // V: records that went to an overflow series (no orchestrator)
)

// CellSpec describes a cell to Register.
type CellSpec struct {
	Kind    CellKind
	ID, ID2 string // orchestrator; ID2 is the delegation's target
	A, B    string
	// V and V2 are the live cumulative values; the Store only loads them.
	V, V2 *atomic.Int64
	Hist  *LiveHist
	// Dead, when set, tells Forget that the series was retired before it
	// (the cell goes with the orchestrator's history); a cell whose Dead is
	// still false was registered by a record racing with Forget and moves
	// to the orchestrator's fresh history.
	Dead *atomic.Bool
}

// Cell is a registered live series. Its fields are guarded by the Store's
// mutex; the values it points to are the record path's.
type Cell struct {
	kind        CellKind
	v, v2       *atomic.Int64
	hist        *LiveHist
	dead        *atomic.Bool
	o, o2       *orch
	slot        int32
	prev, prev2 int64
	at          int // index in Store.cells, -1 once removed
}

// Register adds a live cell and returns it, or nil after Close. Register
// the cell before the series can be recorded by anyone else (before it is
// published in the caller's cache): a record made before a query must find
// its cell registered. The cell's values must be 0 or start from 0: the
// Store counts them from 0.
func (s *Store) Register(spec CellSpec) *Cell {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	c := &Cell{kind: spec.Kind, v: spec.V, v2: spec.V2, hist: spec.Hist, dead: spec.Dead, at: len(s.cells)}
	switch spec.Kind {
	case CellOverflow:
		c.o = s.ovf
		c.slot = s.ovf.slotOf(slot{kind: slotOverflow})
	case CellDelegation:
		c.o, c.o2 = s.orch(spec.ID), s.orch(spec.ID2)
	default:
		c.o = s.orch(spec.ID)
		switch spec.Kind {
		case CellTokens:
			c.slot = c.o.slotOf(slot{kind: slotTokens, a: spec.A})
		case CellTool:
			c.slot = c.o.slotOf(slot{kind: slotTool, a: spec.A, b: spec.B})
		case CellError:
			c.slot = c.o.slotOf(slot{kind: slotError, a: spec.A})
		}
	}
	s.cells = append(s.cells, c)
	c.o.cells = append(c.o.cells, c)
	if c.o2 != nil && c.o2 != c.o {
		c.o2.cells = append(c.o2.cells, c)
	}
	return c
}

// Unregister removes a cell (one whose series lost a race to be cached);
// what it counted since the latest sample stays in the open step.
func (s *Store) Unregister(c *Cell) {
	if c == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || c.at < 0 {
		return
	}
	s.sampleCell(c)
	s.dropCell(c)
}

// dropCell removes c from the cell list and from its orchestrators' lists.
func (s *Store) dropCell(c *Cell) {
	if c.at >= 0 {
		last := len(s.cells) - 1
		s.cells[c.at] = s.cells[last]
		s.cells[c.at].at = c.at
		s.cells[last] = nil
		s.cells = s.cells[:last]
		c.at = -1
	}
	for _, o := range []*orch{c.o, c.o2} {
		if o != nil {
			o.removeCell(c)
		}
	}
}

func (o *orch) removeCell(c *Cell) {
	for i, x := range o.cells {
		if x == c {
			last := len(o.cells) - 1
			o.cells[i] = o.cells[last]
			o.cells[last] = nil
			o.cells = o.cells[:last]
			return
		}
	}
}

func pos(d int64) uint64 { return uint64(max(d, 0)) }

// loadSessions loads a session cell's ends, then its starts: a start is
// counted before the session's end can be (RecordSessionStart adds to
// starts before the active count an end checks), so the pair never shows
// an end without its start.
func (c *Cell) loadSessions() (started, ended int64) {
	ended = c.v2.Load()
	return c.v.Load(), ended
}

// sampleCell adds what c changed since the latest sample to the open step
// and makes its current value the new reference. The caller holds s.mu.
func (s *Store) sampleCell(c *Cell) {
	o := c.o
	switch c.kind {
	case CellLatency:
		if c.hist.take(&s.delta) {
			o.phist.addHist(&s.delta)
			s.touch(o)
		}
	case CellSessions:
		st, en := c.loadSessions()
		ds, de := st-c.prev, en-c.prev2
		c.prev, c.prev2 = st, en
		s.note(o, int32(slotStarted), pos(ds))
		s.note(o, int32(slotEnded), pos(de))
		if ds != de {
			o.active += ds - de
			s.touch(o)
		}
	case CellSessionsNet:
		v := c.v.Load()
		d := v - c.prev
		c.prev = v
		s.note(o, int32(slotStarted), pos(d))
		s.note(o, int32(slotEnded), pos(-d))
		if d != 0 {
			o.active += d
			s.touch(o)
		}
	case CellDelegation:
		v := c.v.Load()
		d := pos(v - c.prev)
		c.prev = v
		if o != nil {
			s.note(o, int32(slotOut), d)
		}
		if c.o2 != nil {
			s.note(c.o2, int32(slotIn), d)
		}
	default:
		v := c.v.Load()
		d := pos(v - c.prev)
		c.prev = v
		s.note(o, c.slot, d)
	}
}

// sampleLive adds every cell's change since the latest sample to the open
// step. The caller holds s.mu.
func (s *Store) sampleLive() {
	for _, c := range s.cells {
		s.sampleCell(c)
	}
}

// addLive adds o's cells' changes since the latest sample to b (unless
// zeroLen) and returns the change of o's active sessions. The caller holds
// s.mu, at least for reading.
func (o *orch) addLive(b *builder, zeroLen bool) int64 {
	var active int64
	var h Hist
	for _, c := range o.cells {
		switch c.kind {
		case CellLatency:
			if !zeroLen && c.hist.copyTo(&h) {
				b.h.addHist(&h)
			}
		case CellSessions:
			st, en := c.loadSessions()
			ds, de := st-c.prev, en-c.prev2
			active += ds - de
			if !zeroLen {
				b.add(slotStarted, "", "", pos(ds))
				b.add(slotEnded, "", "", pos(de))
			}
		case CellSessionsNet:
			d := c.v.Load() - c.prev
			active += d
			if !zeroLen {
				b.add(slotStarted, "", "", pos(d))
				b.add(slotEnded, "", "", pos(-d))
			}
		case CellDelegation:
			if zeroLen {
				continue
			}
			d := pos(c.v.Load() - c.prev)
			if c.o == o {
				b.add(slotOut, "", "", d)
			}
			if c.o2 == o {
				b.add(slotIn, "", "", d)
			}
		default:
			if zeroLen {
				continue
			}
			x := o.slots[c.slot]
			b.add(x.kind, x.a, x.b, pos(c.v.Load()-c.prev))
		}
	}
	return active
}

// forgetLive drops the cells of o, which Forget is removing, from every
// list. What a delegation cell counted since the latest sample stays in
// the other orchestrator's open step. A cell whose series is not retired
// (a record made while Forget runs created it) moves to id's fresh
// history. The caller holds s.mu and has already removed o from s.orchs.
func (s *Store) forgetLive(id string, o *orch) {
	var keep []*Cell
	cells := o.cells
	o.cells = nil // dropCell needs not search the list being dropped
	for _, c := range cells {
		if c.dead != nil && !c.dead.Load() {
			keep = append(keep, c)
			continue
		}
		s.sampleCell(c)
		s.dropCell(c)
	}
	if len(keep) == 0 {
		return
	}
	fresh := s.orch(id)
	for _, c := range keep {
		if c.o == o {
			c.o = fresh
			if c.kind == CellTokens || c.kind == CellTool || c.kind == CellError {
				c.slot = fresh.slotOf(o.slots[c.slot])
			}
		}
		if c.o2 == o {
			c.o2 = fresh
		}
		fresh.cells = append(fresh.cells, c)
	}
}

// LiveHist is an orchestrator's latency histogram since the Store's latest
// sample: a base-2 exponential histogram of non-negative values, in the
// layout of Hist, which starts at scale liveMaxScale after each sample and
// lowers its scale as the SDK's exponential histogram does, just enough
// that its values fit in HistogramMaxSize buckets. So a step's delta is at
// the finest scale its own values allow, as the SDK's delta collections
// were. Record is safe for concurrent use and allocates only when the
// buckets grow past what an earlier step needed.
type LiveHist struct {
	mu sync.Mutex
	h  Hist
}

// liveMaxScale is the finest scale of a LiveHist, the SDK's maximum.
const liveMaxScale = 20

// Record adds one value v >= 0.
func (l *LiveHist) Record(v float64) {
	l.mu.Lock()
	h := &l.h
	if h.Count == 0 {
		// Empty since the latest sample: start again at the finest scale.
		h.Scale, h.Offset, h.Counts = liveMaxScale, 0, h.Counts[:0]
	}
	h.Count++
	h.Sum += v
	if !(v > 0) {
		h.ZeroCount++
		l.mu.Unlock()
		return
	}
	j := bucketIndex(v, h.Scale)
	if i := j - h.Offset; i >= 0 && int(i) < len(h.Counts) {
		h.Counts[i]++
	} else {
		h.insert(j)
	}
	l.mu.Unlock()
}

// Size is the memory the histogram holds, in bytes: its struct and the
// capacity of its buckets.
func (l *LiveHist) Size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(unsafe.Sizeof(*l)) + 8*cap(l.h.Counts)
}

// Cells reports how many live cells are registered, and the bytes their
// structs take.
func (s *Store) Cells() (n, bytes int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.cells), len(s.cells) * int(unsafe.Sizeof(Cell{}))
}

// take moves the histogram's content into dst (reusing dst's buckets) and
// empties it; it reports false, leaving dst alone, when it is empty.
func (l *LiveHist) take(dst *Hist) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h.Count == 0 {
		return false
	}
	dst.set(&l.h)
	l.h.Count, l.h.ZeroCount, l.h.Sum = 0, 0, 0
	l.h.Counts = l.h.Counts[:0]
	return true
}

// copyTo copies the histogram into dst, reporting false when it is empty.
func (l *LiveHist) copyTo(dst *Hist) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h.Count == 0 {
		return false
	}
	dst.set(&l.h)
	return true
}

// insert counts a value of bucket j (at h's scale) that lies outside h's
// buckets, widening them, in place when their capacity allows, and lowering
// the scale if the span would pass HistogramMaxSize buckets.
func (h *Hist) insert(j int32) {
	n := len(h.Counts)
	if n == 0 {
		if cap(h.Counts) == 0 {
			h.Counts = make([]uint64, 0, 8)
		}
		h.Counts = append(h.Counts, 1)
		h.Offset = j
		return
	}
	lo, hi := min(h.Offset, j), max(h.Offset+int32(n)-1, j)
	d := int32(0)
	for int64(hi>>d)-int64(lo>>d)+1 > HistogramMaxSize {
		d++
	}
	if d > 0 {
		h.downscaleInPlace(d)
		j, lo, hi = j>>d, lo>>d, hi>>d
		n = len(h.Counts)
		if i := j - h.Offset; i >= 0 && int(i) < n {
			h.Counts[i]++
			return
		}
	}
	size := int(hi-lo) + 1
	shift := int(h.Offset - lo)
	if size > cap(h.Counts) {
		c := make([]uint64, size, min(max(size, 2*cap(h.Counts)), HistogramMaxSize))
		copy(c[shift:], h.Counts)
		h.Counts = c
	} else {
		h.Counts = h.Counts[:size]
		if shift > 0 {
			copy(h.Counts[shift:], h.Counts[:n])
			clear(h.Counts[:shift])
		}
		clear(h.Counts[shift+n:])
	}
	h.Offset = lo
	h.Counts[j-lo]++
}

// downscaleInPlace lowers h's scale by d > 0, merging each run of 2^d
// buckets into one, in h's own slice: bucket i moves to an index at most i.
func (h *Hist) downscaleInPlace(d int32) {
	first := h.Offset >> d
	last := (h.Offset + int32(len(h.Counts)) - 1) >> d
	for i, c := range h.Counts {
		h.Counts[i] = 0
		h.Counts[((h.Offset+int32(i))>>d)-first] += c
	}
	h.Counts = h.Counts[:last-first+1]
	h.Offset = first
	h.Scale -= d
}

// bucketIndex returns the bucket of v > 0 at scale s: the j with
// 2^(j·2^-s) < v <= 2^((j+1)·2^-s). It reads v's exponent and fraction
// from its bits (v = 1.f·2^e for a normal v; math.Frexp's handling of
// subnormals and specials is left to the rare value that needs it).
func bucketIndex(v float64, s int32) int32 {
	b := math.Float64bits(v)
	be := int32(b >> 52 & 0x7ff)
	if be == 0 || be == 0x7ff {
		return bucketIndexFrexp(v, s)
	}
	e := be - 1023
	frac := b & (1<<52 - 1)
	if frac == 0 {
		// An exact power of two, 2^e, is the top of its bucket.
		if s <= 0 {
			return (e - 1) >> -s
		}
		return e<<s - 1
	}
	if s <= 0 {
		return e >> -s
	}
	// Rounding must not carry the index into the next power of two.
	m := math.Float64frombits(frac | 1023<<52) // 1.f, in (1, 2)
	k := min(int32(log2Mantissa(m)*float64(int32(1)<<s)), int32(1)<<s-1)
	return e<<s + k
}

// bucketIndexFrexp is bucketIndex through math.Frexp, for subnormal values.
func bucketIndexFrexp(v float64, s int32) int32 {
	frac, exp := math.Frexp(v) // v = frac·2^exp, frac in [0.5, 1)
	if frac == 0.5 {
		if s <= 0 {
			return int32(exp-2) >> -s
		}
		return int32(exp-1)<<s - 1
	}
	if s <= 0 {
		return int32(exp-1) >> -s
	}
	k := min(int32(log2Mantissa(2*frac)*float64(int32(1)<<s)), int32(1)<<s-1)
	return int32(exp-1)<<s + k
}

// log2Mantissa returns log2(m) for m in [1, 2), within 1e-12 (math.Log
// took half of a Record). m is split as m_i·(1+r) with m_i = 1 + i/256 from
// the top 8 bits of its fraction, so that r < 2^-8 and four terms of
// ln(1+r) = r - r²/2 + r³/3 - r⁴/4 leave an error below r⁵/5 < 2e-13;
// m - m_i is exact. At scale 20 that misplaces only a value within a
// millionth of a bucket's width of its bound.
func log2Mantissa(m float64) float64 {
	i := math.Float64bits(m) >> 44 & 0xff
	r := (m - mantissaSteps[i]) * mantissaInverse[i]
	ln := r * (1 - r*(0.5-r*(1.0/3-r*0.25)))
	return mantissaLog2[i] + ln*(1/math.Ln2)
}

// The tables of log2Mantissa: m_i = 1 + i/256, 1/m_i and log2(m_i).
var mantissaSteps, mantissaInverse, mantissaLog2 = func() (steps, inv, lg [256]float64) {
	for i := range steps {
		steps[i] = 1 + float64(i)/256
		inv[i] = 1 / steps[i]
		lg[i] = math.Log2(steps[i])
	}
	return steps, inv, lg
}()
