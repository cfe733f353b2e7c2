package fleet_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/fleet"
)

// event is one op a daemon process made, in a phase.
type event struct {
	proc  string // the daemon process (a restart is a new process)
	phase int
	op    op
}

// truth is the test's record of everything the daemons were asked to do.
type truth struct {
	events []event
	// alive[phaseEnd] lists the processes alive at the end of each phase
	// boundary (index i: at t_i).
	alive map[int]map[string]bool
}

// genOps makes a deterministic, varied batch of ops for one daemon process
// in one phase. Every batch records tokens for orch-1 (the marker the test
// waits on).
func genOps(r *rand.Rand, n int) []op {
	models := []string{"claude-sonnet", "claude-haiku", "gpt-4o"}
	tools := []string{"bash", "read_file", "web_search"}
	statuses := []string{"success", "success", "success", "error", "timeout"}
	orchs := []string{"orch-1", "orch-1", "orch-2"}
	ops := []op{{Op: "tokens", Orch: "orch-1", Model: models[0], N: 1 + r.Int64N(500)}}
	for range n {
		o := orchs[r.IntN(len(orchs))]
		switch r.IntN(8) {
		case 0, 1:
			ops = append(ops, op{Op: "tokens", Orch: o, Model: models[r.IntN(len(models))], N: 1 + r.Int64N(5000)})
		case 2, 3:
			// log-normal around 1.2 s, from a few ms to tens of seconds
			us := int64(math.Exp(r.NormFloat64()*1.2+math.Log(1.2e6))) + 1
			ops = append(ops, op{Op: "latency", Orch: o, Micros: us})
		case 4:
			ops = append(ops, op{Op: "tool", Orch: o, Tool: tools[r.IntN(len(tools))], Status: statuses[r.IntN(len(statuses))]})
		case 5:
			ops = append(ops, op{Op: "error", Orch: o, Type: []string{"timeout", "rate_limited"}[r.IntN(2)]})
		case 6:
			to := []string{"orch-2", "orch-3", "orch-1"}[r.IntN(3)]
			ops = append(ops, op{Op: "delegation", Orch: o, To: to, Status: "success"})
		case 7:
			ops = append(ops, op{Op: "session_start", Orch: o, Type: "chat"})
		}
	}
	return ops
}

// expect computes the stats of orch over the phases (from, to] (phase p
// lies between boundaries t_{p-1} and t_p), with ActiveSessions at t_to.
type expected struct {
	otelcollector.AggregatedStats
	latencies []time.Duration
}

func (tr *truth) expect(orch string, from, to int) expected {
	var e expected
	e.OrchestratorID = orch
	open := map[string]int64{}
	for _, ev := range tr.events {
		o := ev.op
		if ev.phase <= to && (o.Op == "session_start" || o.Op == "session_end") && o.Orch == orch {
			if o.Op == "session_start" {
				open[ev.proc]++
			} else {
				open[ev.proc]--
			}
		}
		if ev.phase <= from || ev.phase > to {
			continue
		}
		switch o.Op {
		case "session_start":
			if o.Orch == orch {
				e.SessionsStarted++
			}
		case "session_end":
			if o.Orch == orch {
				e.SessionsEnded++
			}
		case "tokens":
			if o.Orch == orch {
				e.TotalTokens += o.N
				e.TokensByModel = inc(e.TokensByModel, o.Model, o.N)
			}
		case "latency":
			if o.Orch == orch {
				e.latencies = append(e.latencies, time.Duration(o.Micros)*time.Microsecond)
			}
		case "tool":
			if o.Orch == orch {
				e.ToolInvocations++
				e.ToolCallsByTool = inc(e.ToolCallsByTool, o.Tool, 1)
				if o.Status == "success" {
					e.SuccessfulToolCalls++
				} else {
					e.FailedToolCalls++
				}
			}
		case "error":
			if o.Orch == orch {
				e.Errors++
				e.ErrorsByType = inc(e.ErrorsByType, o.Type, 1)
			}
		case "delegation":
			if o.Orch == orch {
				e.DelegationsOut++
			}
			if o.To == orch {
				e.DelegationsIn++
			}
		}
	}
	for p, n := range open {
		if tr.alive[to][p] {
			e.ActiveSessions += n
		}
	}
	e.Messages = int64(len(e.latencies))
	if e.Messages > 0 {
		var sum time.Duration
		for _, l := range e.latencies {
			sum += l
		}
		e.AvgLatency = sum / time.Duration(e.Messages)
		sort.Slice(e.latencies, func(i, j int) bool { return e.latencies[i] < e.latencies[j] })
	}
	if d := e.Messages + e.ToolInvocations; d > 0 {
		e.ErrorRate = float64(e.Errors) / float64(d)
	}
	if e.ToolInvocations > 0 {
		e.ToolFailureRate = float64(e.FailedToolCalls) / float64(e.ToolInvocations)
	}
	return e
}

func inc(m map[string]int64, k string, n int64) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[k] += n
	return m
}

// nearestRank is the exact q-quantile of sorted values.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	r := int(math.Ceil(q * float64(len(sorted))))
	r = min(max(r, 1), len(sorted))
	return sorted[r-1]
}

var classicBounds = []float64{0.1, 0.5, 1, 2, 5, 10}

// bucketOf returns the classic bucket (lo, hi] holding v seconds.
func bucketOf(v float64) (lo, hi float64) {
	lo = 0
	for _, b := range classicBounds {
		if v <= b {
			return lo, b
		}
		lo = b
	}
	return lo, math.Inf(1)
}

// checkCounts compares every exact field of got with want.
func checkCounts(t *testing.T, what string, got, want otelcollector.AggregatedStats) {
	t.Helper()
	type f struct {
		name      string
		got, want int64
	}
	for _, c := range []f{
		{"TotalTokens", got.TotalTokens, want.TotalTokens},
		{"Messages", got.Messages, want.Messages},
		{"ToolInvocations", got.ToolInvocations, want.ToolInvocations},
		{"SuccessfulToolCalls", got.SuccessfulToolCalls, want.SuccessfulToolCalls},
		{"FailedToolCalls", got.FailedToolCalls, want.FailedToolCalls},
		{"Errors", got.Errors, want.Errors},
		{"DelegationsOut", got.DelegationsOut, want.DelegationsOut},
		{"DelegationsIn", got.DelegationsIn, want.DelegationsIn},
		{"OverflowRecords", got.OverflowRecords, want.OverflowRecords},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s = %d, want %d", what, c.name, c.got, c.want)
		}
	}
	for _, m := range []struct {
		name      string
		got, want map[string]int64
	}{
		{"TokensByModel", got.TokensByModel, want.TokensByModel},
		{"ToolCallsByTool", got.ToolCallsByTool, want.ToolCallsByTool},
		{"ErrorsByType", got.ErrorsByType, want.ErrorsByType},
	} {
		if !sameMap(m.got, m.want) {
			t.Errorf("%s: %s = %v, want %v", what, m.name, m.got, m.want)
		}
	}
	if d := got.AvgLatency - want.AvgLatency; d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("%s: AvgLatency = %v, want %v", what, got.AvgLatency, want.AvgLatency)
	}
	if math.Abs(got.ErrorRate-want.ErrorRate) > 1e-12 || math.Abs(got.ToolFailureRate-want.ToolFailureRate) > 1e-12 {
		t.Errorf("%s: rates %v/%v, want %v/%v", what, got.ErrorRate, got.ToolFailureRate, want.ErrorRate, want.ToolFailureRate)
	}
}

func sameMap(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkClassicPercentiles asserts each percentile lies in the classic
// bucket of the exact value, with the bucket's relative error bound.
func checkClassicPercentiles(t *testing.T, what string, got otelcollector.AggregatedStats, want expected) {
	t.Helper()
	if want.Messages == 0 {
		if got.P50Latency != 0 || got.LatencyRelativeError != 0 {
			t.Errorf("%s: no messages, got P50 %v, error bound %v", what, got.P50Latency, got.LatencyRelativeError)
		}
		return
	}
	worst := 0.0
	for _, p := range []struct {
		q   float64
		got time.Duration
	}{{0.50, got.P50Latency}, {0.95, got.P95Latency}, {0.99, got.P99Latency}} {
		exact := nearestRank(want.latencies, p.q).Seconds()
		lo, hi := bucketOf(exact)
		g := p.got.Seconds()
		// One nanosecond of rounding either way.
		if g < lo-1e-9 || g > hi+1e-9 {
			t.Errorf("%s: P%v = %v, exact %vs: not in its bucket (%v, %v]", what, p.q*100, p.got, exact, lo, hi)
		}
		bound := math.Inf(1)
		if lo > 0 && !math.IsInf(hi, 1) {
			bound = (hi - lo) / lo
		}
		worst = math.Max(worst, bound)
	}
	if got.LatencyRelativeError != worst {
		t.Errorf("%s: LatencyRelativeError = %v, want %v", what, got.LatencyRelativeError, worst)
	}
}

// engineAPI is a raw query client for the test's own waits.
func engineAPI(t testing.TB, url string) v1.API {
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	return v1.NewAPI(c)
}

// marker is a daemon process's marker total and the time of its latest
// sample.
type marker struct {
	value float64
	at    time.Time
	// seen: an instant query sees the series (it is not stale, nor past
	// the engine's lookback).
	seen bool
}

// markers returns, per daemon process, the tokens it recorded for the
// marker orchestrator (model = the process name): one per batch, so that
// the test can wait until an engine has every batch of every live process.
// A gone process's series (without staleness when remote-written) keep
// their own model and do not disturb the others; on an engine with
// staleness a process whose series are stale is not seen.
// (VictoriaMetrics' timestamp() still finds a series its instant queries
// no longer see, so seen comes from the sum alone.)
func markers(a v1.API) (map[string]marker, error) {
	ctx, cancel := contextTimeout(5 * time.Second)
	defer cancel()
	now := time.Now()
	const sel = `orchestrator_tokens_used_total{orchestrator_id="orch-marker"}`
	out := map[string]marker{}
	for _, q := range []string{`sum by (model) (` + sel + `)`, `max by (model) (timestamp(` + sel + `))`} {
		v, _, _, err := a.Query(ctx, q, now)
		if err != nil {
			return nil, err
		}
		vec, ok := v.(model.Vector)
		if !ok {
			return nil, fmt.Errorf("%s: answer of type %v", q, v.Type())
		}
		for _, s := range vec {
			m := out[string(s.Metric["model"])]
			if strings.HasPrefix(q, "sum") {
				m.value, m.seen = float64(s.Value), true
			} else {
				m.at = time.UnixMilli(int64(math.Round(float64(s.Value) * 1000)))
			}
			out[string(s.Metric["model"])] = m
		}
	}
	return out, nil
}

// sessionsAt is the sessions gauge of orch summed over every series, as
// an instant query at ts sees it.
func sessionsAt(a v1.API, orch string, ts time.Time) (int64, error) {
	ctx, cancel := contextTimeout(5 * time.Second)
	defer cancel()
	v, _, _, err := a.Query(ctx, `sum(orchestrator_sessions_active{orchestrator_id=`+strconv.Quote(orch)+`})`, ts)
	if err != nil {
		return 0, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return 0, fmt.Errorf("answer of type %v", v.Type())
	}
	if len(vec) == 0 {
		return 0, nil
	}
	return int64(math.Round(float64(vec[0].Value))), nil
}

func newClient(t testing.TB, url string, opts ...fleet.Option) *fleet.Client {
	t.Helper()
	c, err := fleet.New(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
