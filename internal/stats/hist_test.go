package stats

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	testCases := []struct {
		name      string
		cur, prev *Hist
		want      Hist
	}{
		{
			name: "no previous",
			cur:  &Hist{Scale: 3, Count: 3, Sum: 1.5, Offset: -2, Counts: []uint64{1, 0, 2}},
			want: Hist{Scale: 3, Count: 3, Sum: 1.5, Offset: -2, Counts: []uint64{1, 0, 2}},
		},
		{
			name: "same scale",
			cur:  &Hist{Scale: 3, Count: 7, ZeroCount: 1, Sum: 4, Offset: -2, Counts: []uint64{1, 3, 2}},
			prev: &Hist{Scale: 3, Count: 3, ZeroCount: 1, Sum: 1.5, Offset: -2, Counts: []uint64{1, 1}},
			want: Hist{Scale: 3, Count: 4, Sum: 2.5, Offset: -1, Counts: []uint64{2, 2}},
		},
		{
			name: "previous at a finer scale",
			// prev buckets 4,5,6,7 at scale 2 are buckets 2,2,3,3 at scale 1.
			cur:  &Hist{Scale: 1, Count: 10, Offset: 2, Counts: []uint64{6, 4}},
			prev: &Hist{Scale: 2, Count: 4, Offset: 4, Counts: []uint64{1, 2, 0, 1}},
			want: Hist{Scale: 1, Count: 6, Offset: 2, Counts: []uint64{3, 3}},
		},
		{
			name: "restarted series: count went down",
			cur:  &Hist{Scale: 3, Count: 2, Offset: 0, Counts: []uint64{2}},
			prev: &Hist{Scale: 3, Count: 5, Offset: 0, Counts: []uint64{5}},
			want: Hist{Scale: 3, Count: 2, Offset: 0, Counts: []uint64{2}},
		},
		{
			name: "restarted series: a bucket shrank",
			cur:  &Hist{Scale: 3, Count: 6, Offset: 0, Counts: []uint64{6}},
			prev: &Hist{Scale: 3, Count: 5, Offset: 1, Counts: []uint64{5}},
			want: Hist{Scale: 3, Count: 6, Offset: 0, Counts: []uint64{6}},
		},
		{
			name: "nothing changed",
			cur:  &Hist{Scale: 3, Count: 5, Sum: 2, Offset: 0, Counts: []uint64{5}},
			prev: &Hist{Scale: 3, Count: 5, Sum: 2, Offset: 0, Counts: []uint64{5}},
			want: Hist{Scale: 3, Counts: []uint64{}},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			var got Hist
			diff(&got, tc.cur, tc.prev)
			if got.Counts == nil {
				got.Counts = []uint64{}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("diff = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestAccMixedScales adds deltas at falling and rising scales and checks the
// result equals the sum built directly at the lowest scale.
func TestAccMixedScales(t *testing.T) {
	parts := []Hist{
		{Scale: 4, Count: 3, Sum: 1, Offset: -17, Counts: []uint64{1, 0, 2}},
		{Scale: 2, Count: 2, ZeroCount: 1, Sum: 2, Offset: 3, Counts: []uint64{1}},
		{Scale: 3, Count: 4, Sum: 3, Offset: 30, Counts: []uint64{1, 1, 1, 1}},
	}
	a := newAcc()
	for i := range parts {
		a.addHist(&parts[i])
	}
	want := map[int32]uint64{}
	for _, p := range parts {
		for i, c := range p.Counts {
			want[(p.Offset+int32(i))>>(p.Scale-2)] += c
		}
	}
	if a.Scale != 2 || a.Count != 9 || a.ZeroCount != 1 || a.Sum != 6 {
		t.Fatalf("acc = %+v", a.Hist)
	}
	for i, c := range a.Counts {
		if j := a.Offset + int32(i); want[j] != c {
			t.Errorf("bucket %d = %d, want %d", j, c, want[j])
		}
		delete(want, a.Offset+int32(i))
	}
	for j, c := range want {
		if c != 0 {
			t.Errorf("bucket %d missing (want %d)", j, c)
		}
	}
}

// bucketOf is the index of v's bucket at scale s: (2^(j·2^-s), 2^((j+1)·2^-s)].
func bucketOf(v float64, s int32) int32 {
	return int32(math.Ceil(math.Ldexp(math.Log2(v), int(s)))) - 1
}

func TestQuantileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, scale := range []int32{3, 4, 5, 8} {
		for _, n := range []int{1, 2, 10, 1000} {
			vals := make([]float64, n)
			h := Hist{Scale: scale}
			a := newAcc()
			for i := range vals {
				vals[i] = math.Exp(rng.Float64()*math.Log(1000)) * 0.005 // 5 ms .. 5 s
				a.addBucket(scale, bucketOf(vals[i], scale), 1)
				a.addTotals(1, 0, vals[i])
			}
			h = a.Hist
			slices.Sort(vals)
			// 5 ms .. 5 s is 10 octaves: scale 8 does not fit in
			// HistogramMaxSize buckets and is lowered.
			if h.Scale > scale || len(h.Counts) > HistogramMaxSize {
				t.Fatalf("scale %d, %d buckets", h.Scale, len(h.Counts))
			}
			width := math.Exp2(math.Exp2(-float64(h.Scale))) - 1
			for _, q := range []float64{0.01, 0.5, 0.95, 0.99, 1} {
				exact := vals[int(math.Ceil(q*float64(n)))-1]
				got := h.Quantile(q)
				if rel := math.Abs(got-exact) / exact; rel > width {
					t.Errorf("scale %d n %d q %v: got %v, exact %v: relative error %.4f > bucket width %.4f", scale, n, q, got, exact, rel, width)
				}
			}
		}
	}
}

func TestQuantileZeros(t *testing.T) {
	h := Hist{Scale: 0, Count: 4, ZeroCount: 3, Offset: 1, Counts: []uint64{1}} // 3 zeros, one in (2, 4]
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("p50 = %v, want 0", got)
	}
	if got := h.Quantile(1); got <= 2 || got > 4 {
		t.Errorf("p100 = %v, want in (2, 4]", got)
	}
	if got := (&Hist{}).Quantile(0.5); got != 0 {
		t.Errorf("empty p50 = %v, want 0", got)
	}
}

// TestAccBounded: values far apart at a fine scale (as deltas of one value
// each come, at scale 20) merge into at most HistogramMaxSize buckets, at
// the finest scale that holds them, and percentiles stay within the bound.
func TestAccBounded(t *testing.T) {
	a := newAcc()
	vals := []float64{0.01, 9.5, 0.5, 2, 0.0101, 7}
	for _, v := range vals {
		h := Hist{Scale: 20, Count: 1, Sum: v, Offset: bucketOf(v, 20), Counts: []uint64{1}}
		a.addHist(&h)
	}
	if len(a.Counts) > HistogramMaxSize {
		t.Fatalf("%d buckets, want at most %d", len(a.Counts), HistogramMaxSize)
	}
	// 0.01 .. 9.5 spans 10 octaves: scale 6 holds it in 640 buckets.
	if a.Scale != 6 {
		t.Errorf("scale %d, want 6", a.Scale)
	}
	if q := a.Quantile(1); math.Abs(q-9.5)/9.5 > RelativeError(a.Scale) {
		t.Errorf("max %v, want 9.5 within %v", q, RelativeError(a.Scale))
	}
	if a.Count != uint64(len(vals)) || a.total() != uint64(len(vals)) {
		t.Errorf("count %d total %d, want %d", a.Count, a.total(), len(vals))
	}
}
