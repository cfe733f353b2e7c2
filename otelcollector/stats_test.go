package otelcollector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// withStatsClock is the test hook of the aggregated stats: now is the clock
// of samples and queries, and the sampler takes a sample whenever tick
// delivers (a channel that never delivers leaves sampling to the test).
func withStatsClock(now func() time.Time, tick <-chan time.Time) Option {
	return optionFunc(func(c config) config {
		c.now, c.statsTick = now, tick
		return c
	})
}

// fakeClock is a clock the test sets.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) set(t time.Time) {
	f.mu.Lock()
	f.t = t
	f.mu.Unlock()
}

var statsT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newStatsCollector returns a Collector whose clock is clk and whose sampler
// only samples when the test calls sampleAt.
func newStatsCollector(t testing.TB, clk *fakeClock, opts ...Option) *Collector {
	t.Helper()
	opts = append([]Option{withStatsClock(clk.now, make(chan time.Time))}, opts...)
	c, err := New(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// sampleAt sets the clock to at and takes a sample, as the sampler does at
// each tick.
func sampleAt(t testing.TB, c *Collector, clk *fakeClock, at time.Time) {
	t.Helper()
	clk.set(at)
	if err := c.stats.store.Sample(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// truthStep is what the workload did to one orchestrator in one step.
type truthStep struct {
	started, ended    int64
	netUp, netDown    int64 // per session series, the rise or fall of the net count
	activeAfter       int64
	tokens            map[string]int64
	latencies         []time.Duration
	tools             map[string]int64
	success, failed   int64
	errs              map[string]int64
	delegOut, delegIn int64
}

// groundTruth drives a deterministic workload and remembers it per step and
// per orchestrator, every latency included.
type groundTruth struct {
	c      *Collector
	rng    *rand.Rand
	orchs  []string
	active map[[2]string]int64
	steps  []map[string]*truthStep // steps[i]: records made after sample i
}

var (
	gtModels       = []string{"claude-sonnet", "claude-haiku", "gpt-4o"}
	gtTools        = []string{"bash", "read_file", "web_search", "edit"}
	gtSessionTypes = []string{"claude-code", "ruflo"}
	gtErrorTypes   = []string{"rate_limit", "timeout", "tool_error"}
)

func newGroundTruth(c *Collector) *groundTruth {
	return &groundTruth{
		c:      c,
		rng:    rand.New(rand.NewPCG(42, 1)),
		orchs:  []string{"orch-a", "orch-b", "orch-c"},
		active: map[[2]string]int64{},
	}
}

func (g *groundTruth) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

// run records one step of workload; idle orchestrators record nothing.
func (g *groundTruth) run(t *testing.T, idle ...string) {
	t.Helper()
	ctx := context.Background()
	step := map[string]*truthStep{}
	for _, o := range g.orchs {
		step[o] = &truthStep{tokens: map[string]int64{}, tools: map[string]int64{}, errs: map[string]int64{}}
	}
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range g.orchs {
		if slices.Contains(idle, o) {
			continue
		}
		ts := step[o]
		net := map[string]int64{}
		for range 1 + g.rng.IntN(6) {
			st := g.pick(gtSessionTypes)
			key := [2]string{o, st}
			if g.active[key] > 0 && g.rng.IntN(2) == 0 {
				check(g.c.RecordSessionEnd(ctx, o, st))
				g.active[key]--
				ts.ended++
				net[st]--
			} else {
				check(g.c.RecordSessionStart(ctx, o, st))
				g.active[key]++
				ts.started++
				net[st]++
			}
		}
		for _, n := range net {
			ts.netUp += max(n, 0)
			ts.netDown += max(-n, 0)
		}
		for range 1 + g.rng.IntN(5) {
			m, n := g.pick(gtModels), int64(g.rng.IntN(5000))
			check(g.c.RecordTokenUsage(ctx, o, m, n))
			if n > 0 {
				ts.tokens[m] += n
			}
		}
		// Latencies log-uniform over 10 ms .. 5 s, in whole microseconds.
		for range 100 + g.rng.IntN(200) {
			d := time.Duration(math.Exp(math.Log(1e4)+g.rng.Float64()*math.Log(500))) * time.Microsecond
			if g.rng.IntN(500) == 0 {
				d = 0
			}
			check(g.c.RecordMessageLatency(ctx, o, d))
			ts.latencies = append(ts.latencies, d)
		}
		for range g.rng.IntN(20) {
			tool := g.pick(gtTools)
			status := []ToolStatus{ToolSuccess, ToolSuccess, ToolSuccess, ToolError, ToolTimeout}[g.rng.IntN(5)]
			check(g.c.RecordToolInvocation(ctx, o, tool, status))
			ts.tools[tool]++
			if status == ToolSuccess {
				ts.success++
			} else {
				ts.failed++
			}
		}
		for range g.rng.IntN(4) {
			e := g.pick(gtErrorTypes)
			check(g.c.RecordError(ctx, o, e))
			ts.errs[e]++
		}
		for range g.rng.IntN(4) {
			to := g.pick(g.orchs) // sometimes itself
			check(g.c.RecordDelegation(ctx, o, to, []DelegationStatus{DelegationSuccess, DelegationError, DelegationRejected}[g.rng.IntN(3)]))
			ts.delegOut++
			step[to].delegIn++
		}
	}
	for _, o := range g.orchs {
		for _, st := range gtSessionTypes {
			step[o].activeAfter += g.active[[2]string{o, st}]
		}
	}
	g.steps = append(g.steps, step)
}

// want returns the expected stats of orchestrator o over steps [from, to)
// (step i holds the records made after sample i), with the latencies sorted
// for the percentile check.
func (g *groundTruth) want(o string, from, to int, atomic bool) (AggregatedStats, []time.Duration) {
	w := AggregatedStats{OrchestratorID: o}
	var lat []time.Duration
	var sum time.Duration
	add := func(m *map[string]int64, k string, n int64) {
		if n == 0 {
			return
		}
		if *m == nil {
			*m = map[string]int64{}
		}
		(*m)[k] += n
	}
	for i := from; i < to; i++ {
		ts := g.steps[i][o]
		if atomic {
			w.SessionsStarted += ts.netUp
			w.SessionsEnded += ts.netDown
		} else {
			w.SessionsStarted += ts.started
			w.SessionsEnded += ts.ended
		}
		for m, n := range ts.tokens {
			w.TotalTokens += n
			add(&w.TokensByModel, m, n)
		}
		for _, d := range ts.latencies {
			sum += d
		}
		lat = append(lat, ts.latencies...)
		for tool, n := range ts.tools {
			add(&w.ToolCallsByTool, tool, n)
		}
		w.ToolInvocations += ts.success + ts.failed
		w.SuccessfulToolCalls += ts.success
		w.FailedToolCalls += ts.failed
		for e, n := range ts.errs {
			w.Errors += n
			add(&w.ErrorsByType, e, n)
		}
		w.DelegationsOut += ts.delegOut
		w.DelegationsIn += ts.delegIn
	}
	if to > 0 {
		w.ActiveSessions = g.steps[to-1][o].activeAfter
	}
	w.Messages = int64(len(lat))
	if len(lat) > 0 {
		w.AvgLatency = time.Duration(math.Round(float64(sum) / float64(len(lat))))
	}
	if d := w.Messages + w.ToolInvocations; d > 0 {
		w.ErrorRate = float64(w.Errors) / float64(d)
	}
	if w.ToolInvocations > 0 {
		w.ToolFailureRate = float64(w.FailedToolCalls) / float64(w.ToolInvocations)
	}
	slices.Sort(lat)
	return w, lat
}

// exactPercentile is the nearest-rank percentile: the value of rank
// ceil(q·n) of the sorted values.
func exactPercentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(math.Ceil(q*float64(len(sorted))))-1]
}

// checkStats compares every field of got with the truth: counts exactly,
// AvgLatency to float rounding, percentiles within 2% of the exact ones.
func checkStats(t *testing.T, got, want AggregatedStats, sorted []time.Duration) {
	t.Helper()
	for _, p := range []struct {
		name string
		q    float64
		got  time.Duration
	}{{"P50", 0.50, got.P50Latency}, {"P95", 0.95, got.P95Latency}, {"P99", 0.99, got.P99Latency}} {
		exact := exactPercentile(sorted, p.q)
		if exact == 0 {
			if p.got != 0 {
				t.Errorf("%s = %v, want 0", p.name, p.got)
			}
			continue
		}
		rel := math.Abs(float64(p.got-exact)) / float64(exact)
		t.Logf("%s relative error %.3f%% (n=%d)", p.name, 100*rel, len(sorted))
		if rel > 0.02 {
			t.Errorf("%s = %v, exact %v: relative error %.2f%% > 2%%", p.name, p.got, exact, 100*rel)
		}
		if rel > got.LatencyRelativeError {
			t.Errorf("%s = %v, exact %v: relative error %.3f%% above LatencyRelativeError %.3f%%", p.name, p.got, exact, 100*rel, 100*got.LatencyRelativeError)
		}
	}
	if (got.LatencyRelativeError > 0) != (want.Messages > 0 && sorted[len(sorted)-1] > 0) {
		t.Errorf("LatencyRelativeError = %v with %d messages", got.LatencyRelativeError, want.Messages)
	}
	got.LatencyRelativeError = 0
	// The SDK sums latencies as float64 seconds; allow its rounding.
	if diff := math.Abs(float64(got.AvgLatency - want.AvgLatency)); diff > max(1, 1e-9*float64(want.AvgLatency)) {
		t.Errorf("AvgLatency = %v, want %v", got.AvgLatency, want.AvgLatency)
	}
	got.P50Latency, got.P95Latency, got.P99Latency, got.AvgLatency = 0, 0, 0, 0
	want.AvgLatency = 0
	// Rates are compared with the same arithmetic, so exactly.
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("stats differ\n got  %+v\n want %+v", got, want)
	}
}

// TestAggregatedStatsGroundTruth drives a deterministic workload over a
// fake clock and checks every field of several windows against the truth
// kept on the side: the whole run, the last step, a window in the middle, a
// quiet one, an empty one, and after the retention has passed, one older
// than the retention. It runs in both counter modes.
func TestAggregatedStatsGroundTruth(t *testing.T) {
	const step = 10 * time.Second
	at := func(i int) time.Time { return statsT0.Add(time.Duration(i) * step) }
	for _, mode := range []struct {
		name   string
		atomic bool
	}{{"sync", false}, {"atomic", true}} {
		t.Run(mode.name, func(t *testing.T) {
			clk := &fakeClock{t: at(0)}
			opts := []Option{WithStatsResolution(step), WithStatsRetention(6 * step)}
			if mode.atomic {
				opts = append(opts, WithAtomicCounters())
			}
			c := newStatsCollector(t, clk, opts...)
			g := newGroundTruth(c)
			ctx := context.Background()

			// Five steps; orch-c is idle in steps 3 and 4.
			for i := range 5 {
				clk.set(at(i).Add(step / 2))
				if i == 2 || i == 3 {
					g.run(t, "orch-c")
				} else {
					g.run(t)
				}
				sampleAt(t, c, clk, at(i+1))
			}

			type window struct {
				name     string
				o        string
				r        TimeRange
				from, to int // steps covered
				start    time.Time
				end      time.Time
			}
			check := func(w window, truncated bool) {
				t.Run(w.name, func(t *testing.T) {
					got, err := c.AggregatedStats(ctx, w.o, w.r)
					if err != nil {
						t.Fatal(err)
					}
					want, lat := g.want(w.o, w.from, w.to, mode.atomic)
					want.Start, want.End, want.Truncated = w.start, w.end, truncated
					checkStats(t, got, want, lat)
				})
			}
			for _, w := range []window{
				{"whole run", "orch-a", TimeRange{Start: at(0)}, 0, 5, at(0), at(5)},
				{"whole run, zero range", "orch-b", TimeRange{}, 0, 5, at(0), at(5)},
				{"whole run, from before New", "orch-c", TimeRange{Start: at(-100), End: at(5)}, 0, 5, at(0), at(5)},
				{"last step", "orch-a", Last(step), 4, 5, at(4), at(5)},
				{"last step, explicit", "orch-b", TimeRange{Start: at(4), End: at(5)}, 4, 5, at(4), at(5)},
				{"middle", "orch-b", TimeRange{Start: at(1).Add(step / 2), End: at(3).Add(step / 2)}, 1, 3, at(1), at(3)},
				{"quiet middle", "orch-c", TimeRange{Start: at(2), End: at(4)}, 2, 4, at(2), at(4)},
				{"zero length", "orch-a", TimeRange{Start: at(2), End: at(2)}, 2, 2, at(2), at(2)},
			} {
				check(w, false)
			}

			// Records after the latest sample are in a window ending now.
			clk.set(at(5).Add(step / 2))
			g.run(t)
			check(window{"ending now, between samples", "orch-a", Last(2 * step), 3, 6, at(3), at(5).Add(step / 2)}, false)
			check(window{"zero length now", "orch-b", Last(0), 6, 6, at(5).Add(step / 2), at(5).Add(step / 2)}, false)
			sampleAt(t, c, clk, at(6))

			// Five more steps: samples older than 6 steps are dropped.
			for i := 6; i < 11; i++ {
				clk.set(at(i).Add(step / 2))
				g.run(t)
				sampleAt(t, c, clk, at(i+1))
			}
			// Retained: samples at(5) .. at(11).
			check(window{"older than retention", "orch-a", TimeRange{Start: at(1), End: at(8)}, 5, 8, at(5), at(8)}, true)
			check(window{"whole run after retention", "orch-c", Last(time.Hour), 5, 11, at(5), at(11)}, true)
			check(window{"retained", "orch-b", TimeRange{Start: at(5), End: at(11)}, 5, 11, at(5), at(11)}, false)
			check(window{"entirely before retention", "orch-a", TimeRange{Start: at(0), End: at(3)}, 0, 0, at(3), at(3)}, true)
		})
	}
}

func TestAggregatedStatsBadInput(t *testing.T) {
	clk := &fakeClock{t: statsT0}
	c := newStatsCollector(t, clk)
	ctx := context.Background()
	if err := c.RecordTokenUsage(ctx, "orch-a", "m", 10); err != nil {
		t.Fatal(err)
	}
	clk.set(statsT0.Add(time.Minute))

	testCases := []struct {
		name    string
		id      string
		r       TimeRange
		wantErr error
		want    AggregatedStats
	}{
		{name: "unknown orchestrator", id: "nobody", r: Last(time.Minute),
			want: AggregatedStats{OrchestratorID: "nobody", Start: statsT0, End: statsT0.Add(time.Minute)}},
		{name: "end before start", id: "orch-a", r: TimeRange{Start: statsT0.Add(time.Second), End: statsT0},
			wantErr: ErrInvalidTimeRange},
		{name: "start after now, zero end", id: "orch-a", r: TimeRange{Start: statsT0.Add(time.Hour)},
			wantErr: ErrInvalidTimeRange},
		{name: "negative Last", id: "orch-a", r: Last(-time.Second), wantErr: ErrInvalidTimeRange},
		{name: "zero-length window", id: "orch-a", r: TimeRange{Start: statsT0.Add(time.Second), End: statsT0.Add(time.Second)},
			want: AggregatedStats{OrchestratorID: "orch-a", Start: statsT0, End: statsT0}},
		{name: "future window", id: "orch-a", r: TimeRange{Start: statsT0, End: statsT0.Add(time.Hour)},
			want: AggregatedStats{OrchestratorID: "orch-a", Start: statsT0, End: statsT0.Add(time.Minute), TotalTokens: 10,
				TokensByModel: map[string]int64{"m": 10}}},
		{name: "empty orchestrator ID", id: "", r: Last(time.Minute), wantErr: ErrInvalidLabel},
		{name: "invalid UTF-8 orchestrator ID", id: "\xff", r: Last(time.Minute), wantErr: ErrInvalidLabel},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.AggregatedStats(ctx, tc.id, tc.r)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if n := c.Rejected(); n != 0 {
		t.Errorf("Rejected() = %d: a bad query is not a rejected record", n)
	}

	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AggregatedStats(ctx, "orch-a", Last(time.Minute)); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: err = %v, want ErrClosed", err)
	}
}

func TestStatsOptions(t *testing.T) {
	testCases := []struct {
		name string
		opts []Option
		ok   bool
	}{
		{"defaults", nil, true},
		{"resolution and retention", []Option{WithStatsResolution(time.Second), WithStatsRetention(time.Minute)}, true},
		{"retention equal to resolution", []Option{WithStatsResolution(time.Minute), WithStatsRetention(time.Minute)}, true},
		{"zero resolution", []Option{WithStatsResolution(0)}, false},
		{"negative resolution", []Option{WithStatsResolution(-time.Second)}, false},
		{"resolution below the minimum", []Option{WithStatsResolution(time.Microsecond)}, false},
		{"zero retention", []Option{WithStatsRetention(0)}, false},
		{"retention shorter than resolution", []Option{WithStatsRetention(time.Second)}, false},
		{"retention shorter than resolution, other order", []Option{WithStatsRetention(time.Second), WithStatsResolution(time.Minute)}, false},
		{"too many steps", []Option{WithStatsResolution(time.Millisecond), WithStatsRetention(time.Hour)}, false},
		{"default tiers", []Option{WithStatsTiers(DefaultStatsTiers()...)}, true},
		{"one tier", []Option{WithStatsTiers(StatsTier{Step: time.Second, Retention: time.Minute})}, true},
		{"two tiers", []Option{WithStatsTiers(StatsTier{time.Second, time.Minute}, StatsTier{time.Minute, 7 * 24 * time.Hour})}, true},
		{"no tier", []Option{WithStatsTiers()}, false},
		{"tier step below the minimum", []Option{WithStatsTiers(StatsTier{time.Microsecond, time.Second})}, false},
		{"tier step not a multiple", []Option{WithStatsTiers(StatsTier{10 * time.Second, time.Hour}, StatsTier{15 * time.Second, time.Hour})}, false},
		{"tier retention shorter than the finer one", []Option{WithStatsTiers(StatsTier{10 * time.Second, time.Hour}, StatsTier{time.Minute, time.Minute})}, false},
		{"tier retention shorter than its step", []Option{WithStatsTiers(StatsTier{time.Minute, time.Second})}, false},
		{"tiers and resolution", []Option{WithStatsTiers(DefaultStatsTiers()...), WithStatsResolution(time.Second)}, false},
		{"retention and tiers", []Option{WithStatsRetention(time.Hour), WithStatsTiers(DefaultStatsTiers()...)}, false},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(context.Background(), tc.opts...)
			if tc.ok != (err == nil) {
				t.Fatalf("New: err = %v, want ok %v", err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidOption) {
					t.Errorf("err = %v, want ErrInvalidOption", err)
				}
				return
			}
			if err := c.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStatsSamplerTicks runs the real ticker at a short resolution and
// waits for it to have sampled, then checks Close stops it.
func TestStatsSamplerTicks(t *testing.T) {
	ctx := context.Background()
	c, err := New(ctx, WithStatsResolution(5*time.Millisecond), WithStatsRetention(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RecordError(ctx, "orch-a", "e"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.stats.store.Samples() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the sampler took no samples")
		}
		time.Sleep(time.Millisecond)
	}
	// Errors recorded before the samples are in a window ending at the
	// latest one, without a collection at the call.
	st, err := c.AggregatedStats(ctx, "orch-a", TimeRange{End: time.Now().Add(-time.Nanosecond)})
	if err != nil || st.Errors != 1 {
		t.Errorf("Errors = %d, err %v; want 1", st.Errors, err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.stats.done:
	default:
		t.Error("sampler goroutine still running after Close")
	}
}

// TestAggregatedStatsConcurrentSafe records from many goroutines while
// others ask for stats and the sampler samples. Every result must be
// consistent in itself: totals equal the sums of their breakdowns, the
// rates are computed from the returned counts, active sessions stay within
// what the workers can hold open; totals of the whole run never go down,
// and once the workers stop they are exact. (The cells are read one
// after another, so a record made during a sample or a query may be in one
// series' counts and not yet in another's; it is in both at the next.)
func TestAggregatedStatsConcurrentSafe(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: statsT0}
	tick := make(chan time.Time)
	c := newStatsCollector(t, clk, withStatsClock(clk.now, tick), WithStatsResolution(time.Second))
	const workers, rounds = 8, 300
	var wg, readers sync.WaitGroup
	var stop atomic.Bool
	for w := range workers {
		wg.Go(func() {
			id := fmt.Sprintf("orch-%d", w%2)
			for range rounds {
				_ = c.RecordTokenUsage(ctx, id, gtModels[w%3], 10)
				_ = c.RecordMessageLatency(ctx, id, time.Duration(w+1)*time.Millisecond)
				_ = c.RecordToolInvocation(ctx, id, "bash", ToolError)
				_ = c.RecordError(ctx, id, "e")
				_ = c.RecordSessionStart(ctx, id, "s")
				_ = c.RecordSessionEnd(ctx, id, "s")
			}
		})
	}
	readers.Go(func() { // the sampler, driven fast
		for i := 1; !stop.Load(); i++ {
			clk.set(statsT0.Add(time.Duration(i) * time.Second))
			tick <- time.Time{}
		}
	})
	for range 2 {
		readers.Go(func() {
			var last AggregatedStats
			for !stop.Load() {
				for _, r := range []TimeRange{{}, Last(2 * time.Second)} {
					st, err := c.AggregatedStats(ctx, "orch-0", r)
					if err != nil {
						t.Error(err)
						return
					}
					var byModel, byTool, byType int64
					for _, n := range st.TokensByModel {
						byModel += n
					}
					for _, n := range st.ToolCallsByTool {
						byTool += n
					}
					for _, n := range st.ErrorsByType {
						byType += n
					}
					if byModel != st.TotalTokens || byTool != st.ToolInvocations || byType != st.Errors ||
						st.SuccessfulToolCalls+st.FailedToolCalls != st.ToolInvocations || st.End.Before(st.Start) ||
						st.ActiveSessions < 0 || st.ActiveSessions > workers/2 || st.SessionsEnded > st.SessionsStarted+workers/2 {
						t.Errorf("inconsistent stats: %+v", st)
					}
					if d := st.Messages + st.ToolInvocations; d > 0 && st.ErrorRate != float64(st.Errors)/float64(d) ||
						st.ToolInvocations > 0 && st.ToolFailureRate != float64(st.FailedToolCalls)/float64(st.ToolInvocations) {
						t.Errorf("rates not from the returned counts: %+v", st)
					}
					if r == (TimeRange{}) {
						if st.Messages < last.Messages || st.TotalTokens < last.TotalTokens || st.Errors < last.Errors {
							t.Errorf("totals went down: %+v after %+v", st, last)
						}
						last = st
					}
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	readers.Wait()

	st, err := c.AggregatedStats(ctx, "orch-0", TimeRange{})
	if err != nil {
		t.Fatal(err)
	}
	const n = workers / 2 * rounds
	if st.Messages != n || st.ToolInvocations != n || st.Errors != n || st.TotalTokens != 10*n ||
		st.SessionsStarted != n || st.SessionsEnded != n || st.ActiveSessions != 0 || st.ErrorRate != 0.5 {
		t.Errorf("final stats %+v, want %d of each", st, n)
	}
	if got := slices.Sorted(maps.Keys(st.TokensByModel)); len(got) != 3 {
		t.Errorf("models %v, want 3", got)
	}
}

// TestAggregatedStatsNowSeesReturnedRecordsConcurrentSafe: a window ending
// now counts every record that returned before the call, in both counter
// modes, while other goroutines record, the sampler runs and other
// queries run: each recorder publishes how many of its records have
// returned, and a query must count at least that many.
func TestAggregatedStatsNowSeesReturnedRecordsConcurrentSafe(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{{"synchronous", nil}, {"atomic", []Option{WithAtomicCounters()}}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			clk := &fakeClock{t: statsT0}
			tick := make(chan time.Time)
			c := newStatsCollector(t, clk, append([]Option{withStatsClock(clk.now, tick), WithStatsResolution(time.Second)}, mode.opts...)...)
			const recorders, rounds = 3, 2000
			var returned [recorders]atomic.Int64
			var wg, readers sync.WaitGroup
			var stop atomic.Bool
			for w := range recorders {
				wg.Go(func() {
					for range rounds {
						if err := c.RecordTokenUsage(ctx, "orch-0", gtModels[w], 1); err != nil {
							t.Error(err)
							return
						}
						if err := c.RecordMessageLatency(ctx, "orch-0", time.Millisecond); err != nil {
							t.Error(err)
							return
						}
						if err := c.RecordSessionStart(ctx, "orch-0", gtSessionTypes[w%2]); err != nil {
							t.Error(err)
							return
						}
						returned[w].Add(1)
					}
				})
			}
			readers.Go(func() {
				for i := 1; !stop.Load(); i++ {
					clk.set(statsT0.Add(time.Duration(i) * time.Second))
					tick <- time.Time{}
				}
			})
			for range 2 {
				readers.Go(func() {
					for !stop.Load() {
						var before int64
						for w := range recorders {
							before += returned[w].Load()
						}
						st, err := c.AggregatedStats(ctx, "orch-0", TimeRange{})
						if err != nil {
							t.Error(err)
							return
						}
						if st.TotalTokens < before || st.Messages < before || st.SessionsStarted < before || st.ActiveSessions < before {
							t.Errorf("%d records had returned before the call; stats count %d tokens, %d messages, %d starts, %d active",
								before, st.TotalTokens, st.Messages, st.SessionsStarted, st.ActiveSessions)
							return
						}
					}
				})
			}
			wg.Wait()
			stop.Store(true)
			readers.Wait()
			st, err := c.AggregatedStats(ctx, "orch-0", TimeRange{})
			if err != nil {
				t.Fatal(err)
			}
			const n = recorders * rounds
			if st.TotalTokens != n || st.Messages != n || st.SessionsStarted != n || st.ActiveSessions != n {
				t.Errorf("final stats %+v, want %d of each", st, n)
			}
		})
	}
}
