package stats

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

func delegation(from, to string, n int64) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Attributes: set(schema.KeyFromOrchestrator, from, schema.KeyToOrchestrator, to, schema.KeyStatus, "success"), Value: n}
}

// TestForget: Forget drops one orchestrator's history and series state, so
// that a counter restarting from zero counts from zero (never negative,
// never the old value again), while other orchestrators keep theirs.
func TestForget(t *testing.T) {
	type step struct {
		tokens, delegs []metricdata.DataPoint[int64]
		sess           []metricdata.HistogramDataPoint[int64]
		forget         bool // Forget("a") after setting this step's collection, before sampling
		noSample       bool // leave the step to the query's own collection
	}
	old := step{
		tokens: []metricdata.DataPoint[int64]{tokens("a", "m", 1000), tokens("b", "m", 50)},
		delegs: []metricdata.DataPoint[int64]{delegation("b", "a", 7)},
		sess:   []metricdata.HistogramDataPoint[int64]{sessions("a", 4, 1), sessions("b", 2, 0)},
	}
	testCases := []struct {
		name  string
		steps []step
		// a's and b's stats over the whole history, ending now
		aTokens, aActive, aStarted, aIn, bTokens, bOut, bActive int64
	}{
		{
			name: "series gone, then restarted",
			steps: []step{old,
				{tokens: []metricdata.DataPoint[int64]{tokens("b", "m", 50)}, sess: old.sess[1:], forget: true},
				{tokens: []metricdata.DataPoint[int64]{tokens("a", "m", 5), tokens("b", "m", 50)}, sess: []metricdata.HistogramDataPoint[int64]{sessions("a", 1, 0), sessions("b", 2, 0)}},
			},
			aTokens: 5, aActive: 1, aStarted: 1, bTokens: 50, bOut: 7, bActive: 2,
		},
		{
			name: "restart seen before Forget",
			steps: []step{old,
				{tokens: []metricdata.DataPoint[int64]{tokens("a", "m", 3), tokens("b", "m", 50)}, sess: old.sess[1:]},
				{tokens: []metricdata.DataPoint[int64]{tokens("a", "m", 3), tokens("b", "m", 50)}, sess: old.sess[1:], forget: true},
			},
			aTokens: 3, bTokens: 50, bOut: 7, bActive: 2,
		},
		{
			name: "restarted value larger than the old one",
			steps: []step{old,
				{tokens: []metricdata.DataPoint[int64]{tokens("a", "m", 2500), tokens("b", "m", 60)}, delegs: []metricdata.DataPoint[int64]{delegation("b", "a", 1)}, sess: old.sess[1:], forget: true},
			},
			// The delegation b->a (1) was reported before Forget: it is in
			// b's counts once and in a's dropped history, not in a's new one.
			aTokens: 2500, aIn: 0, bTokens: 60, bOut: 8, bActive: 2,
		},
		{
			name: "window ending now, no sample since Forget",
			steps: []step{old,
				{tokens: []metricdata.DataPoint[int64]{tokens("a", "m", 9), tokens("b", "m", 50)}, sess: old.sess[1:], forget: true, noSample: true},
			},
			aTokens: 9, bTokens: 50, bOut: 7, bActive: 2,
		},
		{
			name:    "unknown orchestrator",
			steps:   []step{old, {tokens: old.tokens, delegs: old.delegs, sess: old.sess}},
			aTokens: 1000, aActive: 3, aStarted: 4, aIn: 7, bTokens: 50, bOut: 7, bActive: 2,
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: t0}
			src := &fakeSource{}
			s := New(src, time.Second, time.Hour, clk.now)
			for i, st := range tc.steps {
				src.sums = map[string][]metricdata.DataPoint[int64]{schema.TokensUsed: st.tokens, schema.Delegations: st.delegs}
				src.hists = map[string][]metricdata.HistogramDataPoint[int64]{schema.SessionsActive: st.sess}
				clk.set(t0.Add(time.Duration(i+1) * time.Second))
				if st.forget {
					s.Forget("a")
				}
				if tc.name == "unknown orchestrator" {
					s.Forget("nobody")
				}
				if !st.noSample {
					if err := s.Sample(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, r := range []Range{{}, {Relative: true, Last: time.Hour}} {
				a, err := s.Query(ctx, "a", r)
				if err != nil {
					t.Fatal(err)
				}
				b, err := s.Query(ctx, "b", r)
				if err != nil {
					t.Fatal(err)
				}
				if a.TotalTokens != tc.aTokens || a.ActiveSessions != tc.aActive || a.SessionsStarted != tc.aStarted || a.DelegationsIn != tc.aIn {
					t.Errorf("a: tokens %d active %d started %d delegations in %d, want %d %d %d %d",
						a.TotalTokens, a.ActiveSessions, a.SessionsStarted, a.DelegationsIn, tc.aTokens, tc.aActive, tc.aStarted, tc.aIn)
				}
				if b.TotalTokens != tc.bTokens || b.DelegationsOut != tc.bOut || b.ActiveSessions != tc.bActive {
					t.Errorf("b: tokens %d delegations out %d active %d, want %d %d %d", b.TotalTokens, b.DelegationsOut, b.ActiveSessions, tc.bTokens, tc.bOut, tc.bActive)
				}
			}
		})
	}
}

// TestForgetConcurrentSafe: Forget, Sample and Query from several
// goroutines (run with -race).
func TestForgetConcurrentSafe(t *testing.T) {
	clk := &fakeClock{t: t0}
	src := &fakeSource{sums: map[string][]metricdata.DataPoint[int64]{schema.TokensUsed: {tokens("a", "m", 1)}}}
	s := New(src, time.Second, time.Hour, clk.now)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			s.Forget("a")
		}
	}()
	for range 200 {
		if err := s.Sample(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Query(ctx, "a", Range{}); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	s.Close()
	s.Forget("a") // after Close: no effect, no panic
}
