package fleet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/enginepeer"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/fleet"
)

// sessionCountersEnv, in a daemon process's environment, makes it export
// the session counters (otelcollector.WithSessionCounters).
const sessionCountersEnv = "FLEET_DAEMON_SESSION_COUNTERS=1"

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// daemonExtraOptions are options the daemon process adds from its
// environment.
func daemonExtraOptions() []otelcollector.Option {
	var opts []otelcollector.Option
	if os.Getenv("FLEET_DAEMON_NATIVE") != "" {
		opts = append(opts, nativeOption())
	}
	if os.Getenv(strings.TrimSuffix(sessionCountersEnv, "=1")) != "" {
		opts = append(opts, otelcollector.WithSessionCounters())
	}
	return opts
}

// baseOps gives a new daemon process a large first value on every series
// the restarted process records later, so that the restart is a visible
// drop on each of them.
func baseOps() []op {
	var ops []op
	for _, o := range []string{"orch-1", "orch-2"} {
		for _, m := range []string{"claude-sonnet", "claude-haiku", "gpt-4o"} {
			ops = append(ops, op{Op: "tokens", Orch: o, Model: m, N: 10000})
		}
		for _, us := range []int64{50e3, 300e3, 800e3, 1.5e6, 3e6, 7e6, 12e6} {
			for range 3 {
				ops = append(ops, op{Op: "latency", Orch: o, Micros: us})
			}
		}
		for range 3 {
			ops = append(ops,
				op{Op: "tool", Orch: o, Tool: "bash", Status: "success"},
				op{Op: "error", Orch: o, Type: "timeout"},
				op{Op: "delegation", Orch: o, To: "orch-2", Status: "success"},
			)
		}
	}
	return ops
}

// afterRestartOps records once on series that baseOps made large.
func afterRestartOps() []op {
	return []op{
		{Op: "tokens", Orch: "orch-1", Model: "claude-sonnet", N: 77},
		{Op: "tokens", Orch: "orch-2", Model: "gpt-4o", N: 5},
		{Op: "latency", Orch: "orch-1", Micros: 1.5e6},
		{Op: "tool", Orch: "orch-1", Tool: "bash", Status: "success"},
		{Op: "error", Orch: "orch-2", Type: "timeout"},
		{Op: "delegation", Orch: "orch-1", To: "orch-2", Status: "success"},
	}
}

// fleetRun drives the daemon processes through four phases while the
// engines scrape them, keeping the ground truth and the daemons' own stats.
type fleetRun struct {
	t       *testing.T
	engines []*enginepeer.Engine
	tr      truth
	bounds  []time.Time // t_0 ... t_3
	daemons map[string]*daemon
	procOf  map[string]string // daemon name -> current process
	totals  map[string]float64
	alive   map[string]bool
	// snaps[proc][window] are a dead process's own stats.
	snaps map[string]map[[2]int]map[string]otelcollector.AggregatedStats
	// flush is called after each batch of records (push tests).
	flush func(d *daemon)
	// midPhase2 runs in phase 2 after the records, before the restart of
	// daemon B (push tests restart the Collector there).
	midPhase2 func()
	// lookbackSessions lists engines that see no staleness (remote write
	// carries none): a daemon gone for good adds its last sessions gauge
	// until the lookback (5 minutes) has passed since its last sample.
	lookbackSessions map[*enginepeer.Engine]bool
	// stoppedAt is when each stopped process stopped.
	stoppedAt map[string]time.Time
	// doneAt is when each process's latest batch had been recorded (and
	// flushed): a sample the engine takes after it holds the whole batch.
	doneAt map[string]time.Time
	// sessionCounters: the daemons run with WithSessionCounters, so that
	// SessionsStarted and SessionsEnded are exact; without it they are 0.
	sessionCounters bool
}

var (
	windows = [][2]int{{0, 1}, {1, 2}, {0, 3}, {1, 3}, {2, 3}}
	orchs   = []string{"orch-1", "orch-2", "orch-3"}
)

func newFleetRun(t *testing.T, engines []*enginepeer.Engine, daemons map[string]*daemon) *fleetRun {
	r := &fleetRun{
		t: t, engines: engines, daemons: daemons,
		tr:     truth{alive: map[int]map[string]bool{}},
		procOf: map[string]string{}, totals: map[string]float64{}, alive: map[string]bool{}, stoppedAt: map[string]time.Time{},
		doneAt: map[string]time.Time{},
		snaps:  map[string]map[[2]int]map[string]otelcollector.AggregatedStats{},
	}
	for name := range daemons {
		r.procOf[name] = name + "1"
		r.alive[name+"1"] = true
	}
	return r
}

func (r *fleetRun) record(name string, phase int, ops []op) {
	d := r.daemons[name]
	proc := r.procOf[name]
	ops = append(ops, op{Op: "tokens", Orch: "orch-marker", Model: proc, N: 1})
	d.Record(ops...)
	for _, o := range ops {
		r.tr.events = append(r.tr.events, event{proc: proc, phase: phase, op: o})
	}
	r.totals[proc]++
	if r.flush != nil {
		r.flush(d)
	}
	r.doneAt[proc] = time.Now()
}

// waitScraped waits until every engine holds what the daemons did, so that
// a boundary taken now has every record before it and nothing changes
// between it and the next records. Per engine:
//   - each live process's latest marker total, in a sample taken after
//     the process's latest batch returned (doneAt). A sample taken while a
//     batch is being recorded, or a Collector's exporter holding a
//     periodic export that overlapped it, can show the marker (the batch's
//     last op) with earlier instruments, such as the sessions gauge,
//     collected before the batch's own records of them; the next sample
//     corrects it, but only up to a scrape interval later, after the
//     boundary;
//   - on an engine with staleness, no marker of a stopped process: its
//     series have been marked stale (the failed scrape of a pulled daemon,
//     or the Collector's exporter expiring a pushing one after
//     metric_expiration and the next scrape), which no fixed sleep after
//     the stop guarantees on a loaded machine;
//   - the sessions gauge, summed per orchestrator as an instant query at
//     this moment sees it, equal to what the test expects at a boundary
//     (sessionsNow), since the gauge is the one value read at the
//     boundary itself rather than from the window's samples.
func (r *fleetRun) waitScraped() {
	r.t.Helper()
	for _, e := range r.engines {
		a := engineAPI(r.t, e.URL)
		testpeer.Eventually(r.t, 60*time.Second, func() error {
			got, err := markers(a)
			if err != nil {
				return err
			}
			for name := range r.daemons {
				p := r.procOf[name]
				if !r.alive[p] {
					continue
				}
				if got[p].value != r.totals[p] {
					return fmt.Errorf("%s: daemon process %s: %v batches, want %v", e.Name, p, got[p].value, r.totals[p])
				}
				// Engines store milliseconds, and Prometheus aligns a
				// scrape's timestamp up to 2 ms before its start.
				if at, ok := r.doneAt[p]; ok && !got[p].at.After(at.Add(2*time.Millisecond)) {
					return fmt.Errorf("%s: daemon process %s: latest sample at %v, not after its latest batch (%v)", e.Name, p, got[p].at, at)
				}
			}
			if !r.lookbackSessions[e] {
				for p, ok := range r.alive {
					if !ok && got[p].seen {
						return fmt.Errorf("%s: stopped daemon process %s: its series are not stale yet", e.Name, p)
					}
				}
			}
			now := time.Now()
			for _, o := range orchs {
				want, ok := r.sessionsNow(e, o, len(r.bounds), now)
				if !ok {
					continue
				}
				if got, err := sessionsAt(a, o, now); err != nil || got != want {
					return fmt.Errorf("%s: %s: sessions gauge sums to %d (%v), want %d", e.Name, o, got, err, want)
				}
			}
			return nil
		})
	}
}

// sessionsNow is ActiveSessions at boundary to (evaluated at at) as the
// engine e sees it: the live processes' open sessions on an engine with
// staleness, sessionsInLookback on one without; ok is false when that is
// not determinable (see sessionsInLookback).
func (r *fleetRun) sessionsNow(e *enginepeer.Engine, orch string, to int, at time.Time) (int64, bool) {
	if r.lookbackSessions[e] {
		return r.sessionsInLookback(orch, to, at)
	}
	var n int64
	for _, ev := range r.tr.events {
		if ev.phase > to || ev.op.Orch != orch || !r.alive[ev.proc] {
			continue
		}
		switch ev.op.Op {
		case "session_start":
			n++
		case "session_end":
			n--
		}
	}
	return n, true
}

func (r *fleetRun) boundary() {
	r.t.Helper()
	r.waitScraped()
	time.Sleep(150 * time.Millisecond)
	r.bounds = append(r.bounds, time.Now())
	al := map[string]bool{}
	for p, ok := range r.alive {
		al[p] = ok
	}
	r.tr.alive[len(r.bounds)-1] = al
	time.Sleep(150 * time.Millisecond)
}

// snapshot keeps a process's own stats of every window it can take part
// in, just before it ends.
func (r *fleetRun) snapshot(name string) {
	proc := r.procOf[name]
	d := r.daemons[name]
	r.snaps[proc] = map[[2]int]map[string]otelcollector.AggregatedStats{}
	for _, w := range windows {
		if w[0] >= len(r.bounds) {
			continue
		}
		end := time.Now()
		if w[1] < len(r.bounds) {
			end = r.bounds[w[1]]
		}
		m := map[string]otelcollector.AggregatedStats{}
		for _, o := range orchs {
			m[o] = d.Stats(o, r.bounds[w[0]], end)
		}
		r.snaps[proc][w] = m
	}
}

func (r *fleetRun) stop(name string) {
	r.waitScraped()
	r.snapshot(name)
	r.daemons[name].Stop()
	r.stoppedAt[r.procOf[name]] = time.Now()
	r.alive[r.procOf[name]] = false
}

// sessionsInLookback is ActiveSessions at boundary to as an engine without
// staleness sees it: every sessions series keeps the last value written to
// it. Per daemon, that is the value of its latest process that recorded a
// session for orch, alive or not: a restarted daemon (the same
// service.instance.id) overwrites its predecessor's series only once it
// records sessions itself. at is the time the gauge is read at (the
// boundary t_to): ok is false when 4 minutes or more have passed from a
// process's stop to at, when the 5-minute lookback (counted back from at)
// may drop its series: then the value is not determinable.
func (r *fleetRun) sessionsInLookback(orch string, to int, at time.Time) (n int64, ok bool) {
	for _, stop := range r.stoppedAt {
		if at.Sub(stop) >= 4*time.Minute {
			return 0, false
		}
	}
	open := map[string]int64{}
	latest := map[string]string{} // daemon name -> process
	for _, ev := range r.tr.events {
		if ev.phase > to || ev.op.Orch != orch || (ev.op.Op != "session_start" && ev.op.Op != "session_end") {
			continue
		}
		if ev.op.Op == "session_start" {
			open[ev.proc]++
		} else {
			open[ev.proc]--
		}
		name := strings.TrimRight(ev.proc, "0123456789")
		if latest[name] < ev.proc { // "B1" < "B2": one-digit process numbers
			latest[name] = ev.proc
		}
	}
	for _, p := range latest {
		n += open[p]
	}
	return n, true
}

func (r *fleetRun) restart(name string, n int) {
	r.stop(name)
	r.daemons[name].start()
	r.procOf[name] = fmt.Sprintf("%s%d", name, n)
	r.alive[r.procOf[name]] = true
}

// inProcess sums the daemons' own stats of window w.
func (r *fleetRun) inProcess(orch string, w [2]int) otelcollector.AggregatedStats {
	var all []otelcollector.AggregatedStats
	for _, m := range r.snaps {
		if s, ok := m[w]; ok {
			all = append(all, s[orch])
		}
	}
	for name, d := range r.daemons {
		if r.alive[r.procOf[name]] {
			all = append(all, d.Stats(orch, r.bounds[w[0]], r.bounds[w[1]]))
		}
	}
	var sum otelcollector.AggregatedStats
	var lat time.Duration
	for _, s := range all {
		sum.TotalTokens += s.TotalTokens
		for k, v := range s.TokensByModel {
			sum.TokensByModel = inc(sum.TokensByModel, k, v)
		}
		sum.Messages += s.Messages
		lat += s.AvgLatency * time.Duration(s.Messages)
		sum.ToolInvocations += s.ToolInvocations
		sum.SuccessfulToolCalls += s.SuccessfulToolCalls
		sum.FailedToolCalls += s.FailedToolCalls
		for k, v := range s.ToolCallsByTool {
			sum.ToolCallsByTool = inc(sum.ToolCallsByTool, k, v)
		}
		sum.Errors += s.Errors
		for k, v := range s.ErrorsByType {
			sum.ErrorsByType = inc(sum.ErrorsByType, k, v)
		}
		sum.DelegationsOut += s.DelegationsOut
		sum.DelegationsIn += s.DelegationsIn
		sum.SessionsStarted += s.SessionsStarted
		sum.SessionsEnded += s.SessionsEnded
	}
	if sum.Messages > 0 {
		sum.AvgLatency = lat / time.Duration(sum.Messages)
	}
	if d := sum.Messages + sum.ToolInvocations; d > 0 {
		sum.ErrorRate = float64(sum.Errors) / float64(d)
	}
	if sum.ToolInvocations > 0 {
		sum.ToolFailureRate = float64(sum.FailedToolCalls) / float64(sum.ToolInvocations)
	}
	return sum
}

// play runs the four phases: 0 before t_0 (history the windows start
// from), 1, 2 (daemon B restarts), 3 (daemon C stops for good).
func (r *fleetRun) play() {
	rng := rand.New(rand.NewPCG(13, 1))
	names := []string{"A", "B", "C"}
	for _, n := range names {
		r.record(n, 0, append(baseOps(), genOps(rng, 30)...))
	}
	r.boundary() // t_0
	for _, n := range names {
		r.record(n, 1, genOps(rng, 40))
	}
	// Sessions that start and end inside windows (genOps only starts
	// them): on two session types, through A, B before its restart and C
	// before its stop.
	if _, ok := r.daemons["D"]; ok {
		// orch-5's only records are sessions, on a daemon without the
		// session counters (D): its gauge is first seen in phase 1 (at 1),
		// stays 1 through phase 2 (no record) and drops to 0 in phase 3.
		r.record("D", 1, []op{{Op: "session_start", Orch: "orch-5", Type: "chat"}})
	}
	r.record("A", 1, []op{
		{Op: "delegation", Orch: "orch-2", To: "orch-3", Status: "error"},
		{Op: "session_start", Orch: "orch-2", Type: "chat"},
		{Op: "session_start", Orch: "orch-2", Type: "chat"},
		{Op: "session_end", Orch: "orch-2", Type: "chat"},
	})
	r.boundary() // t_1
	for _, n := range names {
		r.record(n, 2, genOps(rng, 40))
	}
	r.record("B", 2, []op{{Op: "session_start", Orch: "orch-1", Type: "review"}, {Op: "session_end", Orch: "orch-1", Type: "review"}})
	if r.midPhase2 != nil {
		r.waitScraped()
		r.midPhase2()
	}
	r.restart("B", 2)
	r.record("B", 2, afterRestartOps())
	r.record("A", 2, sessionPair("orch-4"))
	r.boundary() // t_2
	r.record("C", 3, append(genOps(rng, 20), op{Op: "session_start", Orch: "orch-1", Type: "chat"}, op{Op: "session_end", Orch: "orch-1", Type: "chat"}))
	r.stop("C")
	r.record("A", 3, append(genOps(rng, 40), op{Op: "session_end", Orch: "orch-2", Type: "chat"}))
	r.record("B", 3, afterRestartOps())
	if _, ok := r.daemons["D"]; ok {
		r.record("D", 3, []op{{Op: "session_end", Orch: "orch-5", Type: "chat"}})
	}
	// orch-4's only records are sessions, on a daemon with the session
	// counters (A): a start and an end in one batch in phases 2 and 3. In
	// phase 3 the gauge series exists already and is back to 0 at every
	// scrape: only the counters show those records.
	r.record("A", 3, sessionPair("orch-4"))
	r.boundary() // t_3
}

// sessionPair starts and ends one session of orch.
func sessionPair(orch string) []op {
	return []op{{Op: "session_start", Orch: orch, Type: "chat"}, {Op: "session_end", Orch: orch, Type: "chat"}}
}

// check compares the fleet client of every engine with the ground truth
// and with the sum of the daemons' own stats.
func (r *fleetRun) check(opts ...fleet.Option) { r.checkT(r.t, opts...) }

// checkT is check reporting to t. It only reads what play recorded, so
// several checks, each with its own client, may run at once.
func (r *fleetRun) checkT(t *testing.T, opts ...fleet.Option) {
	t.Helper()
	for _, e := range r.engines {
		c := newClient(t, e.URL, opts...)
		ctx, cancel := contextTimeout(time.Minute)
		for _, w := range windows {
			tw := otelcollector.TimeRange{Start: r.bounds[w[0]], End: r.bounds[w[1]]}
			for _, o := range orchs {
				what := fmt.Sprintf("%s %s window t%d..t%d", e.Name, o, w[0], w[1])
				got, err := c.AggregatedStats(ctx, o, tw)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				want := r.tr.expect(o, w[0], w[1])
				checkCounts(t, what, got, want.AggregatedStats)
				checkClassicPercentiles(t, what, got, want)
				wantSessions := want.ActiveSessions
				if r.lookbackSessions[e] {
					// Stopped processes' gauges are still within the
					// lookback: each adds its last value unless its
					// successor wrote the series. (Not asserted past 4
					// minutes.)
					var ok bool
					if wantSessions, ok = r.sessionsInLookback(o, w[1], r.bounds[w[1]]); !ok {
						t.Logf("%s: ActiveSessions not checked: more than 4 minutes from a daemon's stop to the boundary", what)
						wantSessions = got.ActiveSessions
					}
				}
				if got.ActiveSessions != wantSessions {
					t.Errorf("%s: ActiveSessions = %d, want %d", what, got.ActiveSessions, wantSessions)
				}
				checkCounts(t, what+" (vs in-process)", got, r.inProcess(o, w))
				r.checkSessionCounts(t, what, got, want.AggregatedStats, r.inProcess(o, w))
			}
			// The window's orchestrators (the same call for each of them).
			what := fmt.Sprintf("%s window t%d..t%d", e.Name, w[0], w[1])
			ids, err := c.Orchestrators(ctx, tw)
			if err != nil {
				t.Fatalf("%s: Orchestrators: %v", what, err)
			}
			if wantIDs := r.activeIDs(w); !slices.Equal(ids, wantIDs) {
				t.Errorf("%s: Orchestrators = %v, want %v", what, ids, wantIDs)
			}
		}
		// Last: from t_0 to now (nothing after t_3).
		for _, o := range orchs {
			got, err := c.AggregatedStats(ctx, o, otelcollector.Last(time.Since(r.bounds[0])))
			if err != nil {
				t.Fatal(err)
			}
			want := r.tr.expect(o, 0, 3)
			checkCounts(t, e.Name+" "+o+" Last", got, want.AggregatedStats)
			r.checkSessionCounts(t, e.Name+" "+o+" Last", got, want.AggregatedStats, r.inProcess(o, [2]int{0, 3}))
			checkClassicPercentiles(t, e.Name+" "+o+" Last", got, want)
		}
		// An orchestrator nobody recorded for.
		got, err := c.AggregatedStats(ctx, "orch-none", otelcollector.Last(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got.TotalTokens != 0 || got.Messages != 0 || got.TokensByModel != nil || got.ActiveSessions != 0 {
			t.Errorf("%s: unknown orchestrator: %+v", e.Name, got)
		}
		cancel()
	}
}

// checkSessionCounts compares SessionsStarted and SessionsEnded with the
// ground truth and the daemons' own stats when the daemons export the
// session counters, and asserts 0 when they do not (the gauge alone
// cannot give them).
func (r *fleetRun) checkSessionCounts(t *testing.T, what string, got, want, own otelcollector.AggregatedStats) {
	t.Helper()
	if !r.sessionCounters {
		if got.SessionsStarted != 0 || got.SessionsEnded != 0 {
			t.Errorf("%s: SessionsStarted/Ended = %d/%d without the session counters, want 0/0", what, got.SessionsStarted, got.SessionsEnded)
		}
		return
	}
	if got.SessionsStarted != want.SessionsStarted || got.SessionsEnded != want.SessionsEnded {
		t.Errorf("%s: SessionsStarted/Ended = %d/%d, want %d/%d", what, got.SessionsStarted, got.SessionsEnded, want.SessionsStarted, want.SessionsEnded)
	}
	if got.SessionsStarted != own.SessionsStarted || got.SessionsEnded != own.SessionsEnded {
		t.Errorf("%s: SessionsStarted/Ended = %d/%d, the daemons' own stats %d/%d", what, got.SessionsStarted, got.SessionsEnded, own.SessionsStarted, own.SessionsEnded)
	}
}

// activeIDs are the orchestrators with a record in window w, session
// starts and ends included. (On a daemon without the session counters,
// only the gauge shows them, and it cannot show a start and an end between
// two scrapes of a series that existed before the window; play records
// none such.)
func (r *fleetRun) activeIDs(w [2]int) []string {
	set := map[string]bool{}
	for _, ev := range r.tr.events {
		if ev.phase <= w[0] || ev.phase > w[1] {
			continue
		}
		if ev.op.Op == "delegation" {
			set[ev.op.To] = true
		}
		set[ev.op.Orch] = true
	}
	var out []string
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// TestPullExact: Prometheus 2.42 and VictoriaMetrics 1.79 scrape three
// daemon processes (one restarts mid-window, one stops for good); the fleet
// stats of every window equal the ground truth and the sum of the daemons'
// own in-process stats, on both engines. The daemons run with
// WithSessionCounters, so SessionsStarted and SessionsEnded are among the
// exact fields. A fourth daemon, without the session counters, records
// only sessions of an orchestrator of its own, which Orchestrators lists
// from the sessions gauge.
func TestPullExact(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts Prometheus, VictoriaMetrics and four daemons")
	}
	// Its own engines and daemons on ports of their own: it runs beside
	// the package's other end-to-end tests, which mostly wait on scrapes.
	t.Parallel()
	daemons := map[string]*daemon{}
	var targets []string
	for _, n := range []string{"A", "B", "C"} {
		daemons[n] = startDaemon(t, n, "", sessionCountersEnv)
		targets = append(targets, daemons[n].Addr)
	}
	// D, without the session counters, records only sessions (of orch-5,
	// which no other daemon records for): the sessions gauge alone must
	// list it in Orchestrators.
	daemons["D"] = startDaemon(t, "D", "")
	targets = append(targets, daemons["D"].Addr)
	job := enginepeer.ScrapeJob("orchestrator-daemon", false, targets...)
	prom := enginepeer.StartPrometheus(t, enginepeer.Options{ScrapeConfigs: job})
	vm := enginepeer.StartVictoriaMetrics(t, enginepeer.Options{ScrapeConfigs: job})
	r := newFleetRun(t, []*enginepeer.Engine{prom, vm}, daemons)
	r.sessionCounters = true
	r.play()
	sel := fleet.WithSelector(`job="orchestrator-daemon"`)
	// The same answers through each read path; the checks only read, so
	// they run at once (each with its own client), after play.
	for _, tc := range []struct {
		name string
		opts []fleet.Option
	}{
		{"default", []fleet.Option{sel}},
		// Raw in queries of a few samples: each daemon's series in
		// consecutive time slices, the restart and the engines' range edges
		// inside them. 16 samples a query: most instances are still read
		// in slices (some of them empty), most resets are still found
		// against the previous slice's last value, and instances with few
		// samples are grouped into one query (with 4, none were; and more
		// than half the queries were empty slices).
		{"raw-in-slices", []fleet.Option{sel, fleet.WithChunkBudget(16)}},
		// The windows hold few samples, so the default reads them raw; the
		// same answers through the grid of last/min/resets (the path of
		// long windows), with the resets found inside grid intervals. (Its
		// zooms sized from the window's sample counts, as for windows of
		// more than 250,000 samples.)
		{"grid", []fleet.Option{sel, fleet.WithRawMax(300 * time.Millisecond), fleet.WithWholeBudget(1)}},
		// Grid intervals of a few scrapes: resets inside an interval, found
		// by resets() and walked again.
		{"grid-walked", []fleet.Option{sel, fleet.WithRawMax(300 * time.Millisecond), fleet.WithGridIntervals(3), fleet.WithRawBudget(0), fleet.WithWholeBudget(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r.checkT(t, tc.opts...)
		})
	}
}

func nativeOption() otelcollector.Option { return otelcollector.WithNativeLatencyHistogram() }
