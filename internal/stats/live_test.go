package stats

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBucketIndex: bucket j at scale s holds (2^(j·2^-s), 2^((j+1)·2^-s)],
// exact powers of two at the top of theirs, and the index at a scale is the
// index at a finer one shifted right (the buckets nest).
func TestBucketIndex(t *testing.T) {
	testCases := []struct {
		v    float64
		s    int32
		want int32
	}{
		{1, 0, -1}, {2, 0, 0}, {3, 0, 1}, {4, 0, 1}, {0.5, 0, -2}, {0.75, 0, -1},
		{1, 3, -1}, {2, 3, 7}, {1.0001, 3, 0},
		{1, -1, -1}, {2, -1, 0}, {4, -1, 0}, {5, -1, 1}, {16, -2, 0}, {17, -2, 1},
		{math.Ldexp(1, -30), 20, -30<<20 - 1},
		// Subnormal values take math.Frexp's way.
		{math.Ldexp(1, -1060), 0, -1061}, {math.Ldexp(1.5, -1060), 0, -1060}, {math.Ldexp(1.5, -1060), 3, -1060*8 + 4},
	}
	for _, tc := range testCases {
		if got := bucketIndex(tc.v, tc.s); got != tc.want {
			t.Errorf("bucketIndex(%v, %d) = %d, want %d", tc.v, tc.s, got, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		v := math.Exp(rng.Float64()*60 - 40) // about 4e-18 .. 1e9
		for _, s := range []int32{20, 12, 6, 5, 1, 0, -1} {
			j := bucketIndex(v, s)
			lo := math.Exp2(math.Ldexp(float64(j), -int(s)))
			hi := math.Exp2(math.Ldexp(float64(j+1), -int(s)))
			// Allow float rounding of the bounds themselves.
			if !(v > lo*(1-1e-12)) || !(v <= hi*(1+1e-12)) {
				t.Fatalf("bucketIndex(%v, %d) = %d: bucket (%v, %v]", v, s, j, lo, hi)
			}
			if f := bucketIndex(v, 20) >> (20 - s); f != j && s <= 20 {
				// Only a value within rounding of a bound may differ.
				if b := math.Exp2(math.Ldexp(float64(max(f, j)), -int(s))); math.Abs(v-b) > 1e-12*v {
					t.Fatalf("bucketIndex(%v, %d) = %d, but the scale-20 index shifted gives %d", v, s, j, f)
				}
			}
		}
	}
}

// TestLog2Mantissa: the table and series log2 agrees with math.Log2 within
// 1e-12 over [1, 2), including both ends of every table step.
func TestLog2Mantissa(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	check := func(m float64) {
		if d := math.Abs(log2Mantissa(m) - math.Log2(m)); d > 1e-12 {
			t.Fatalf("log2Mantissa(%v) = %v, math.Log2 %v (diff %g)", m, log2Mantissa(m), math.Log2(m), d)
		}
	}
	for i := range 256 {
		lo := 1 + float64(i)/256
		check(lo)
		check(math.Nextafter(lo+1.0/256, 0))
	}
	for range 1_000_000 {
		check(1 + rng.Float64())
	}
}

// TestLiveHistMatchesAcc: a LiveHist holds what an acc of the same values
// holds (the scale the SDK would choose, at most HistogramMaxSize buckets),
// for narrow and wide spreads and values that grow the buckets on both
// sides; take empties it and the next value starts at the finest scale.
func TestLiveHistMatchesAcc(t *testing.T) {
	testCases := []struct {
		name   string
		lo, hi float64
		n      int
	}{
		{"one value", 0.25, 0.25, 1},
		{"narrow", 0.1, 0.11, 200},
		{"three decades", 0.01, 10, 500},
		{"six decades", 0.001, 1000, 2000},
		{"huge", 1e-9, 1e9, 3000},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var l LiveHist
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAcc()
			sum := 0.0
			for i := range tc.n {
				v := tc.lo * math.Exp(rng.Float64()*math.Log(tc.hi/tc.lo))
				if i%97 == 5 {
					v = 0
				}
				l.Record(v)
				a.addTotals(1, 0, v)
				if v == 0 {
					a.ZeroCount++
				} else {
					a.addBucket(liveMaxScale, bucketIndex(v, liveMaxScale), 1)
				}
				sum += v
			}
			var got Hist
			if !l.take(&got) {
				t.Fatal("take: empty")
			}
			got.trim()
			a.trim()
			if got.Scale != a.Scale || got.Count != a.Count || got.ZeroCount != a.ZeroCount || got.Offset != a.Offset ||
				len(got.Counts) != len(a.Counts) || math.Abs(got.Sum-sum) > 1e-9*sum {
				t.Fatalf("live %+v\nacc  %+v", got, a.Hist)
			}
			for i := range got.Counts {
				if got.Counts[i] != a.Counts[i] {
					t.Fatalf("bucket %d: live %d, acc %d", int(got.Offset)+i, got.Counts[i], a.Counts[i])
				}
			}
			if len(got.Counts) > HistogramMaxSize {
				t.Errorf("%d buckets", len(got.Counts))
			}
			if l.take(&got) {
				t.Error("take after take: not empty")
			}
		})
	}
	l.Record(1)
	if l.h.Scale != liveMaxScale {
		t.Errorf("after take, scale %d, want %d", l.h.Scale, liveMaxScale)
	}
}

// TestLiveHistConcurrentSafe: values recorded while another goroutine
// takes are each taken exactly once.
func TestLiveHistConcurrentSafe(t *testing.T) {
	var l LiveHist
	var wg sync.WaitGroup
	var stop atomic.Bool
	const workers, per = 4, 20_000
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				l.Record(float64(1+(i*7+w)%1000) * 1e-3)
			}
		})
	}
	var taken, inBuckets uint64
	var h Hist
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if l.take(&h) {
				taken += h.Count
				inBuckets += h.total()
			}
			time.Sleep(10 * time.Microsecond)
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-done
	if l.take(&h) {
		taken += h.Count
		inBuckets += h.total()
	}
	if taken != workers*per || inBuckets != workers*per {
		t.Errorf("taken %d values (%d in buckets), want %d", taken, inBuckets, workers*per)
	}
}

// BenchmarkLiveHistRecord is the record path's cost of the statistics for
// one latency: a LiveHist.Record of values spread over 10 ms .. 10 s (the
// buckets exist after the first pass), and of one repeated value.
func BenchmarkLiveHistRecord(b *testing.B) {
	vals := make([]float64, 1024)
	for i := range vals {
		vals[i] = 0.01 * math.Pow(1000, float64(i)/float64(len(vals)))
	}
	b.Run("values=spread", func(b *testing.B) {
		var l LiveHist
		i := 0
		for b.Loop() {
			l.Record(vals[i&1023])
			i++
		}
	})
	b.Run("values=one", func(b *testing.B) {
		var l LiveHist
		for b.Loop() {
			l.Record(0.3)
		}
	})
}

// TestLiveCells drives a Store that has no Source, only live cells, as the
// Collector does: a window ending now counts the cells' values since the
// latest sample, a sample moves them into frames, Forget drops the
// orchestrator's cells (a retired delegation's pending count staying with
// the other end, a cell that is not retired moving to the fresh history),
// and Unregister keeps what a cell counted.
func TestLiveCells(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	s := NewTiered(nil, []Tier{{Step: time.Second, Retention: time.Minute}}, func() time.Time { return now })
	var tokA, tokB, delAB, started, ended, ovf atomic.Int64
	var deadA, deadAB, aliveA atomic.Bool
	var hist LiveHist
	s.Register(CellSpec{Kind: CellTokens, ID: "a", A: "m", V: &tokA, Dead: &deadA})
	s.Register(CellSpec{Kind: CellTokens, ID: "b", A: "m", V: &tokB})
	s.Register(CellSpec{Kind: CellDelegation, ID: "a", ID2: "b", V: &delAB, Dead: &deadAB})
	s.Register(CellSpec{Kind: CellSessions, ID: "a", V: &started, V2: &ended, Dead: &deadA})
	s.Register(CellSpec{Kind: CellLatency, ID: "a", Hist: &hist, Dead: &deadA})
	s.Register(CellSpec{Kind: CellOverflow, V: &ovf})
	query := func(id string) Stats {
		t.Helper()
		st, err := s.Query(ctx, id, Range{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	sample := func() {
		t.Helper()
		now = now.Add(time.Second)
		if err := s.Sample(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tokA.Add(10)
	delAB.Add(2)
	started.Add(3)
	ended.Add(1)
	hist.Record(0.5)
	ovf.Add(4)
	check := func(what string, st Stats, tokens, active, startedN, out, in, messages, overflow int64) {
		t.Helper()
		if st.TotalTokens != tokens || st.ActiveSessions != active || st.SessionsStarted != startedN ||
			st.DelegationsOut != out || st.DelegationsIn != in || st.Messages != messages || st.OverflowRecords != overflow {
			t.Errorf("%s: %+v", what, st)
		}
	}
	check("a before any sample", query("a"), 10, 2, 3, 2, 0, 1, 4)
	sample()
	tokA.Add(5)
	hist.Record(0.25)
	check("a after a sample and more records", query("a"), 15, 2, 3, 2, 0, 2, 4)
	check("b", query("b"), 0, 0, 0, 0, 2, 0, 4)
	if n, _ := s.Cells(); n != 6 {
		t.Errorf("%d cells, want 6", n)
	}

	// A record racing with Forget registered a cell that is not retired.
	var tokA2 atomic.Int64
	s.Register(CellSpec{Kind: CellTokens, ID: "a", A: "m2", V: &tokA2, Dead: &aliveA})
	tokA2.Add(7)
	delAB.Add(1) // not sampled yet: stays in b's DelegationsIn
	deadA.Store(true)
	deadAB.Store(true)
	if err := s.Forget("a"); err != nil {
		t.Fatal(err)
	}
	check("a after Forget", query("a"), 7, 0, 0, 0, 0, 0, 4)
	check("b after Forget", query("b"), 0, 0, 0, 0, 3, 0, 4)
	if n, _ := s.Cells(); n != 3 { // b's tokens, overflow, a's fresh m2
		t.Errorf("%d cells after Forget, want 3", n)
	}
	sample()
	check("b after the next sample", query("b"), 0, 0, 0, 0, 3, 0, 4)
	if st := query("a"); st.TokensByModel["m2"] != 7 || len(st.TokensByModel) != 1 {
		t.Errorf("a's fresh history: %v", st.TokensByModel)
	}

	// Unregister keeps what the cell counted since the latest sample.
	var tokB2 atomic.Int64
	c := s.Register(CellSpec{Kind: CellTokens, ID: "b", A: "m3", V: &tokB2})
	tokB2.Add(9)
	s.Unregister(c)
	s.Unregister(c) // twice is harmless
	check("b after Unregister", query("b"), 9, 0, 0, 0, 3, 0, 4)
	s.Close()
	if c := s.Register(CellSpec{Kind: CellTokens, ID: "b", A: "m", V: &tokB}); c != nil {
		t.Error("Register after Close returned a cell")
	}
	s.Unregister(nil)
}
