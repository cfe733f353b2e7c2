package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/wundr-io/orchestrator-otel/internal/validate"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// The legacy Prometheus names and labels the daemons export.
const (
	mTokens      = "orchestrator_tokens_used_total"
	mLatency     = "orchestrator_message_latency_seconds"
	mTools       = "orchestrator_tool_invocations_total"
	mErrors      = "orchestrator_errors_total"
	mDelegations = "orchestrator_federation_delegations_total"
	mSessions    = "orchestrator_sessions_active"
	mOverflow    = "orchestrator_collector_overflow_total"
	// mStarted and mEnded are the opt-in session counters
	// (otelcollector.WithSessionCounters).
	mStarted = "orchestrator_sessions_started_total"
	mEnded   = "orchestrator_sessions_ended_total"
	// mNative is the opt-in native histogram of the message latency
	// (otelcollector.WithNativeLatencyHistogram).
	mNative = "orchestrator_message_latency_native_seconds"
)

// Family indexes of AggregatedStats.
const (
	fTokens = iota
	fBucket
	fSum
	fCount
	fTools
	fErrors
	fOut
	fIn
	fOverflow
	fStarted
	fEnded
)

// AggregatedStats returns what orchestratorID did in the window r, summed
// over every daemon (every series) the engine holds: for Last(d), the d
// before the call, read from this machine's clock.
//
// A count is, per series, the value at End minus the value at Start, where
// a series first seen inside the window counts from zero and a counter that
// goes down (a restarted daemon) counts from zero after the drop; the
// series are then summed. Nothing is extrapolated: counts are integers, exact
// to the scrape resolution (a record made between the last scrape before a
// window edge and the edge falls on the side of its scrape). ActiveSessions
// is the sessions gauge summed at End, as an instant query sees it: a daemon
// gone for longer than the engine's staleness period, or marked stale, adds
// nothing.
//
// SessionsStarted and SessionsEnded count the sessions started and ended
// in the window, exactly like the other counts, from the counters
// orchestrator_sessions_started_total and orchestrator_sessions_ended_total
// that daemons export with otelcollector.WithSessionCounters. They are 0 from
// daemons without that option (the sessions gauge alone cannot tell how many
// sessions started and ended between two scrapes); in a fleet where only
// some daemons have it, they count those daemons' sessions only.
//
// Truncated is true when the engine's retention cuts the window: records
// made after the asked start may be missing. Start then says where the
// data begins, and the counts are over (Start, End]; a window that ends
// before the data gives zero stats with Start = End. The client learns the
// retention from the engine on the first call and again every 5 minutes
// (every 30 s while the engine cannot be reached), never in New:
//   - Prometheus: the retention in effect (/api/v1/status/runtimeinfo, or
//     /api/v1/status/flags) and the oldest sample its TSDB holds
//     (prometheus_tsdb_lowest_timestamp on its /metrics page). A window is
//     cut when it starts before that sample and either before now − the
//     time retention or under a size retention; a Prometheus younger than
//     the window, inside its retention, cuts nothing: nothing was recorded
//     before;
//   - VictoriaMetrics: -retentionPeriod (flag{name="retentionPeriod"} on its
//     /metrics page); a window starting before now − retention is cut there;
//   - an engine that tells neither (a Thanos or Mimir query front end, a
//     gateway that forwards only the query API): Truncated stays false, and
//     in a window older than the data a series whose older samples were
//     deleted reads as first seen in it (its whole value counts). This is
//     never an error.
//
// Outcomes of unusual input:
//   - an empty, over-long or invalid-UTF-8 orchestratorID wraps
//     otelcollector.ErrInvalidLabel, and nothing is queried;
//   - End before Start, or Last with a negative duration, wraps
//     otelcollector.ErrInvalidTimeRange; a zero Start means the Unix epoch;
//   - an orchestrator the engine has never seen gives zero stats and no
//     error;
//   - an engine that is down, slow or answers garbage gives an error
//     wrapping ErrEngine that names the engine and the query, by ctx's
//     deadline (and each query by WithQueryTimeout's).
func (c *Client) AggregatedStats(ctx context.Context, orchestratorID string, r otelcollector.TimeRange) (otelcollector.AggregatedStats, error) {
	if v := validate.Label(orchestratorID); v != validate.OK {
		return otelcollector.AggregatedStats{}, fmt.Errorf("%w: orchestratorID (%v)", otelcollector.ErrInvalidLabel, v)
	}
	now := c.now()
	start, end, err := r.Resolve(now)
	if err != nil {
		return otelcollector.AggregatedStats{}, err
	}
	start, end = engineTime(start), engineTime(end)
	// Where the engine's retention cuts the window, it begins with the
	// data (and is empty when it ends before it).
	cut, truncated := c.retention(ctx).cut(start, now)
	if truncated {
		start = cut
		if start.After(end) {
			start = end
		}
	}
	id := "orchestrator_id=" + quote(orchestratorID)
	fams := []family{
		fTokens:   {metric: mTokens, matchers: []string{id}},
		fBucket:   {metric: mLatency + "_bucket", matchers: []string{id}},
		fSum:      {metric: mLatency + "_sum", matchers: []string{id}},
		fCount:    {metric: mLatency + "_count", matchers: []string{id}},
		fTools:    {metric: mTools, matchers: []string{id}},
		fErrors:   {metric: mErrors, matchers: []string{id}},
		fOut:      {metric: mDelegations, matchers: []string{"from_orchestrator=" + quote(orchestratorID)}},
		fIn:       {metric: mDelegations, matchers: []string{"to_orchestrator=" + quote(orchestratorID)}},
		fOverflow: {metric: mOverflow, matchers: []string{`metric!="orchestrator.node.load"`, `metric!="orchestrator.budget.utilization"`}},
		fStarted:  {metric: mStarted, matchers: []string{id}},
		fEnded:    {metric: mEnded, matchers: []string{id}},
	}
	cs := c.newCounters(fams)

	out := otelcollector.AggregatedStats{OrchestratorID: orchestratorID, Start: start, End: end, Truncated: truncated}
	sessionsQ := "sum(" + selector(mSessions, []string{id}, c.selector) + ")"
	sessions := func(q string, vec model.Vector) error {
		if len(vec) > 0 {
			if !finite(vec[0].Value) {
				return c.engineErr(q, fmt.Errorf("sessions %v", vec[0].Value))
			}
			out.ActiveSessions = int64(math.Round(float64(vec[0].Value)))
		}
		return nil
	}
	// The sessions gauge (at End) and the native histogram (at Start and
	// End) are instant reads at the times of the counters' sample count
	// and baseline: they ride along in those queries when there are both.
	nativeQ := selector(mNative, []string{id}, c.selector)
	var sessionsR, nativeStart, nativeEnd *rider
	if end.After(start) && c.whole > 0 {
		sessionsR = &rider{tag: "sessions", expr: sessionsQ}
		nativeStart = &rider{name: mNative, expr: nativeQ}
		nativeEnd = &rider{name: mNative, expr: nativeQ}
		cs.atStart = []*rider{nativeStart}
		cs.atEnd = []*rider{sessionsR, nativeEnd}
	}
	g, gctx := newGroup(ctx, 2)
	g.Go(func() error { return cs.run(gctx, start, end) })
	var native *nativeResult
	if sessionsR == nil {
		g.Go(func() error {
			vec, err := c.instant(gctx, sessionsQ, end)
			if err != nil {
				return err
			}
			return sessions(sessionsQ, vec)
		})
		if end.After(start) {
			g.Go(func() error {
				var err error
				native, err = c.nativeQuantiles(gctx, nativeQ, start, end)
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return otelcollector.AggregatedStats{}, err
	}
	if sessionsR != nil {
		for _, r := range []*rider{sessionsR, nativeStart, nativeEnd} {
			if !r.read {
				return otelcollector.AggregatedStats{}, c.engineErr(r.expr, errors.New("not evaluated with the baseline and the sample count"))
			}
		}
		if err := sessions(sessionsQ, sessionsR.vec); err != nil {
			return otelcollector.AggregatedStats{}, err
		}
		native = nativeFrom(nativeStart.vec, nativeEnd.vec)
	}

	count := func(s *series) int64 { return int64(math.Round(s.delta)) }
	for _, s := range cs.st[fTokens] {
		if n := count(s); n != 0 {
			out.TotalTokens += n
			out.TokensByModel = addTo(out.TokensByModel, string(s.labels["model"]), n)
		}
	}
	for _, s := range cs.st[fTools] {
		if n := count(s); n != 0 {
			out.ToolInvocations += n
			out.ToolCallsByTool = addTo(out.ToolCallsByTool, string(s.labels["tool_name"]), n)
			switch s.labels["status"] {
			case "success":
				out.SuccessfulToolCalls += n
			case "error", "timeout":
				out.FailedToolCalls += n
			}
		}
	}
	for _, s := range cs.st[fErrors] {
		if n := count(s); n != 0 {
			out.Errors += n
			out.ErrorsByType = addTo(out.ErrorsByType, string(s.labels["error_type"]), n)
		}
	}
	for _, s := range cs.st[fOut] {
		out.DelegationsOut += count(s)
	}
	for _, s := range cs.st[fIn] {
		out.DelegationsIn += count(s)
	}
	for _, s := range cs.st[fOverflow] {
		out.OverflowRecords += count(s)
	}
	for _, s := range cs.st[fStarted] {
		out.SessionsStarted += count(s)
	}
	for _, s := range cs.st[fEnded] {
		out.SessionsEnded += count(s)
	}
	for _, s := range cs.st[fCount] {
		out.Messages += count(s)
	}
	if out.Messages > 0 {
		var sum float64
		for _, s := range cs.st[fSum] {
			sum += s.delta
		}
		out.AvgLatency = seconds(sum / float64(out.Messages))
		if native != nil && native.count == out.Messages {
			out.P50Latency, out.P95Latency, out.P99Latency = native.p50, native.p95, native.p99
			out.LatencyRelativeError = native.relErr
		} else {
			h := classic(cs.st[fBucket])
			var e1, e2, e3 float64
			out.P50Latency, e1 = h.quantile(0.50)
			out.P95Latency, e2 = h.quantile(0.95)
			out.P99Latency, e3 = h.quantile(0.99)
			out.LatencyRelativeError = max(e1, e2, e3)
		}
	}
	if d := out.Messages + out.ToolInvocations; d > 0 {
		out.ErrorRate = float64(out.Errors) / float64(d)
	}
	if out.ToolInvocations > 0 {
		out.ToolFailureRate = float64(out.FailedToolCalls) / float64(out.ToolInvocations)
	}
	return out, nil
}

func addTo(m map[string]int64, k string, v int64) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[k] += v
	return m
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

// classicHist is a cumulative classic histogram: counts[i] observations at
// or below bounds[i], the last bound +Inf.
type classicHist struct {
	bounds []float64
	counts []float64
}

// classic sums the window's increase of every bucket series by bound. The
// bound is parsed, so "1" and "1.0" (text and protobuf/OpenMetrics
// spellings) are one bucket.
func classic(bs map[string]*series) classicHist {
	byBound := map[float64]float64{}
	for _, s := range bs {
		le, err := strconv.ParseFloat(string(s.labels[model.BucketLabel]), 64)
		if err != nil {
			continue
		}
		byBound[le] += s.delta
	}
	var h classicHist
	for b := range byBound {
		h.bounds = append(h.bounds, b)
	}
	sort.Float64s(h.bounds)
	for _, b := range h.bounds {
		h.counts = append(h.counts, byBound[b])
	}
	return h
}

// quantile returns the nearest-rank q-quantile, interpolated log-linearly
// inside its bucket as the in-process stats do (linearly in the first
// bucket, whose lower bound is 0), and the relative error bound: the
// bucket's width over its lower bound (+Inf in the first bucket and in the
// bucket open at +Inf).
func (h classicHist) quantile(q float64) (time.Duration, float64) {
	if len(h.counts) == 0 {
		return 0, 0
	}
	n := h.counts[len(h.counts)-1]
	if n <= 0 {
		return 0, 0
	}
	rank := math.Max(1, math.Min(n, math.Ceil(q*n)))
	prevB, prevC := 0.0, 0.0
	for i, b := range h.bounds {
		c := h.counts[i]
		if c >= rank && c > prevC {
			if math.IsInf(b, 1) {
				return seconds(prevB), math.Inf(1)
			}
			frac := (rank - prevC - 0.5) / (c - prevC)
			if prevB <= 0 {
				return seconds(b * frac), math.Inf(1)
			}
			return seconds(prevB * math.Pow(b/prevB, frac)), (b - prevB) / prevB
		}
		prevB, prevC = b, c
	}
	return 0, 0
}
