package stats

import (
	"math"
	"reflect"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	testCases := []struct {
		name    string
		active  int64
		entries []entry
		h       *Hist
	}{
		{name: "empty"},
		{name: "negative active", active: -3},
		{name: "entries", active: 7, entries: []entry{{0, 1}, {5, math.MaxUint64}, {300, 12345}}},
		{name: "histogram", active: 1, entries: []entry{{2, 1}},
			h: &Hist{Scale: -2, Count: 9, ZeroCount: 2, Sum: 12.25, Offset: -300, Counts: []uint64{1, 0, 0, 5, 1}}},
		{name: "dense histogram (runs)", h: &Hist{Scale: 5, Count: 21, Sum: 3, Offset: -7, Counts: []uint64{1, 2, 3, 4, 0, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200}}},
		{name: "histogram at max scale", h: &Hist{Scale: 20, Count: 1, Sum: 1e-9, Offset: math.MinInt32 + 1, Counts: []uint64{1}}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			data := string(encodeFrame(nil, tc.active, tc.entries, tc.h))
			var got []entry
			a := newAcc()
			active := decodeFrame(data, func(slot int32, n uint64) { got = append(got, entry{slot, n}) }, &a)
			if active != tc.active || frameActive(data) != tc.active {
				t.Errorf("active = %d, want %d", active, tc.active)
			}
			if !reflect.DeepEqual(got, tc.entries) {
				t.Errorf("entries = %v, want %v", got, tc.entries)
			}
			want := newAcc()
			if tc.h != nil {
				want.addHist(tc.h)
			}
			if !reflect.DeepEqual(a, want) {
				t.Errorf("histogram = %+v, want %+v", a, want)
			}
		})
	}
}

func FuzzFrameRoundTrip(f *testing.F) {
	f.Add(int64(0), int32(0), uint64(0), int32(0), int32(0), uint64(0), 0.0)
	f.Add(int64(-1), int32(7), uint64(math.MaxUint64), int32(20), int32(math.MinInt32), uint64(3), 1.5)
	f.Fuzz(func(t *testing.T, active int64, slot int32, n uint64, scale, offset int32, c uint64, sum float64) {
		if slot < 0 || c == 0 || c > 1<<62 || offset > math.MaxInt32-2 {
			return
		}
		h := &Hist{Scale: scale, Count: 2 * c, Sum: sum, Offset: offset, Counts: []uint64{c, 0, c}}
		if n%2 == 1 { // dense: the runs format
			h.Counts, h.Count = []uint64{c, 1, c}, 2*c+1
		}
		data := string(encodeFrame(nil, active, []entry{{slot, n}}, h))
		a := newAcc()
		var gotSlot int32
		var gotN uint64
		if got := decodeFrame(data, func(s int32, x uint64) { gotSlot, gotN = s, x }, &a); got != active {
			t.Fatalf("active = %d, want %d", got, active)
		}
		if gotSlot != slot || gotN != n {
			t.Fatalf("entry = %d/%d, want %d/%d", gotSlot, gotN, slot, n)
		}
		if a.Scale != scale || a.Count != h.Count || a.bucketAt(offset) != c || a.bucketAt(offset+1) != h.Counts[1] || a.bucketAt(offset+2) != c ||
			math.Float64bits(a.Sum) != math.Float64bits(sum) && !(math.IsNaN(a.Sum) && math.IsNaN(sum)) {
			t.Fatalf("histogram = %+v, want %+v", a.Hist, h)
		}
	})
}

func TestRing(t *testing.T) {
	r := ring[int]{limit: 5}
	for i := range 5 {
		r.push(i)
	}
	if len(r.buf) != 5 {
		t.Errorf("capacity %d, want the limit 5", len(r.buf))
	}
	for i := 5; i < 12; i++ {
		if got := r.pop(); got != i-5 {
			t.Fatalf("pop = %d, want %d", got, i-5)
		}
		r.push(i)
	}
	if r.len() != 5 || len(r.buf) != 5 {
		t.Fatalf("len %d cap %d, want 5 5", r.len(), len(r.buf))
	}
	for i := range 5 {
		if *r.at(i) != 7+i {
			t.Errorf("at(%d) = %d, want %d", i, *r.at(i), 7+i)
		}
	}
	if i := r.search(func(v *int) bool { return *v > 8 }); i != 2 {
		t.Errorf("search > 8 = %d, want 2", i)
	}
	if i := r.search(func(v *int) bool { return *v > 100 }); i != 5 {
		t.Errorf("search > 100 = %d, want 5", i)
	}
}
