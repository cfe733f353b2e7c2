package fleet_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/enginepeer"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/fleet"
)

// history is generated fleet history: per series, cumulative samples, and
// the increments the generator added at each sample (the ground truth).
type history struct {
	start, end time.Time
	step       time.Duration
	orchs      []string
	// inc[orch][field][i] is what orch added to a field in (t_{i-1}, t_i]
	// over all daemons; fields: tokens, messages, tools, errors, and
	// "le=<b>" per classic bucket.
	inc map[string]map[string][]int64
}

type histSpec struct {
	orchs, daemons int
	detailed       int // the first `detailed` orchestrators also get latency, tools, errors
	step           time.Duration
	start, end     time.Time
	seed           uint64
	// maxBlock, when not zero, is promtool's --max-block-duration: fewer,
	// longer blocks (the default writes one per 2 h that holds samples).
	maxBlock time.Duration
	// extra is OpenMetrics text written after the generated history.
	extra string
}

// genHistory writes OpenMetrics text of the fleet's history to path: each
// daemon restarts about once a week (a gap of two samples, then counters
// from zero), and the increments are kept as ground truth.
func genHistory(t testing.TB, path string, sp histSpec) *history {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	n := int(sp.end.Sub(sp.start)/sp.step) + 1
	h := &history{start: sp.start, end: sp.end, step: sp.step, inc: map[string]map[string][]int64{}}
	for o := range sp.orchs {
		id := fmt.Sprintf("orch-%04d", o)
		h.orchs = append(h.orchs, id)
		h.inc[id] = map[string][]int64{}
	}
	field := func(id, name string) []int64 {
		s := h.inc[id][name]
		if s == nil {
			s = make([]int64, n)
			h.inc[id][name] = s
		}
		return s
	}
	ts := func(i int) string {
		return strconv.FormatInt(sp.start.Add(time.Duration(i)*sp.step).Unix(), 10)
	}
	rng := rand.New(rand.NewPCG(sp.seed, 7))
	// down[d][i]: daemon d has no sample at i; reset[d][i]: its counters
	// start from zero at i.
	down := make([][]bool, sp.daemons)
	reset := make([][]bool, sp.daemons)
	for d := range sp.daemons {
		down[d], reset[d] = make([]bool, n), make([]bool, n)
		for i := 1; i < n-3; i++ {
			if rng.Float64() < float64(sp.step)/float64(7*24*time.Hour) {
				down[d][i], down[d][i+1], reset[d][i+2] = true, true, true
				i += 3
			}
		}
	}
	// No TYPE lines: the series are untyped to promtool, which stores them
	// alike, and need not be grouped by family.
	counter := func(name, labels string, d int, incs func(i int) int64, truth []int64) {
		var v int64
		for i := range n {
			if down[d][i] {
				continue
			}
			x := incs(i)
			if reset[d][i] {
				// A restart must show as a drop: a counter back at or above
				// its old value by its first sample is, to any engine, a
				// counter that never restarted.
				if v > 0 {
					x = min(x, v-1)
				}
				v = 0
			}
			v += x
			if truth != nil {
				truth[i] += x
			}
			fmt.Fprintf(w, "%s{%s} %d %s\n", name, labels, v, ts(i))
		}
	}
	bounds := []float64{0.1, 0.5, 1, 2, 5, 10}
	for o, id := range h.orchs {
		for d := range sp.daemons {
			lbl := fmt.Sprintf(`job="orchestrator-daemon",instance="daemon-%03d",orchestrator_id=%q`, d, id)
			tok := field(id, "tokens")
			counter("orchestrator_tokens_used_total", lbl+`,model="claude-sonnet"`, d,
				func(int) int64 {
					if rng.IntN(3) == 0 {
						return 0
					}
					return rng.Int64N(2000)
				}, tok)
			if o >= sp.detailed {
				continue
			}
			counter("orchestrator_tool_invocations_total", lbl+`,tool_name="bash",status="success"`, d,
				func(int) int64 { return rng.Int64N(4) }, field(id, "tools"))
			counter("orchestrator_errors_total", lbl+`,error_type="timeout"`, d,
				func(int) int64 { return rng.Int64N(2) }, field(id, "errors"))
			// Latency: per sample, a few observations; the buckets, count
			// and sum are cumulative together.
			obs := make([][]float64, n)
			for i := range n {
				if reset[d][i] {
					continue // the restarted histogram starts at zero: a drop
				}
				for range rng.IntN(4) {
					obs[i] = append(obs[i], math.Exp(rng.NormFloat64()*1.0+math.Log(1.2)))
				}
			}
			var cum []int64
			var cnt int64
			var sum float64
			cum = make([]int64, len(bounds)+1)
			msg := field(id, "messages")
			for i := range n {
				if reset[d][i] {
					cum, cnt, sum = make([]int64, len(bounds)+1), 0, 0
				}
				if down[d][i] {
					continue
				}
				for _, x := range obs[i] {
					cnt++
					sum += x
					msg[i]++
					for b, ub := range append(bounds, math.Inf(1)) {
						if x <= ub {
							cum[b]++
							field(id, "le="+strconv.FormatFloat(ub, 'g', -1, 64))[i]++
						}
					}
				}
				for b, ub := range append(bounds, math.Inf(1)) {
					le := strconv.FormatFloat(ub, 'g', -1, 64)
					if math.IsInf(ub, 1) {
						le = "+Inf"
					}
					fmt.Fprintf(w, "orchestrator_message_latency_seconds_bucket{%s,le=%q} %d %s\n", lbl, le, cum[b], ts(i))
				}
				fmt.Fprintf(w, "orchestrator_message_latency_seconds_count{%s} %d %s\n", lbl, cnt, ts(i))
				fmt.Fprintf(w, "orchestrator_message_latency_seconds_sum{%s} %s %s\n", lbl, strconv.FormatFloat(sum, 'g', -1, 64), ts(i))
			}
		}
	}
	fmt.Fprint(w, sp.extra)
	fmt.Fprintln(w, "# EOF")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return h
}

// want is the ground truth of field over (s, e].
func (h *history) want(id, field string, s, e time.Time) int64 {
	var sum int64
	for i, x := range h.inc[id][field] {
		at := h.start.Add(time.Duration(i) * h.step)
		if at.After(s) && !at.After(e) {
			sum += x
		}
	}
	return sum
}

// backfill generates the history, turns it into TSDB blocks with promtool
// and starts a Prometheus on them (with the options o, if any: its
// DataDir is the backfill's).
func backfill(t testing.TB, sp histSpec, o ...enginepeer.Options) (*history, *enginepeer.Engine) {
	t.Helper()
	dir := t.TempDir()
	om := filepath.Join(dir, "history.om")
	h := genHistory(t, om, sp)
	data := filepath.Join(dir, "data")
	began := time.Now()
	args := []string{"tsdb", "create-blocks-from", "openmetrics", "--quiet"}
	if sp.maxBlock > 0 {
		args = append(args, fmt.Sprintf("--max-block-duration=%dh", sp.maxBlock/time.Hour))
	}
	out, err := testpeer.Promtool(t, nil, append(args, om, data)...)
	if err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	st, _ := os.Stat(om)
	t.Logf("backfill: %d orchestrators × %d daemons, %v at %v: %d MiB of OpenMetrics, promtool %v",
		sp.orchs, sp.daemons, sp.end.Sub(sp.start), sp.step, st.Size()>>20, time.Since(began).Round(time.Millisecond))
	_ = os.Remove(om)
	var opts enginepeer.Options
	if len(o) > 0 {
		opts = o[0]
	}
	opts.DataDir = data
	return h, enginepeer.StartPrometheus(t, opts)
}

// peakHeap runs f and samples the heap meanwhile; it returns the peak
// HeapAlloc above the level before f.
func peakHeap(f func()) (peak uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var max atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > base && m.HeapAlloc-base > max.Load() {
				max.Store(m.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	return max.Load()
}

// TestLongWindows backfills 30+ days of history (a sample every 6 h) for 100
// orchestrators on two daemons each, with daemon restarts about weekly,
// and checks Last(30 days) and the previous calendar month exactly
// against the generated ground truth. Latency and peak client heap are
// logged, not asserted.
func TestLongWindows(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: promtool backfill and Prometheus")
	}
	// Its own engines and daemons on ports of their own: it runs beside
	// the package's other end-to-end tests, which mostly wait on scrapes.
	t.Parallel()
	now := time.Now().UTC()
	thisMonth := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	prevMonth := thisMonth.AddDate(0, -1, 0)
	start := prevMonth.Add(-24 * time.Hour)
	if s := now.Add(-31 * 24 * time.Hour); s.Before(start) {
		start = s.Truncate(time.Hour)
	}
	end := now.Add(-10 * time.Minute).Truncate(time.Hour)
	// A sample every 6 h, in blocks of at most 7 days (5 or 6 blocks under
	// each window): by default promtool of Prometheus 2.42 writes one block
	// per 2 h that holds samples, and its time and the server's grow with
	// the number of blocks, not with the samples (about 130 blocks: 21
	// CPU-s for the test, promtool and Prometheus, against 9).
	sp := histSpec{orchs: 100, daemons: 2, detailed: 3, step: 6 * time.Hour, start: start.Truncate(6 * time.Hour), end: end.Truncate(6 * time.Hour), seed: 30, maxBlock: 7 * 24 * time.Hour}
	// orch-late: a latency histogram first seen inside the previous month,
	// every observation in (0.5 s, 1 s], its buckets 0.1 and 0.5 at 0.
	late, lateAt := lateHistogram(prevMonth.Add(10 * 24 * time.Hour))
	sp.extra = late
	h, prom := backfill(t, sp)
	c := newClient(t, prom.URL, fleet.WithSelector(`job="orchestrator-daemon"`))
	// The same windows through the grid: these windows hold few enough
	// samples to be read raw by default.
	grid := newClient(t, prom.URL, fleet.WithSelector(`job="orchestrator-daemon"`), fleet.WithWholeBudget(0))
	// Through the grid of last/min/resets, its zooms sized from the window's
	// sample counts (the path of windows of more than 250,000 samples).
	counted := newClient(t, prom.URL, fleet.WithSelector(`job="orchestrator-daemon"`), fleet.WithWholeBudget(1))
	// Raw, in queries of at most 100 samples: instances grouped, and an
	// instance with more read in consecutive time slices.
	chunked := newClient(t, prom.URL, fleet.WithSelector(`job="orchestrator-daemon"`), fleet.WithChunkBudget(100))
	// Raw, the optimistic read over its limit (abandoned; the baseline read
	// after the count), and without the optimistic read (the baseline
	// beside the count).
	capped := newClient(t, prom.URL, fleet.WithSelector(`job="orchestrator-daemon"`), fleet.WithOptimisticLimit(1024))
	counted1st := newClient(t, prom.URL, fleet.WithSelector(`job="orchestrator-daemon"`), fleet.WithOptimisticLimit(0))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	windows := []struct {
		name string
		r    func() (otelcollector.TimeRange, time.Time, time.Time)
	}{
		{"Last(30d)", func() (otelcollector.TimeRange, time.Time, time.Time) {
			n := time.Now()
			return otelcollector.Last(30 * 24 * time.Hour), n.Add(-30 * 24 * time.Hour), n
		}},
		{"calendar month " + prevMonth.Format("2006-01"), func() (otelcollector.TimeRange, time.Time, time.Time) {
			return otelcollector.TimeRange{Start: prevMonth, End: thisMonth}, prevMonth, thisMonth
		}},
	}
	for _, w := range windows {
		for _, id := range []string{"orch-0000", "orch-0001", "orch-0002", "orch-0050", "orch-0099"} {
			for path, c := range map[string]*fleet.Client{"raw": c, "grid": grid, "grid sized by counts": counted, "raw in slices": chunked, "raw, optimistic read over its limit": capped, "raw, no optimistic read": counted1st} {
				r, s, e := w.r()
				var got otelcollector.AggregatedStats
				var err error
				began := time.Now()
				peak := peakHeap(func() { got, err = c.AggregatedStats(ctx, id, r) })
				took := time.Since(began)
				if err != nil {
					t.Fatalf("%s %s (%s): %v", w.name, id, path, err)
				}
				t.Logf("%s %s (%s): %v, peak client heap %.1f MiB", w.name, id, path, took.Round(time.Millisecond), float64(peak)/(1<<20))
				if got.Truncated {
					t.Errorf("%s %s (%s): Truncated, but the engine keeps 400 days", w.name, id, path)
				}
				// Last's own clock differs from s, e by microseconds; the
				// samples are on whole hours, far from either edge.
				check := func(name string, got int64, field string) {
					if want := h.want(id, field, s, e); got != want {
						t.Errorf("%s %s (%s): %s = %d, want %d", w.name, id, path, name, got, want)
					}
				}
				check("TotalTokens", got.TotalTokens, "tokens")
				check("Messages", got.Messages, "messages")
				check("ToolInvocations", got.ToolInvocations, "tools")
				check("Errors", got.Errors, "errors")
				if got.Messages > 0 {
					// The estimate lies in the bucket holding the true rank.
					les := []string{"0.1", "0.5", "1", "2", "5", "10", "+Inf"}
					rank := int64(math.Ceil(0.95 * float64(got.Messages)))
					lo := 0.0
					for _, le := range les {
						hi := math.Inf(1)
						if le != "+Inf" {
							hi, _ = strconv.ParseFloat(le, 64)
						}
						n := h.want(id, "le="+strconv.FormatFloat(hi, 'g', -1, 64), s, e)
						if n >= rank {
							if p := got.P95Latency.Seconds(); p < lo-1e-9 || p > hi+1e-9 {
								t.Errorf("%s %s (%s): P95 %v not in (%v, %v]", w.name, id, path, got.P95Latency, lo, hi)
							}
							break
						}
						lo = hi
					}
				}
			}
		}
	}
	// Every path gives orch-late the same percentiles, inside the bucket of
	// its observations: the bounds of its empty buckets count, whether the
	// window was read optimistically, raw after the counts, in slices or
	// through the grid.
	var first otelcollector.AggregatedStats
	for _, path := range []string{"raw", "grid", "grid sized by counts", "raw in slices", "raw, optimistic read over its limit", "raw, no optimistic read"} {
		c := map[string]*fleet.Client{"raw": c, "grid": grid, "grid sized by counts": counted, "raw in slices": chunked, "raw, optimistic read over its limit": capped, "raw, no optimistic read": counted1st}[path]
		got, err := c.AggregatedStats(ctx, "orch-late", otelcollector.TimeRange{Start: prevMonth, End: thisMonth})
		if err != nil {
			t.Fatalf("orch-late (%s): %v", path, err)
		}
		if got.Messages != 24 || got.P50Latency <= 500*time.Millisecond || got.P50Latency > time.Second {
			t.Errorf("orch-late (%s): %d messages, P50 %v; want 24 in (0.5 s, 1 s]", path, got.Messages, got.P50Latency)
		}
		if path == "raw" {
			first = got
			continue
		}
		if got.P50Latency != first.P50Latency || got.P95Latency != first.P95Latency || got.P99Latency != first.P99Latency || got.LatencyRelativeError != first.LatencyRelativeError {
			t.Errorf("orch-late (%s): P50/P95/P99 %v/%v/%v ±%v, the optimistic read %v/%v/%v ±%v", path,
				got.P50Latency, got.P95Latency, got.P99Latency, got.LatencyRelativeError, first.P50Latency, first.P95Latency, first.P99Latency, first.LatencyRelativeError)
		}
	}

	var ids []string
	var err error
	began := time.Now()
	peak := peakHeap(func() { ids, err = c.Orchestrators(ctx, otelcollector.Last(30*24*time.Hour)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Orchestrators(Last(30d)): %d IDs in %v, peak client heap %.1f MiB", len(ids), time.Since(began).Round(time.Millisecond), float64(peak)/(1<<20))
	want := append([]string(nil), h.orchs...)
	if lateAt.After(time.Now().Add(-30 * 24 * time.Hour)) {
		want = append(want, "orch-late")
	}
	sort.Strings(want)
	if len(ids) != len(want) {
		t.Fatalf("Orchestrators: %d IDs, want %d", len(ids), len(want))
	}

	// The optimistic read replaces the baseline's query in a window that
	// fits one raw query (the sample count, the raw reads and the riders
	// at Start are all that is asked); over its limit, it is abandoned and
	// the baseline is read. The counts are exact either way (above).
	for _, tc := range []struct {
		name     string
		limit    int64
		baseline int
	}{{"default", 0, 0}, {"over the limit", 1024, 1}} {
		rec := &queryRecorder{}
		opts := []fleet.Option{fleet.WithSelector(`job="orchestrator-daemon"`), fleet.WithRoundTripper(rec)}
		if tc.limit > 0 {
			opts = append(opts, fleet.WithOptimisticLimit(tc.limit))
		}
		c := newClient(t, prom.URL, opts...)
		got, err := c.AggregatedStats(ctx, "orch-0000", otelcollector.TimeRange{Start: prevMonth, End: thisMonth})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if want := h.want("orch-0000", "tokens", prevMonth, thisMonth); got.TotalTokens != want {
			t.Errorf("%s: TotalTokens = %d, want %d", tc.name, got.TotalTokens, want)
		}
		qs := rec.queries()
		var baselines, counts int
		for _, q := range qs {
			baselines += strings.Count(q, "last_over_time(")
			if strings.Contains(q, "count_over_time(") {
				counts++
			}
		}
		if baselines != tc.baseline*fleet.CounterFamilies || counts != 1 {
			t.Errorf("%s: %d last_over_time and %d sample counts in the queries, want %d and 1:\n%s",
				tc.name, baselines, counts, tc.baseline*fleet.CounterFamilies, strings.Join(qs, "\n"))
		}
	}
}

// An engine that refuses the optimistic read (here Prometheus'
// --query.max-samples, which a raw read of every sample of the window
// reaches and the sample count, one series at a time, does not) costs the
// call its round trip, not its answer: the window is read as counted, in
// raw reads of at most 100 samples. It failed before, with the engine's
// 422 "query processing would load too many samples".
func TestOptimisticReadRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: promtool backfill and Prometheus")
	}
	t.Parallel()
	end := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Hour)
	sp := histSpec{orchs: 2, daemons: 2, detailed: 1, step: time.Hour, start: end.Add(-50 * time.Hour), end: end, seed: 31}
	h, prom := backfill(t, sp, enginepeer.Options{Flags: []string{"--query.max-samples=300"}})
	c := newClient(t, prom.URL, fleet.WithChunkBudget(100))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := time.Now()
	got, err := c.AggregatedStats(ctx, "orch-0000", otelcollector.Last(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name  string
		got   int64
		field string
	}{{"TotalTokens", got.TotalTokens, "tokens"}, {"Messages", got.Messages, "messages"}, {"ToolInvocations", got.ToolInvocations, "tools"}} {
		if want := h.want("orch-0000", f.field, n.Add(-48*time.Hour), n); f.got != want {
			t.Errorf("%s = %d, want %d", f.name, f.got, want)
		}
	}
}

// lateHistogram returns the OpenMetrics samples of orch-late's latency
// histogram on one daemon: eight samples 6 h apart from at, three
// observations of 0.8 s more at each, the buckets 0.1 and 0.5 at 0; and the
// time of its first sample.
func lateHistogram(at time.Time) (string, time.Time) {
	var b strings.Builder
	lbl := `job="orchestrator-daemon",instance="daemon-000",orchestrator_id="orch-late"`
	for k := range 8 {
		ts := at.Add(time.Duration(k) * 6 * time.Hour).Unix()
		n := 3 * (k + 1)
		for _, le := range []string{"0.1", "0.5", "1", "2", "5", "10", "+Inf"} {
			v := n
			if le == "0.1" || le == "0.5" {
				v = 0
			}
			fmt.Fprintf(&b, "orchestrator_message_latency_seconds_bucket{%s,le=%q} %d %d\n", lbl, le, v, ts)
		}
		fmt.Fprintf(&b, "orchestrator_message_latency_seconds_count{%s} %d %d\n", lbl, n, ts)
		fmt.Fprintf(&b, "orchestrator_message_latency_seconds_sum{%s} %g %d\n", lbl, 0.8*float64(n), ts)
	}
	return b.String(), at
}

// queryRecorder records the PromQL of every query request it passes on.
type queryRecorder struct {
	mu sync.Mutex
	qs []string
}

func (r *queryRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query().Get("query")
	if q == "" && req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			raw, _ := io.ReadAll(b)
			v, _ := url.ParseQuery(string(raw))
			q = v.Get("query")
		}
	}
	if q != "" {
		r.mu.Lock()
		r.qs = append(r.qs, q)
		r.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (r *queryRecorder) queries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.qs...)
}
