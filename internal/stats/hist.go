package stats

import (
	"math"
	"slices"
)

// Hist is a base-2 exponential histogram of non-negative values, in the
// layout of the SDK's exponential histogram data point: Count values summing
// to Sum, ZeroCount of them zero, and Counts[i] values in bucket Offset+i.
// At scale s, bucket j holds the values in (2^(j·2^-s), 2^((j+1)·2^-s)].
type Hist struct {
	Scale     int32
	Count     uint64
	ZeroCount uint64
	Sum       float64
	Offset    int32
	Counts    []uint64
}

// total is the number of values the buckets hold, zero bucket included.
func (h *Hist) total() uint64 {
	n := h.ZeroCount
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// set copies src into h, reusing h's bucket slice if it is large enough.
func (h *Hist) set(src *Hist) {
	counts := h.Counts[:0]
	if cap(counts) < len(src.Counts) {
		counts = make([]uint64, 0, len(src.Counts))
	}
	counts = append(counts, src.Counts...)
	*h = *src
	h.Counts = counts
}

// downscale lowers h's scale by d, merging each run of 2^d buckets into one.
func (h *Hist) downscale(d int32) {
	if d <= 0 || len(h.Counts) == 0 {
		h.Scale -= max(d, 0)
		return
	}
	first := h.Offset >> d
	last := (h.Offset + int32(len(h.Counts)) - 1) >> d
	out := make([]uint64, last-first+1)
	for i, c := range h.Counts {
		out[((h.Offset+int32(i))>>d)-first] += c
	}
	h.Scale -= d
	h.Offset = first
	h.Counts = out
}

// bucketAt returns the count of bucket j of h, 0 outside its range.
func (h *Hist) bucketAt(j int32) uint64 {
	i := j - h.Offset
	if i < 0 || int(i) >= len(h.Counts) {
		return 0
	}
	return h.Counts[i]
}

// diff computes cur - prev into out (whose slice it reuses), at the lower of
// the two scales. A series restarted since prev (its count went down, or its
// scale up, or a bucket shrank) gives cur itself, as a counter reset does in
// Prometheus, so a window never holds negative counts.
func diff(out, cur, prev *Hist) {
	if prev == nil || prev.Count == 0 {
		out.set(cur)
		return
	}
	if cur.Count < prev.Count || cur.ZeroCount < prev.ZeroCount || cur.Scale > prev.Scale {
		out.set(cur)
		return
	}
	p := prev
	if prev.Scale > cur.Scale {
		p = &Hist{}
		p.set(prev)
		p.downscale(prev.Scale - cur.Scale)
	}
	out.Scale = cur.Scale
	out.Count = cur.Count - p.Count
	out.ZeroCount = cur.ZeroCount - p.ZeroCount
	out.Sum = cur.Sum - p.Sum
	out.Offset = cur.Offset
	out.Counts = append(out.Counts[:0], cur.Counts...)
	for i, c := range p.Counts {
		j := p.Offset + int32(i) - cur.Offset
		if c == 0 {
			continue
		}
		if j < 0 || int(j) >= len(out.Counts) || out.Counts[j] < c {
			out.set(cur)
			return
		}
		out.Counts[j] -= c
	}
	out.trim()
}

// trim drops empty buckets at both ends.
func (h *Hist) trim() {
	lo, hi := 0, len(h.Counts)
	for lo < hi && h.Counts[lo] == 0 {
		lo++
	}
	for hi > lo && h.Counts[hi-1] == 0 {
		hi--
	}
	if lo == hi {
		h.Offset, h.Counts = 0, h.Counts[:0]
		return
	}
	h.Offset += int32(lo)
	h.Counts = h.Counts[lo:hi]
}

// acc sums histogram deltas that may come at different scales; it keeps the
// lowest scale seen.
type acc struct {
	Hist
	empty bool // no bucket added yet: Scale is free
}

func newAcc() acc { return acc{empty: true} }

// addBucket adds n values to bucket j at scale s.
func (a *acc) addBucket(s, j int32, n uint64) {
	if a.empty {
		a.Scale, a.Offset, a.empty = s, j, false
	}
	if s < a.Scale {
		a.downscale(a.Scale - s)
	} else if s > a.Scale {
		j >>= s - a.Scale
	}
	// Keep the span within HistogramMaxSize buckets, lowering the scale as
	// the SDK does: deltas of a few values come at fine scales (20 for a
	// lone value), and two of them far apart would otherwise need millions
	// of buckets.
	if len(a.Counts) > 0 {
		lo, hi := min(a.Offset, j), max(a.Offset+int32(len(a.Counts))-1, j)
		d := int32(0)
		for int64(hi>>d)-int64(lo>>d)+1 > HistogramMaxSize {
			d++
		}
		if d > 0 {
			a.downscale(d)
			j >>= d
		}
	}
	if len(a.Counts) == 0 {
		a.Offset = j
	}
	switch {
	case j < a.Offset:
		grow := int(a.Offset - j)
		a.Counts = slices.Insert(a.Counts, 0, make([]uint64, grow)...)
		a.Offset = j
	case int(j-a.Offset) >= len(a.Counts):
		a.Counts = append(a.Counts, make([]uint64, int(j-a.Offset)-len(a.Counts)+1)...)
	}
	a.Counts[j-a.Offset] += n
}

// addTotals adds the count, zero count and sum of a delta.
func (a *acc) addTotals(count, zero uint64, sum float64) {
	a.Count += count
	a.ZeroCount += zero
	a.Sum += sum
}

// addHist adds all of h.
func (a *acc) addHist(h *Hist) {
	a.addTotals(h.Count, h.ZeroCount, h.Sum)
	for i, c := range h.Counts {
		if c != 0 {
			a.addBucket(h.Scale, h.Offset+int32(i), c)
		}
	}
}

// Quantile estimates the q-quantile (0 < q <= 1) of the values in h by the
// nearest-rank definition: the value of rank ceil(q·n) in sorted order. The
// rank is located in its bucket and the value interpolated log-linearly
// among the bucket's values, each taken at the middle of its share of the
// bucket; the error is therefore below the bucket's relative width,
// 2^(2^-scale) - 1, and half of that for a lone value. It returns 0 for an
// empty histogram.
func (h *Hist) Quantile(q float64) float64 {
	n := h.total()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	if rank <= h.ZeroCount {
		return 0
	}
	seen := h.ZeroCount
	for i, c := range h.Counts {
		if c == 0 || seen+c < rank {
			seen += c
			continue
		}
		frac := (float64(rank-seen) - 0.5) / float64(c)
		j := float64(h.Offset+int32(i)) + frac
		return math.Exp2(math.Ldexp(j, -int(h.Scale)))
	}
	return 0
}

// reset empties a. Its bucket slice goes too: kept, it would cost every
// orchestrator its largest step's buckets for good.
func (a *acc) reset() { *a = acc{empty: true} }
