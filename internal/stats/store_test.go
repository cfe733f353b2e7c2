package stats

import (
	"context"
	"errors"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

var ctx = context.Background()

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// fakeSource returns a collection the test writes.
type fakeSource struct {
	sums  map[string][]metricdata.DataPoint[int64]
	hists map[string][]metricdata.HistogramDataPoint[int64]
	expo  []metricdata.ExponentialHistogramDataPoint[float64]
	err   error
}

func (f *fakeSource) Collect(_ context.Context, rm *metricdata.ResourceMetrics) error {
	if f.err != nil {
		return f.err
	}
	sm := metricdata.ScopeMetrics{Scope: instrumentation.Scope{Name: schema.MeterName}}
	for name, dps := range f.sums {
		sm.Metrics = append(sm.Metrics, metricdata.Metrics{Name: name, Data: metricdata.Sum[int64]{DataPoints: dps, IsMonotonic: true}})
	}
	for name, dps := range f.hists {
		sm.Metrics = append(sm.Metrics, metricdata.Metrics{Name: name, Data: metricdata.Histogram[int64]{DataPoints: dps}})
	}
	sm.Metrics = append(sm.Metrics, metricdata.Metrics{Name: schema.MessageLatency,
		Data: metricdata.ExponentialHistogram[float64]{DataPoints: f.expo}})
	// Another scope with the same names must be ignored.
	other := metricdata.ScopeMetrics{Scope: instrumentation.Scope{Name: "other"}, Metrics: sm.Metrics}
	rm.ScopeMetrics = []metricdata.ScopeMetrics{other, sm}
	return nil
}

func set(kv ...string) attribute.Set {
	var kvs []attribute.KeyValue
	for i := 0; i < len(kv); i += 2 {
		kvs = append(kvs, attribute.String(kv[i], kv[i+1]))
	}
	return attribute.NewSet(kvs...)
}

func tokens(orch, model string, n int64) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Attributes: set(schema.KeyOrchestratorID, orch, schema.KeyModel, model), Value: n}
}

func sessions(orch string, starts, ends uint64) metricdata.HistogramDataPoint[int64] {
	return metricdata.HistogramDataPoint[int64]{
		Attributes: set(schema.KeyOrchestratorID, orch, schema.KeySessionType, "t"),
		Bounds:     []float64{0}, BucketCounts: []uint64{ends, starts}, Count: starts + ends,
	}
}

// TestRemovedAndOverflowSeries: a series that disappears (Forget*, or the
// SDK dropping it) and comes back, a counter that goes down and the overflow
// series never give negative counts.
func TestRemovedAndOverflowSeries(t *testing.T) {
	clk := &fakeClock{t: t0}
	src := &fakeSource{}
	s := New(src, time.Second, time.Hour, clk.now)
	step := func(i int, sums []metricdata.DataPoint[int64], sess []metricdata.HistogramDataPoint[int64]) {
		t.Helper()
		src.sums = map[string][]metricdata.DataPoint[int64]{schema.TokensUsed: sums}
		src.hists = map[string][]metricdata.HistogramDataPoint[int64]{schema.SessionsActive: sess}
		clk.set(t0.Add(time.Duration(i) * time.Second))
		if err := s.Sample(ctx); err != nil {
			t.Fatal(err)
		}
	}
	overflow := metricdata.DataPoint[int64]{Attributes: set("otel.metric.overflow", "true"), Value: 1000}
	step(1, []metricdata.DataPoint[int64]{tokens("a", "m", 10), overflow}, []metricdata.HistogramDataPoint[int64]{sessions("a", 3, 1)})
	step(2, nil, nil)                                                          // both series removed
	step(3, []metricdata.DataPoint[int64]{tokens("a", "m", 4)}, nil)           // back from zero
	step(4, []metricdata.DataPoint[int64]{tokens("a", "m", 2)}, nil)           // went down: restarted
	step(5, []metricdata.DataPoint[int64]{tokens("a", "m", 2), overflow}, nil) // unchanged

	testCases := []struct {
		name            string
		from, to        int
		tokens, started int64
		active          int64
	}{
		{"whole", 0, 5, 16, 3, 0},
		{"first step", 0, 1, 10, 3, 2},
		{"removal step", 1, 2, 0, 0, 0},
		{"comes back", 2, 3, 4, 0, 0},
		{"restart", 3, 4, 2, 0, 0},
		{"unchanged", 4, 5, 0, 0, 0},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := s.Query(ctx, "a", Range{Start: t0.Add(time.Duration(tc.from) * time.Second), End: t0.Add(time.Duration(tc.to) * time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			if st.TotalTokens != tc.tokens || st.SessionsStarted != tc.started || st.ActiveSessions != tc.active {
				t.Errorf("tokens %d started %d active %d, want %d %d %d", st.TotalTokens, st.SessionsStarted, st.ActiveSessions, tc.tokens, tc.started, tc.active)
			}
			if st.TotalTokens < 0 || st.SessionsEnded < 0 {
				t.Errorf("negative counts: %+v", st)
			}
		})
	}
}

// instruments are the instruments of a Collector, on a provider whose only
// reader is NewReader's.
type instruments struct {
	mp          *sdkmetric.MeterProvider
	sessions    metric.Int64UpDownCounter
	tokens      metric.Int64Counter
	tools       metric.Int64Counter
	delegations metric.Int64Counter
	errs        metric.Int64Counter
	latency     metric.Float64Histogram
}

func newInstruments(t *testing.T, r sdkmetric.Reader) *instruments {
	t.Helper()
	in := &instruments{mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))}
	t.Cleanup(func() { _ = in.mp.Shutdown(ctx) })
	m := in.mp.Meter(schema.MeterName)
	var err, e error
	in.sessions, e = m.Int64UpDownCounter(schema.SessionsActive)
	err = errors.Join(err, e)
	in.tokens, e = m.Int64Counter(schema.TokensUsed)
	err = errors.Join(err, e)
	in.tools, e = m.Int64Counter(schema.ToolInvocations)
	err = errors.Join(err, e)
	in.delegations, e = m.Int64Counter(schema.Delegations)
	err = errors.Join(err, e)
	in.errs, e = m.Int64Counter(schema.Errors)
	err = errors.Join(err, e)
	in.latency, e = m.Float64Histogram(schema.MessageLatency, metric.WithExplicitBucketBoundaries(1, 2))
	err = errors.Join(err, e)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func attrs(kv ...string) metric.MeasurementOption {
	s := set(kv...)
	return metric.WithAttributeSet(s)
}

// TestStoreSDK records through real SDK instruments and checks every field
// of a few windows, including a window ending now.
func TestStoreSDK(t *testing.T) {
	r := NewReader()
	in := newInstruments(t, r)
	clk := &fakeClock{t: t0}
	s := New(r, 10*time.Second, time.Minute, clk.now)
	sample := func(at time.Duration) {
		t.Helper()
		clk.set(t0.Add(at))
		if err := s.Sample(ctx); err != nil {
			t.Fatal(err)
		}
	}
	id := schema.KeyOrchestratorID
	a, b := attrs(id, "a"), attrs(id, "b")
	sessA := attrs(id, "a", schema.KeySessionType, "x")

	// Step 1: two sessions start, one ends; tokens; latencies; tools.
	in.sessions.Add(ctx, 1, sessA)
	in.sessions.Add(ctx, 1, sessA)
	in.sessions.Add(ctx, -1, sessA)
	in.tokens.Add(ctx, 100, attrs(id, "a", schema.KeyModel, "m1"))
	in.tokens.Add(ctx, 5, attrs(id, "b", schema.KeyModel, "m1"))
	for _, v := range []float64{0.1, 0.2, 0.3, 0} {
		in.latency.Record(ctx, v, a)
	}
	in.latency.Record(ctx, 9, b)
	in.tools.Add(ctx, 3, attrs(id, "a", schema.KeyToolName, "bash", schema.KeyStatus, "success"))
	in.tools.Add(ctx, 1, attrs(id, "a", schema.KeyToolName, "bash", schema.KeyStatus, "timeout"))
	in.tools.Add(ctx, 1, attrs(id, "a", schema.KeyToolName, "edit", schema.KeyStatus, "error"))
	sample(10 * time.Second)

	// Step 2: delegations both ways and to itself, errors, more tokens.
	in.delegations.Add(ctx, 2, attrs(schema.KeyFromOrchestrator, "a", schema.KeyToOrchestrator, "b", schema.KeyStatus, "success"))
	in.delegations.Add(ctx, 1, attrs(schema.KeyFromOrchestrator, "b", schema.KeyToOrchestrator, "a", schema.KeyStatus, "error"))
	in.delegations.Add(ctx, 1, attrs(schema.KeyFromOrchestrator, "a", schema.KeyToOrchestrator, "a", schema.KeyStatus, "success"))
	in.errs.Add(ctx, 2, attrs(id, "a", schema.KeyErrorType, "timeout"))
	in.tokens.Add(ctx, 50, attrs(id, "a", schema.KeyModel, "m2"))
	sample(20 * time.Second)

	// After the last sample, not yet sampled: one session end and a latency.
	in.sessions.Add(ctx, -1, sessA)
	in.latency.Record(ctx, 0.4, a)
	clk.set(t0.Add(25 * time.Second))

	step1 := Stats{
		OrchestratorID: "a", Start: t0, End: t0.Add(10 * time.Second),
		ActiveSessions: 1, SessionsStarted: 2, SessionsEnded: 1,
		TotalTokens: 100, TokensByModel: map[string]int64{"m1": 100},
		Messages: 4, AvgLatency: 150 * time.Millisecond,
		ToolInvocations: 5, SuccessfulToolCalls: 3, FailedToolCalls: 2,
		ToolCallsByTool: map[string]int64{"bash": 4, "edit": 1},
		ErrorRate:       0, ToolFailureRate: 0.4,
	}
	step2 := Stats{
		OrchestratorID: "a", Start: t0.Add(10 * time.Second), End: t0.Add(20 * time.Second),
		ActiveSessions: 1,
		TotalTokens:    50, TokensByModel: map[string]int64{"m2": 50},
		Errors: 2, ErrorsByType: map[string]int64{"timeout": 2},
		DelegationsOut: 3, DelegationsIn: 2,
	}
	step2.ErrorRate = math.Inf(1) // Errors with no messages or tools: see below
	testCases := []struct {
		name string
		r    Range
		want Stats
	}{
		{"first step", Range{Start: t0, End: t0.Add(10 * time.Second)}, step1},
		{"first step, bounds inside the step", Range{Start: t0.Add(time.Second), End: t0.Add(19 * time.Second)}, step1},
		{"second step", Range{Start: t0.Add(10 * time.Second), End: t0.Add(20 * time.Second)}, step2},
		{"empty window", Range{Start: t0.Add(12 * time.Second), End: t0.Add(12 * time.Second)},
			Stats{OrchestratorID: "a", Start: t0.Add(10 * time.Second), End: t0.Add(10 * time.Second), ActiveSessions: 1}},
		{"since the last sample, ending now", Range{Last: 5 * time.Second, Relative: true},
			Stats{OrchestratorID: "a", Start: t0.Add(20 * time.Second), End: t0.Add(25 * time.Second),
				SessionsEnded: 1, Messages: 1, AvgLatency: 400 * time.Millisecond}},
		{"empty window now", Range{Relative: true},
			Stats{OrchestratorID: "a", Start: t0.Add(25 * time.Second), End: t0.Add(25 * time.Second)}},
		{"unknown orchestrator", Range{Start: t0, End: t0.Add(20 * time.Second)},
			Stats{OrchestratorID: "zz", Start: t0, End: t0.Add(20 * time.Second)}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.want.OrchestratorID
			got, err := s.Query(ctx, id, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if math.IsInf(tc.want.ErrorRate, 1) {
				// 2 errors, no messages, no tools: the rate's
				// denominator is 0, so the rate is 0.
				tc.want.ErrorRate = 0
			}
			// Percentiles are checked elsewhere; here their order.
			if !(got.P50Latency <= got.P95Latency && got.P95Latency <= got.P99Latency) {
				t.Errorf("percentiles out of order: %v %v %v", got.P50Latency, got.P95Latency, got.P99Latency)
			}
			got.P50Latency, got.P95Latency, got.P99Latency = 0, 0, 0
			// a's latencies of the first step, 0.1 s to 0.3 s, span two
			// octaves: in 640 buckets the SDK keeps scale 8, 0.27 % wide
			// buckets.
			wantErr := 0.0
			switch tc.want.Messages {
			case 0:
			case 1:
				// A lone value in the step's delta histogram: the
				// finest scale.
				wantErr = RelativeError(20)
			default:
				wantErr = RelativeError(8)
			}
			if got.LatencyRelativeError != wantErr {
				t.Errorf("LatencyRelativeError = %v, want %v", got.LatencyRelativeError, wantErr)
			}
			got.LatencyRelativeError = 0
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}

	whole, err := s.Query(ctx, "a", Range{})
	if err != nil {
		t.Fatal(err)
	}
	if whole.Messages != 5 || whole.ActiveSessions != 0 || whole.SessionsEnded != 2 || whole.TotalTokens != 150 {
		t.Errorf("whole run: %+v", whole)
	}
	if p50 := whole.P50Latency; p50 < 195*time.Millisecond || p50 > 205*time.Millisecond {
		t.Errorf("whole run p50 = %v, want 200ms within 2.5%%", p50)
	}
	if want := float64(2) / float64(5+5); whole.ErrorRate != want {
		t.Errorf("ErrorRate = %v, want %v", whole.ErrorRate, want)
	}

	if _, err := s.Query(ctx, "a", Range{Start: t0.Add(time.Hour)}); !errors.Is(err, ErrInvalidRange) {
		t.Errorf("start after now: err = %v, want ErrInvalidRange", err)
	}
}

// TestRetention checks eviction: windows older than the retention are
// truncated, the active sessions of evicted frames are kept, and frames and
// samples stay bounded.
func TestRetention(t *testing.T) {
	r := NewReader()
	in := newInstruments(t, r)
	clk := &fakeClock{t: t0}
	s := New(r, time.Second, 5*time.Second, clk.now)
	sess := attrs(schema.KeyOrchestratorID, "a", schema.KeySessionType, "x")
	tok := attrs(schema.KeyOrchestratorID, "a", schema.KeyModel, "m")
	in.sessions.Add(ctx, 1, sess)
	for i := 1; i <= 20; i++ {
		in.tokens.Add(ctx, int64(i), tok)
		clk.set(t0.Add(time.Duration(i) * time.Second))
		if err := s.Sample(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Samples(); n != 6 {
		t.Errorf("samples = %d, want 6 (5 steps)", n)
	}
	if n := s.orchs["a"].tiers[0].frames.len(); n != 5 {
		t.Errorf("frames = %d, want 5", n)
	}
	testCases := []struct {
		name      string
		r         Range
		tokens    int64
		start     time.Time
		truncated bool
		active    int64
	}{
		{"all retained", Range{Start: t0.Add(15 * time.Second), End: t0.Add(20 * time.Second)}, 16 + 17 + 18 + 19 + 20, t0.Add(15 * time.Second), false, 1},
		{"older than retention", Range{Start: t0, End: t0.Add(17 * time.Second)}, 16 + 17, t0.Add(15 * time.Second), true, 1},
		{"zero start", Range{}, 16 + 17 + 18 + 19 + 20, t0.Add(15 * time.Second), true, 1},
		{"entirely older", Range{Start: t0, End: t0.Add(3 * time.Second)}, 0, t0.Add(3 * time.Second), true, 0},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := s.Query(ctx, "a", tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if st.TotalTokens != tc.tokens || !st.Start.Equal(tc.start) || st.Truncated != tc.truncated || st.ActiveSessions != tc.active {
				t.Errorf("tokens %d start %v truncated %v active %d, want %d %v %v %d",
					st.TotalTokens, st.Start, st.Truncated, st.ActiveSessions, tc.tokens, tc.start, tc.truncated, tc.active)
			}
		})
	}
}

func TestSampleErrorAndClose(t *testing.T) {
	clk := &fakeClock{t: t0}
	src := &fakeSource{err: errors.New("boom")}
	s := New(src, time.Second, time.Minute, clk.now)
	if err := s.Sample(ctx); err == nil || s.Samples() != 1 {
		t.Errorf("Sample with a failing source: err %v, samples %d; want an error and 1", err, s.Samples())
	}
	if _, err := s.Query(ctx, "a", Range{Relative: true, Last: time.Second}); err == nil {
		t.Error("Query ending now with a failing source: no error")
	}
	clk.set(t0.Add(time.Minute))
	if _, err := s.Query(ctx, "a", Range{Start: t0, End: t0.Add(time.Second)}); err != nil {
		t.Errorf("Query in the past with a failing source: %v", err)
	}
	s.Close()
	if err := s.Sample(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Sample after Close: %v", err)
	}
	if _, err := s.Query(ctx, "a", Range{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Query after Close: %v", err)
	}
}

// TestClockBackwards: a sample taken at an earlier time than the previous
// one is placed at the previous one's time, so samples stay sorted.
func TestClockBackwards(t *testing.T) {
	clk := &fakeClock{t: t0.Add(time.Minute)}
	s := New(&fakeSource{}, time.Second, time.Hour, clk.now)
	clk.set(t0)
	if err := s.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.tiers[0].samples.at(1).t; !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("sample time %v, want %v", got, t0.Add(time.Minute))
	}
}

// TestNoExemplarsView: the in-memory reader's histograms keep no
// exemplars, while another reader's streams keep theirs.
func TestNoExemplarsView(t *testing.T) {
	statsRdr, other := NewReader(), sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(statsRdr), sdkmetric.WithReader(other), NoExemplarsView())
	t.Cleanup(func() { _ = mp.Shutdown(ctx) })
	m := mp.Meter(schema.MeterName)
	lat, err := m.Float64Histogram(schema.MessageLatency, metric.WithExplicitBucketBoundaries(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	sess, err := m.Int64UpDownCounter(schema.SessionsActive)
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled,
	})
	sctx := trace.ContextWithSpanContext(ctx, sc)
	lat.Record(sctx, 1.5, attrs(schema.KeyOrchestratorID, "a"))
	sess.Add(sctx, 1, attrs(schema.KeyOrchestratorID, "a"))

	exemplars := func(r sdkmetric.Reader) map[string]int {
		var rm metricdata.ResourceMetrics
		if err := r.(interface {
			Collect(context.Context, *metricdata.ResourceMetrics) error
		}).Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Histogram[float64]:
					n[m.Name] = len(d.DataPoints[0].Exemplars)
				case metricdata.ExponentialHistogram[float64]:
					n[m.Name] = len(d.DataPoints[0].Exemplars)
				case metricdata.Histogram[int64]:
					n[m.Name] = len(d.DataPoints[0].Exemplars)
				case metricdata.Sum[int64]:
					n[m.Name] = len(d.DataPoints[0].Exemplars)
				}
			}
		}
		return n
	}
	if got := exemplars(statsRdr); got[schema.MessageLatency] != 0 || got[schema.SessionsActive] != 0 {
		t.Errorf("in-memory reader exemplars = %v, want none", got)
	}
	if got := exemplars(other); got[schema.MessageLatency] != 1 || got[schema.SessionsActive] != 1 {
		t.Errorf("other reader exemplars = %v, want one per stream", got)
	}
}

// blockingSource counts collections and holds each one until released.
type blockingSource struct {
	fakeSource
	mu      sync.Mutex
	n       int
	started chan struct{}
	release chan struct{}
}

func (b *blockingSource) Collect(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	b.mu.Lock()
	b.n++
	b.mu.Unlock()
	b.started <- struct{}{}
	<-b.release
	return b.fakeSource.Collect(ctx, rm)
}

// TestQueryNowSharesCollections: queries ending now that arrive while a
// collection runs do not each collect; they share the next collection,
// which starts after they arrived (so each still sees every record made
// before its call): 1 + 1 collections for 1 + 5 callers.
func TestQueryNowSharesCollections(t *testing.T) {
	clk := &fakeClock{t: t0}
	src := &blockingSource{started: make(chan struct{}, 16), release: make(chan struct{})}
	s := New(src, time.Second, time.Minute, clk.now)
	var wg sync.WaitGroup
	query := func() {
		defer wg.Done()
		if _, err := s.Query(ctx, "a", Range{Relative: true, Last: time.Second}); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go query()
	<-src.started // the first collection runs and is held
	for range 5 {
		wg.Add(1)
		go query()
	}
	// Wait until the five have queued behind the running collection.
	for queued := 0; queued < 5; {
		time.Sleep(time.Millisecond)
		s.fmu.Lock()
		queued = s.queuedCallers
		s.fmu.Unlock()
	}
	src.mu.Lock()
	if src.n != 1 {
		t.Errorf("%d collections while the first is held, want 1", src.n)
	}
	src.mu.Unlock()
	close(src.release)
	wg.Wait()
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.n != 2 {
		t.Errorf("%d collections for 6 concurrent queries, want 2", src.n)
	}
}
