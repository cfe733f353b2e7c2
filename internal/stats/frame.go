package stats

import (
	"encoding/binary"
	"math"
)

// A frame is what one orchestrator changed between two consecutive samples,
// encoded compactly with varints, so that memory grows with the number of
// series that changed in a step, not with the number of records:
//
//	varint   active sessions at the sample (cumulative, not a delta)
//	uvarint  number of counter entries, then per entry:
//	  uvarint  slot (index into the orchestrator's slot table)
//	  uvarint  increase of the slot in the step
//	uvarint  histogram format: 0 none, 1 pairs, 2 runs; if not 0:
//	  varint   scale
//	  uvarint  count, zero count
//	  8 bytes  sum (float64 bits, little endian)
//	  pairs (sparse buckets):
//	    uvarint  number of non-empty buckets, then per bucket:
//	      varint   bucket index, as a gap from the previous one (first: absolute)
//	      uvarint  count
//	  runs (dense buckets):
//	    uvarint  number of runs of adjacent non-empty buckets, then per run:
//	      varint   index of its first bucket, as a gap from the end of the
//	               previous run (first: absolute)
//	      uvarint  length, then that many uvarint counts
type frame struct {
	seq  uint64
	data string
}

// entry is one counter increase in a step.
type entry struct {
	slot int32
	n    uint64
}

func encodeFrame(buf []byte, active int64, entries []entry, h *Hist) []byte {
	buf = binary.AppendVarint(buf, active)
	buf = binary.AppendUvarint(buf, uint64(len(entries)))
	for _, e := range entries {
		buf = binary.AppendUvarint(buf, uint64(e.slot))
		buf = binary.AppendUvarint(buf, e.n)
	}
	if h == nil || h.Count == 0 && h.total() == 0 {
		return binary.AppendUvarint(buf, histNone)
	}
	// Sparse buckets (a step's few values) are cheapest as (gap, count)
	// pairs, dense ones (a rollup's) as runs of adjacent buckets.
	pairs, runs := histSizes(h)
	format := uint64(histPairs)
	if runs < pairs {
		format = histRuns
	}
	buf = binary.AppendUvarint(buf, format)
	buf = binary.AppendVarint(buf, int64(h.Scale))
	buf = binary.AppendUvarint(buf, h.Count)
	buf = binary.AppendUvarint(buf, h.ZeroCount)
	buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(h.Sum))
	if format == histPairs {
		nonEmpty := 0
		for _, c := range h.Counts {
			if c != 0 {
				nonEmpty++
			}
		}
		buf = binary.AppendUvarint(buf, uint64(nonEmpty))
		prev := int64(0)
		for i, c := range h.Counts {
			if c == 0 {
				continue
			}
			j := int64(h.Offset) + int64(i)
			buf = binary.AppendVarint(buf, j-prev)
			buf = binary.AppendUvarint(buf, c)
			prev = j
		}
		return buf
	}
	nRuns := 0
	forRuns(h, func(int, int) { nRuns++ })
	buf = binary.AppendUvarint(buf, uint64(nRuns))
	prev := int64(0)
	forRuns(h, func(i, n int) {
		j := int64(h.Offset) + int64(i)
		buf = binary.AppendVarint(buf, j-prev)
		buf = binary.AppendUvarint(buf, uint64(n))
		for _, c := range h.Counts[i : i+n] {
			buf = binary.AppendUvarint(buf, c)
		}
		prev = j + int64(n)
	})
	return buf
}

// Histogram formats of a frame.
const (
	histNone  = 0
	histPairs = 1 // (gap, count) per non-empty bucket
	histRuns  = 2 // (gap, length, counts...) per run of non-empty buckets
)

// forRuns calls fn with the index and length of each maximal run of
// non-empty buckets of h.
func forRuns(h *Hist, fn func(i, n int)) {
	for i := 0; i < len(h.Counts); {
		if h.Counts[i] == 0 {
			i++
			continue
		}
		j := i
		for j < len(h.Counts) && h.Counts[j] != 0 {
			j++
		}
		fn(i, j-i)
		i = j
	}
}

// histSizes returns the encoded size of h's buckets in each format.
func histSizes(h *Hist) (pairs, runs int) {
	prev := int64(0)
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		j := int64(h.Offset) + int64(i)
		pairs += varintLen(j-prev) + uvarintLen(c)
		prev = j
	}
	prev = 0
	forRuns(h, func(i, n int) {
		j := int64(h.Offset) + int64(i)
		runs += varintLen(j-prev) + uvarintLen(uint64(n))
		for _, c := range h.Counts[i : i+n] {
			runs += uvarintLen(c)
		}
		prev = j + int64(n)
	})
	return pairs, runs
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

// reader decodes a frame. A malformed frame cannot occur (frames are only
// written by encodeFrame); reading past the end yields zeros.
type reader struct {
	s string
	i int
}

func (r *reader) uvarint() uint64 {
	var x uint64
	var shift uint
	for r.i < len(r.s) {
		b := r.s[r.i]
		r.i++
		if b < 0x80 {
			return x | uint64(b)<<shift
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return x
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (r *reader) uint64le() uint64 {
	if r.i+8 > len(r.s) {
		r.i = len(r.s)
		return 0
	}
	var x uint64
	for k := 7; k >= 0; k-- {
		x = x<<8 | uint64(r.s[r.i+k])
	}
	r.i += 8
	return x
}

// frameActive returns the active-session count stored in a frame.
func frameActive(data string) int64 {
	r := reader{s: data}
	return r.varint()
}

// decodeFrame adds the frame's counter entries (via add) and its histogram
// delta (into a) and returns its active-session count.
func decodeFrame(data string, add func(slot int32, n uint64), a *acc) int64 {
	r := reader{s: data}
	active := r.varint()
	for n := r.uvarint(); n > 0; n-- {
		slot := int32(r.uvarint())
		add(slot, r.uvarint())
	}
	format := r.uvarint()
	if format == histNone {
		return active
	}
	scale := int32(r.varint())
	count, zero := r.uvarint(), r.uvarint()
	sum := math.Float64frombits(r.uint64le())
	a.addTotals(count, zero, sum)
	j := int64(0)
	switch format {
	case histPairs:
		for n := r.uvarint(); n > 0 && r.i < len(r.s); n-- {
			j += r.varint()
			a.addBucket(scale, int32(j), r.uvarint())
		}
	case histRuns:
		for n := r.uvarint(); n > 0 && r.i < len(r.s); n-- {
			j += r.varint()
			for m := r.uvarint(); m > 0 && r.i < len(r.s); m-- {
				a.addBucket(scale, int32(j), r.uvarint())
				j++
			}
		}
	}
	return active
}
