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
//	uvarint  1 if a latency histogram delta follows, else 0; if 1:
//	  varint   scale
//	  uvarint  count, zero count
//	  8 bytes  sum (float64 bits, little endian)
//	  uvarint  number of non-empty buckets, then per bucket:
//	    varint   bucket index, as a gap from the previous one (first: absolute)
//	    uvarint  count
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
		return binary.AppendUvarint(buf, 0)
	}
	buf = binary.AppendUvarint(buf, 1)
	buf = binary.AppendVarint(buf, int64(h.Scale))
	buf = binary.AppendUvarint(buf, h.Count)
	buf = binary.AppendUvarint(buf, h.ZeroCount)
	buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(h.Sum))
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
	if r.uvarint() == 1 {
		scale := int32(r.varint())
		count, zero := r.uvarint(), r.uvarint()
		sum := math.Float64frombits(r.uint64le())
		a.addTotals(count, zero, sum)
		j := int64(0)
		for n := r.uvarint(); n > 0; n-- {
			j += r.varint()
			a.addBucket(scale, int32(j), r.uvarint())
		}
	}
	return active
}
