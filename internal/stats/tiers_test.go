package stats

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

// TestTiersGroundTruth drives 25 hours of 10 s samples through the default
// tiers and checks windows of every length against the truth: the counts
// are exactly the difference of the cumulative values at the result's
// bounds, the bounds are samples at or before the asked ones within the
// step of the tier used, and Last(24h) reaches a day back.
func TestTiersGroundTruth(t *testing.T) {
	clk := &fakeClock{t: t0}
	src := &fakeSource{}
	s := NewTiered(src, nil, clk.now)
	const step = 10 * time.Second
	const steps = 25 * 360
	cum := make([]int64, steps+1)    // cumulative tokens at sample i
	active := make([]int64, steps+1) // active sessions at sample i
	var starts, ends uint64
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 1; i <= steps; i++ {
		cum[i] = cum[i-1] + int64(1+rng.IntN(9))
		if rng.IntN(3) == 0 {
			starts++
		} else if ends < starts && rng.IntN(2) == 0 {
			ends++
		}
		active[i] = int64(starts - ends)
		src.sums = map[string][]metricdata.DataPoint[int64]{schema.TokensUsed: {tokens("a", "m", cum[i])}}
		src.hists = map[string][]metricdata.HistogramDataPoint[int64]{schema.SessionsActive: {sessions("a", starts, ends)}}
		clk.set(t0.Add(time.Duration(i) * step))
		if err := s.Sample(ctx); err != nil {
			t.Fatal(err)
		}
	}
	now := clk.now()
	// Bounded: each tier keeps about retention/step samples.
	got := s.TierSamples()
	for k, max := range []int{31, 61 + 6, 25 + 60} {
		if got[k] > max {
			t.Errorf("tier %d keeps %d samples, want at most %d", k, got[k], max)
		}
	}
	idx := func(tm time.Time) int {
		d := tm.Sub(t0)
		if d%step != 0 {
			t.Fatalf("bound %v is not a sample time", tm)
		}
		return int(d / step)
	}
	check := func(t *testing.T, r Range, wantReach time.Duration) {
		t.Helper()
		st, err := s.Query(ctx, "a", r)
		if err != nil {
			t.Fatal(err)
		}
		askedStart, askedEnd := r.Start, r.End
		if r.Relative {
			askedStart, askedEnd = now.Add(-r.Last), now
		}
		if askedEnd.IsZero() {
			askedEnd = now
		}
		i, j := idx(st.Start), idx(st.End)
		if st.Start.After(askedStart) || askedStart.Sub(st.Start) >= wantReach {
			t.Errorf("Start %v for asked %v: want at or before it, within %v", st.Start, askedStart, wantReach)
		}
		if st.End.After(askedEnd) || askedEnd.Sub(st.End) >= wantReach {
			t.Errorf("End %v for asked %v: want at or before it, within %v", st.End, askedEnd, wantReach)
		}
		if want := cum[j] - cum[i]; st.TotalTokens != want {
			t.Errorf("window %v..%v: tokens %d, want %d", st.Start, st.End, st.TotalTokens, want)
		}
		if st.ActiveSessions != active[j] {
			t.Errorf("window %v..%v: active %d, want %d", st.Start, st.End, st.ActiveSessions, active[j])
		}
		if st.Truncated {
			t.Errorf("window %v..%v truncated", st.Start, st.End)
		}
	}
	testCases := []struct {
		name  string
		r     Range
		reach time.Duration // bounds within this of the asked ones
	}{
		{"Last(24h)", Range{Relative: true, Last: 24 * time.Hour}, time.Hour},
		{"Last(5m)", Range{Relative: true, Last: 5 * time.Minute}, step},
		{"Last(30m)", Range{Relative: true, Last: 30 * time.Minute}, time.Minute},
		{"Last(90m)", Range{Relative: true, Last: 90 * time.Minute}, time.Hour},
		{"within the last hour, in the past", Range{Start: now.Add(-59 * time.Minute), End: now.Add(-time.Minute)}, time.Minute},
		{"from past the minute tier", Range{Start: now.Add(-61 * time.Minute), End: now.Add(-time.Minute)}, time.Hour},
		{"a day ago, 3h", Range{Start: now.Add(-23 * time.Hour), End: now.Add(-20 * time.Hour)}, time.Hour},
		{"from 12h ago to 2 min ago", Range{Start: now.Add(-12 * time.Hour), End: now.Add(-2 * time.Minute)}, time.Hour},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) { check(t, tc.r, tc.reach) })
	}
	t.Run("random windows", func(t *testing.T) {
		for range 300 {
			a := now.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour))))
			b := a.Add(time.Duration(rng.Int64N(int64(now.Sub(a)) + 1)))
			if rng.IntN(4) == 0 {
				b = time.Time{} // ending now
			}
			check(t, Range{Start: a, End: b}, time.Hour)
		}
	})
	// Older than the day kept: truncated at the coarsest tier's oldest.
	st, err := s.Query(ctx, "a", Range{Start: t0})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Truncated || now.Sub(st.Start) < 24*time.Hour || now.Sub(st.Start) > 25*time.Hour {
		t.Errorf("whole history: start %v truncated %v; want about a day back, truncated", st.Start, st.Truncated)
	}
}

// TestTiersLatencyRollup: rollups keep the histograms, downscaled to the
// tier's MaxScale, and LatencyRelativeError says so.
func TestTiersLatencyRollup(t *testing.T) {
	clk := &fakeClock{t: t0}
	src := &fakeSource{}
	tiers := []Tier{{Step: time.Second, Retention: 5 * time.Second}, {Step: 10 * time.Second, Retention: time.Minute, MaxScale: 3}}
	s := NewTiered(src, tiers, clk.now)
	var cumCount uint64
	counts := map[int32]uint64{}
	for i := 1; i <= 60; i++ {
		// Scale 6, one value per step in bucket 6*i%64 of octave 1.
		j := int32(64 + i%64)
		counts[j]++
		cumCount++
		h := metricdata.ExponentialHistogramDataPoint[float64]{
			Attributes: set(schema.KeyOrchestratorID, "a"), Scale: 6, Count: cumCount, Sum: float64(cumCount),
		}
		lo, hi := int32(1<<30), int32(-1)
		for b := range counts {
			lo, hi = min(lo, b), max(hi, b)
		}
		h.PositiveBucket.Offset = lo
		h.PositiveBucket.Counts = make([]uint64, hi-lo+1)
		for b, n := range counts {
			h.PositiveBucket.Counts[b-lo] = n
		}
		src.expo = []metricdata.ExponentialHistogramDataPoint[float64]{h}
		clk.set(t0.Add(time.Duration(i) * time.Second))
		if err := s.Sample(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fine, err := s.Query(ctx, "a", Range{Start: t0.Add(57 * time.Second), End: t0.Add(59 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if fine.Messages != 2 || fine.LatencyRelativeError != RelativeError(6) {
		t.Errorf("fine window: %d messages, error %v; want 2, %v", fine.Messages, fine.LatencyRelativeError, RelativeError(6))
	}
	coarse, err := s.Query(ctx, "a", Range{Start: t0.Add(10 * time.Second), End: t0.Add(50 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if coarse.Messages != 40 || coarse.LatencyRelativeError != RelativeError(3) {
		t.Errorf("coarse window: %d messages, error %v; want 40, %v", coarse.Messages, coarse.LatencyRelativeError, RelativeError(3))
	}
	if coarse.P50Latency < 2*time.Second || coarse.P99Latency > 4*time.Second {
		t.Errorf("coarse percentiles %v %v outside octave 1 (2 s .. 4 s)", coarse.P50Latency, coarse.P99Latency)
	}
}

func TestCheckTiers(t *testing.T) {
	testCases := []struct {
		name  string
		tiers []Tier
		ok    bool
	}{
		{"default", DefaultTiers, true},
		{"one", []Tier{{Step: time.Second, Retention: time.Hour}}, true},
		{"none", nil, false},
		{"zero step", []Tier{{Retention: time.Hour}}, false},
		{"retention below step", []Tier{{Step: time.Hour, Retention: time.Minute}}, false},
		{"not a multiple", []Tier{{Step: 10 * time.Second, Retention: time.Hour}, {Step: 25 * time.Second, Retention: time.Hour}}, false},
		{"same step", []Tier{{Step: 10 * time.Second, Retention: time.Hour}, {Step: 10 * time.Second, Retention: 2 * time.Hour}}, false},
		{"shorter retention", []Tier{{Step: 10 * time.Second, Retention: time.Hour}, {Step: time.Minute, Retention: 30 * time.Minute}}, false},
		{"too many steps", []Tier{{Step: time.Millisecond, Retention: time.Hour}}, false},
		{"bad scale", []Tier{{Step: time.Second, Retention: time.Hour, MaxScale: 21}}, false},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTiers(tc.tiers, 1_000_000)
			if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrInvalidTiers) {
				t.Errorf("CheckTiers = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
