package otelcollector

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"
)

// TestAggregatedStatsOverflowRecords: OverflowRecords counts the records of
// the window, by any orchestrator and on every metric, that went to an
// overflow series (one per record, whatever its value: 100 tokens are one
// record), not gauge updates rejected at the limit, and only those of the
// window; in both counter modes.
func TestAggregatedStatsOverflowRecords(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{{"sync", nil}, {"atomic", []Option{WithAtomicCounters()}}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			clk := &fakeClock{t: statsT0}
			// Limit 3: two label sets of each metric's own, then overflow.
			c := newStatsCollector(t, clk, append([]Option{WithCardinalityLimit(3)}, mode.opts...)...)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			// Each orchestrator takes one series of every metric; "c" and
			// later ones overflow.
			record := func(id string) {
				must(c.RecordTokenUsage(ctx, id, "m", 100))
				must(c.RecordMessageLatency(ctx, id, 20*time.Millisecond))
				must(c.RecordToolInvocation(ctx, id, "bash", ToolSuccess))
				must(c.RecordError(ctx, id, "timeout"))
				must(c.RecordSessionStart(ctx, id, "chat"))
				must(c.RecordDelegation(ctx, id, "a", DelegationSuccess))
			}
			record("a")
			record("b")
			if st, _ := c.AggregatedStats(ctx, "a", Last(time.Hour)); st.OverflowRecords != 0 {
				t.Fatalf("OverflowRecords = %d before any overflow", st.OverflowRecords)
			}
			record("c") // 6 records to overflow series
			must(c.RecordTokenUsage(ctx, "d", "m", 5000))
			// Gauges reject past the limit: not in OverflowRecords.
			must(c.UpdateNodeLoad("n1", 0.5))
			must(c.UpdateNodeLoad("n2", 0.5))
			if err := c.UpdateNodeLoad("n3", 0.5); err == nil {
				t.Fatal("third node accepted with limit 3")
			}
			sampleAt(t, c, clk, statsT0.Add(10*time.Second))
			record("e") // 6 more, after the sample
			clk.set(statsT0.Add(15 * time.Second))

			testCases := []struct {
				name string
				r    TimeRange
				want int64
			}{
				{"ending now", Last(time.Hour), 13},
				{"first step", TimeRange{Start: statsT0, End: statsT0.Add(10 * time.Second)}, 7},
				{"since the sample", TimeRange{Start: statsT0.Add(10 * time.Second)}, 6},
				{"empty", Last(0), 0},
			}
			for _, tc := range testCases {
				t.Run(tc.name, func(t *testing.T) {
					for _, id := range []string{"a", "e", "nobody"} {
						st, err := c.AggregatedStats(ctx, id, tc.r)
						if err != nil {
							t.Fatal(err)
						}
						if st.OverflowRecords != tc.want {
							t.Errorf("%s: OverflowRecords = %d, want %d", id, st.OverflowRecords, tc.want)
						}
					}
				})
			}
			if got, want := c.Overflowed(), int64(13+1); got != want {
				t.Errorf("Overflowed() = %d, want %d (13 records and 1 gauge rejection)", got, want)
			}
		})
	}
}

// TestAggregatedStatsLatencyRelativeError: the field is the relative width
// of the window histogram's buckets, every percentile lies within it of the
// exact nearest-rank percentile, and it is 0 with no messages or with only
// zero latencies.
func TestAggregatedStatsLatencyRelativeError(t *testing.T) {
	ctx := context.Background()
	testCases := []struct {
		name      string
		latencies []time.Duration
		wantScale int32 // -1: want 0
	}{
		{"none", nil, -1},
		{"zeros only", []time.Duration{0, 0, 0}, -1},
		// 10 ms to 10 s is about 10 octaves: 640 buckets keep scale 6.
		{"three decades", logSpread(10*time.Millisecond, 10*time.Second, 500), 6},
		// 1 ms to 17 min, 20 octaves: scale 5.
		{"six decades", logSpread(time.Millisecond, 1000*time.Second, 500), 5},
		// A narrow band keeps a fine scale.
		{"narrow", logSpread(100*time.Millisecond, 110*time.Millisecond, 200), 12},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: statsT0}
			c := newStatsCollector(t, clk)
			for _, d := range tc.latencies {
				if err := c.RecordMessageLatency(ctx, "o", d); err != nil {
					t.Fatal(err)
				}
			}
			clk.set(statsT0.Add(time.Second))
			st, err := c.AggregatedStats(ctx, "o", Last(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantScale < 0 {
				if st.LatencyRelativeError != 0 {
					t.Errorf("LatencyRelativeError = %v, want 0", st.LatencyRelativeError)
				}
				return
			}
			want := math.Pow(2, math.Pow(2, -float64(tc.wantScale))) - 1
			if math.Abs(st.LatencyRelativeError-want) > 1e-12 {
				t.Errorf("LatencyRelativeError = %v, want %v (scale %d)", st.LatencyRelativeError, want, tc.wantScale)
			}
			sorted := slices.Clone(tc.latencies)
			slices.Sort(sorted)
			for _, p := range []struct {
				q   float64
				got time.Duration
			}{{0.5, st.P50Latency}, {0.95, st.P95Latency}, {0.99, st.P99Latency}} {
				exact := exactPercentile(sorted, p.q)
				if rel := math.Abs(float64(p.got-exact)) / float64(exact); rel > st.LatencyRelativeError {
					t.Errorf("p%v = %v, exact %v: error %.4f%% above the bound %.4f%%", p.q*100, p.got, exact, rel*100, st.LatencyRelativeError*100)
				}
			}
		})
	}
}

// logSpread returns n durations spread log-uniformly over [lo, hi].
func logSpread(lo, hi time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	r := math.Log(float64(hi) / float64(lo))
	for i := range out {
		out[i] = time.Duration(float64(lo) * math.Exp(r*float64(i)/float64(n-1)))
	}
	return out
}
