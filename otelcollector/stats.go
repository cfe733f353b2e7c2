package otelcollector

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/internal/stats"
	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// TimeRange is a window of time for AggregatedStats: from Start to End. A
// zero End means the time of the call; a zero Start means as far back as
// the samples kept reach. Use Last for a window ending now.
type TimeRange struct {
	Start time.Time
	End   time.Time

	last     time.Duration
	relative bool
}

// Last returns the window of length d ending at the time of the
// AggregatedStats call, read from the Collector's clock. Last(0) is an empty
// window at the time of the call; a negative d makes AggregatedStats fail
// with ErrInvalidTimeRange.
func Last(d time.Duration) TimeRange {
	return TimeRange{last: d, relative: true}
}

// StatsSource is what can answer AggregatedStats: a *Collector for its own
// process, and a *fleet.Client for every daemon an engine such as Prometheus
// has seen. Daemon code that only reads stats can take either.
type StatsSource interface {
	AggregatedStats(ctx context.Context, orchestratorID string, r TimeRange) (AggregatedStats, error)
}

var _ StatsSource = (*Collector)(nil)

// AggregatedStats are what one orchestrator did in a window of time,
// computed as the difference between the cumulative state at the window's
// end and at its start. Counts are exact; the latency percentiles are
// estimated from histograms, and LatencyRelativeError says how closely (see
// docs/stats.md for accuracy).
//
// The struct encodes to JSON as is, with snake_case keys; durations encode
// as integer nanoseconds (keys ending in _ns), times as RFC 3339.
type AggregatedStats struct {
	// OrchestratorID is the orchestrator the stats are about.
	OrchestratorID string `json:"orchestrator_id"`
	// Start and End bound the window actually covered. Start is the sample
	// at or before the asked start, or the oldest sample kept when the asked
	// start is older (see Truncated); End is the time of the call for a
	// window ending now (a zero or future End, or Last), otherwise the
	// sample at or before the asked End. Both are read from the Collector's
	// clock.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Truncated is true when records made after the asked start may be
	// missing because their samples are older than the retention
	// (WithStatsRetention); Start then says where the data begins. A start
	// before New is not truncated: nothing was recorded before.
	Truncated bool `json:"truncated"`
	// ActiveSessions is the number of sessions active at End: started and
	// not yet ended, over all session types.
	ActiveSessions int64 `json:"active_sessions"`
	// SessionsStarted and SessionsEnded count RecordSessionStart and
	// RecordSessionEnd calls in the window. With WithAtomicCounters only the
	// net count is sampled, so a start and an end between two samples cancel
	// out and these are lower bounds, unless WithSessionCounters is given
	// too (it keeps both counts).
	SessionsStarted int64 `json:"sessions_started"`
	SessionsEnded   int64 `json:"sessions_ended"`
	// TotalTokens is the sum of tokens recorded in the window, and
	// TokensByModel the same per model (models with none are absent; the
	// map is nil when there are none at all).
	TotalTokens   int64            `json:"total_tokens"`
	TokensByModel map[string]int64 `json:"tokens_by_model,omitempty"`
	// Messages counts latency observations in the window (RecordMessageLatency,
	// WithMetrics, Timer).
	Messages int64 `json:"messages"`
	// AvgLatency is the mean of those latencies; P50Latency, P95Latency and
	// P99Latency estimate their 50th, 95th and 99th percentiles (the
	// nearest-rank value). All are 0 when Messages is 0.
	AvgLatency time.Duration `json:"avg_latency_ns"`
	P50Latency time.Duration `json:"p50_latency_ns"`
	P95Latency time.Duration `json:"p95_latency_ns"`
	P99Latency time.Duration `json:"p99_latency_ns"`
	// LatencyRelativeError bounds the relative error of P50Latency,
	// P95Latency and P99Latency: each lies within that fraction of the
	// exact percentile (0.0219 means 2.19 %). It is the width of the
	// histogram bucket the estimate comes from, relative to its lower
	// bound: small for the exponential histograms of the in-process stats
	// and of native histograms, large for classic buckets (an estimate in
	// (2 s, 5 s] has a bound of 1.5). It is 0 when Messages is 0, and +Inf
	// when a percentile falls in the bucket that is open at +Inf.
	LatencyRelativeError float64 `json:"latency_relative_error"`
	// ToolInvocations counts tool invocations in the window, of which
	// SuccessfulToolCalls had status ToolSuccess and FailedToolCalls
	// ToolError or ToolTimeout. ToolCallsByTool counts them per tool name, all
	// statuses together (nil when there are none).
	ToolInvocations     int64            `json:"tool_invocations"`
	SuccessfulToolCalls int64            `json:"successful_tool_calls"`
	FailedToolCalls     int64            `json:"failed_tool_calls"`
	ToolCallsByTool     map[string]int64 `json:"tool_calls_by_tool,omitempty"`
	// Errors counts RecordError calls in the window, and ErrorsByType per
	// error type (nil when there are none).
	Errors       int64            `json:"errors"`
	ErrorsByType map[string]int64 `json:"errors_by_type,omitempty"`
	// DelegationsOut counts delegations from this orchestrator to another,
	// DelegationsIn delegations to it, of any status. A delegation to
	// itself counts in both.
	DelegationsOut int64 `json:"delegations_out"`
	DelegationsIn  int64 `json:"delegations_in"`
	// ErrorRate is Errors / (Messages + ToolInvocations), and
	// ToolFailureRate FailedToolCalls / ToolInvocations; each is 0 when its
	// denominator is 0.
	ErrorRate       float64 `json:"error_rate"`
	ToolFailureRate float64 `json:"tool_failure_rate"`
	// OverflowRecords counts the records made in the window, by any
	// orchestrator, that went to the overflow series of the cardinality
	// limit (WithCardinalityLimit). They carry no orchestrator, so when it
	// is non-zero the counts above may be incomplete.
	OverflowRecords int64 `json:"overflow_records"`
}

// AggregatedStats returns what orchestratorID did in the window r, for
// example Last(5*time.Minute) or TimeRange{Start: t0, End: t1}.
//
// The statistics read the Collector's own live state: each series' running
// total (an atomic the record path adds to) and, per orchestrator, a
// histogram of the latencies since the latest sample. No SDK reader
// aggregates the records a second time. The Collector samples that state
// every 10 s and keeps the history in tiers (DefaultStatsTiers: 10 s steps
// for 5 min, minute steps for an hour, hour steps for a day;
// WithStatsTiers sets others), so a window can reach a day back and its
// bounds are exact to the step of the coarsest tier it needs. A window
// ending now adds the asked orchestrator's live values since the latest
// sample, so its counts and percentiles include every record made before
// the call; it reads only that orchestrator's series, collects nothing, and
// concurrent callers do not wait for one another (see docs/stats.md). A
// window ending in the past only reads the history.
//
// Outcomes of unusual input:
//   - an orchestrator with no records in the window, or never seen, gives
//     zero stats (ActiveSessions may be non-zero) and no error;
//   - End before Start, or Last with a negative duration, gives an error
//     wrapping ErrInvalidTimeRange;
//   - a zero-length window (Start equal to End, or Last(0)) gives no counts,
//     only ActiveSessions at that instant, and no error;
//   - a window that ends before the oldest sample kept gives zero stats,
//     Start = End = the asked End, and Truncated if samples were dropped;
//   - an empty, over-long or invalid-UTF-8 orchestratorID gives an error
//     wrapping ErrInvalidLabel (it is not counted as a rejected record);
//   - after Close, ErrClosed.
//
// Records past the cardinality limit, aggregated into the overflow series,
// carry no orchestrator and are in no orchestrator's stats. ctx is not
// used: nothing is collected.
func (c *Collector) AggregatedStats(ctx context.Context, orchestratorID string, r TimeRange) (AggregatedStats, error) {
	if c == nil {
		return AggregatedStats{}, ErrNilHandle
	}
	if c.stats == nil {
		return AggregatedStats{}, ErrStatsDisabled
	}
	if c.closed.Load() {
		return AggregatedStats{}, ErrClosed
	}
	if v := validate.Label(orchestratorID); v != validate.OK {
		return AggregatedStats{}, fmt.Errorf("%w: orchestratorID (%v)", ErrInvalidLabel, v)
	}
	if r.relative && r.last < 0 {
		return AggregatedStats{}, fmt.Errorf("%w: Last(%v) is negative", ErrInvalidTimeRange, r.last)
	}
	if !r.End.IsZero() && r.End.Before(r.Start) {
		return AggregatedStats{}, fmt.Errorf("%w: End %v is before Start %v", ErrInvalidTimeRange, r.End, r.Start)
	}
	st, err := c.stats.store.Query(ctx, orchestratorID,
		stats.Range{Start: r.Start, End: r.End, Last: r.last, Relative: r.relative})
	switch {
	case err == nil:
	case errors.Is(err, stats.ErrInvalidRange):
		// A zero End resolved to a now before Start.
		return AggregatedStats{}, fmt.Errorf("%w: Start %v is after the current time", ErrInvalidTimeRange, r.Start)
	case errors.Is(err, stats.ErrClosed), errors.Is(err, sdkmetric.ErrReaderShutdown):
		return AggregatedStats{}, ErrClosed
	default:
		return AggregatedStats{}, fmt.Errorf("otelcollector: AggregatedStats: %w", err)
	}
	// A conversion, not a copy field by field: it compiles only while both
	// structs have the same fields in the same order, so they cannot drift.
	return AggregatedStats(st), nil
}

// statsSampler samples the live state every resolution step into the store
// AggregatedStats reads.
type statsSampler struct {
	store  *stats.Store
	stop   chan struct{}
	done   chan struct{}
	report func(error) // the Collector's handler of errors with no caller
}

// startStats creates the store and starts the sampler goroutine, which
// Close stops.
func (c *Collector) startStats(cfg config) {
	now := cfg.now
	if now == nil {
		now = time.Now
	}
	tiers := cfg.resolvedStatsTiers()
	s := &statsSampler{
		store:  stats.NewTiered(nil, tiers, now),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		report: func(err error) { c.handleError("stats sampler", err) },
	}
	c.stats = s
	c.linkStats(s.store)
	tick := cfg.statsTick
	var ticker *time.Ticker
	if tick == nil {
		ticker = time.NewTicker(tiers[0].Step)
		tick = ticker.C
	}
	go func() {
		defer close(s.done)
		if ticker != nil {
			defer ticker.Stop()
		}
		for {
			select {
			case <-s.stop:
				return
			case <-tick:
				s.sample()
			}
		}
	}()
}

// sample takes one sample; an error has no caller and goes to report.
func (s *statsSampler) sample() {
	err := s.store.Sample(bgCtx)
	if err != nil && !errors.Is(err, stats.ErrClosed) && !errors.Is(err, sdkmetric.ErrReaderShutdown) {
		s.report(fmt.Errorf("otelcollector: stats sampler: %w", err))
	}
}

// stopStats stops the sampler, waits for it and releases the history.
func (c *Collector) stopStats() {
	if c.stats == nil {
		return
	}
	close(c.stats.stop)
	<-c.stats.done
	c.stats.store.Close()
}

// linkStats makes the statistics read the Collector's live values: every
// new series of the counters and the latency histogram registers a cell
// (stats.Cell) before it is cached, and each metric's count of records
// that went to an overflow series is a cell of its own (the gauges'
// rejections are not overflow records).
func (c *Collector) linkStats(st *stats.Store) {
	for _, k := range c.counterList {
		k.linkStats(st)
	}
	c.latencySeries.link = func(vals labelValues, e *latencyEntry) func() {
		cell := st.Register(stats.CellSpec{Kind: stats.CellLatency, ID: vals[0], Hist: &e.live, Dead: &e.dead})
		return func() { st.Unregister(cell) }
	}
	for _, src := range c.overflowSources() {
		if src.metric == schema.NodeLoad || src.metric == schema.BudgetUtilization {
			continue
		}
		st.Register(stats.CellSpec{Kind: stats.CellOverflow, V: src.n})
	}
}
