package otelcollector

import (
	"context"
	"testing"
	"time"
)

// TestAggregatedStatsDay: with the default tiers, Last(24*time.Hour) works
// in-process, exact to the hour tier's step; WithStatsResolution and
// WithStatsRetention still give the single tier they always did.
func TestAggregatedStatsDay(t *testing.T) {
	ctx := context.Background()
	const step = 10 * time.Second
	run := func(t *testing.T, c *Collector, clk *fakeClock, steps int) []int64 {
		// One token per step, recorded before each sample; cum[i] is the
		// total at sample i.
		cum := make([]int64, steps+1)
		for i := 1; i <= steps; i++ {
			if err := c.RecordTokenUsage(ctx, "o", "m", int64(i%5+1)); err != nil {
				t.Fatal(err)
			}
			cum[i] = cum[i-1] + int64(i%5+1)
			sampleAt(t, c, clk, statsT0.Add(time.Duration(i)*step))
		}
		return cum
	}
	idx := func(t *testing.T, tm time.Time) int {
		t.Helper()
		d := tm.Sub(statsT0)
		if d%step != 0 {
			t.Fatalf("bound %v is not a sample", tm)
		}
		return int(d / step)
	}

	t.Run("default tiers", func(t *testing.T) {
		if testing.Short() {
			t.Skip("25 h of 10 s samples")
		}
		clk := &fakeClock{t: statsT0}
		c := newStatsCollector(t, clk)
		cum := run(t, c, clk, 25*360)
		// Records after the last sample are in a window ending now.
		if err := c.RecordTokenUsage(ctx, "o", "m", 1000); err != nil {
			t.Fatal(err)
		}
		now := clk.now()
		for _, tc := range []struct {
			name  string
			r     TimeRange
			reach time.Duration
		}{
			{"Last(24h)", Last(24 * time.Hour), time.Hour},
			{"Last(5m)", Last(5 * time.Minute), step},
			{"Last(45m)", Last(45 * time.Minute), time.Minute},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st, err := c.AggregatedStats(ctx, "o", tc.r)
				if err != nil {
					t.Fatal(err)
				}
				asked := now.Add(-tc.r.last)
				if st.Truncated || st.Start.After(asked) || asked.Sub(st.Start) >= tc.reach || !st.End.Equal(now) {
					t.Errorf("window %v..%v (truncated %v), asked %v..%v within %v", st.Start, st.End, st.Truncated, asked, now, tc.reach)
				}
				if want := cum[len(cum)-1] - cum[idx(t, st.Start)] + 1000; st.TotalTokens != want {
					t.Errorf("tokens %d, want %d", st.TotalTokens, want)
				}
			})
		}
	})

	t.Run("single tier options", func(t *testing.T) {
		clk := &fakeClock{t: statsT0}
		c := newStatsCollector(t, clk, WithStatsResolution(step), WithStatsRetention(10*time.Minute))
		cum := run(t, c, clk, 120) // 20 min
		now := clk.now()
		st, err := c.AggregatedStats(ctx, "o", Last(15*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		// Retention 10 min: the window starts 10 min back, truncated.
		if !st.Truncated || !st.Start.Equal(now.Add(-10*time.Minute)) {
			t.Errorf("start %v truncated %v, want %v and truncated", st.Start, st.Truncated, now.Add(-10*time.Minute))
		}
		if want := cum[120] - cum[60]; st.TotalTokens != want {
			t.Errorf("tokens %d, want %d", st.TotalTokens, want)
		}
		// Bounds exact to the 10 s resolution.
		st, err = c.AggregatedStats(ctx, "o", TimeRange{Start: now.Add(-5*time.Minute - 5*time.Second), End: now.Add(-time.Minute - time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		i, j := idx(t, st.Start), idx(t, st.End)
		if i != 120-31 || j != 120-7 || st.TotalTokens != cum[j]-cum[i] {
			t.Errorf("window samples %d..%d tokens %d, want %d..%d and %d", i, j, st.TotalTokens, 120-31, 120-7, cum[120-7]-cum[120-31])
		}
	})
}
