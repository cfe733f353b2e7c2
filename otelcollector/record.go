package otelcollector

import (
	"context"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// ToolStatus is the outcome of a tool invocation.
type ToolStatus string

// Tool statuses; any other value is rejected with ErrUnknownStatus.
const (
	ToolSuccess ToolStatus = "success"
	ToolError   ToolStatus = "error"
	ToolTimeout ToolStatus = "timeout"
)

func (s ToolStatus) valid() bool {
	return s == ToolSuccess || s == ToolError || s == ToolTimeout
}

// DelegationStatus is the outcome of delegating work to another orchestrator.
type DelegationStatus string

// Delegation statuses; any other value is rejected with ErrUnknownStatus.
const (
	DelegationSuccess  DelegationStatus = "success"
	DelegationError    DelegationStatus = "error"
	DelegationRejected DelegationStatus = "rejected"
)

func (s DelegationStatus) valid() bool {
	return s == DelegationSuccess || s == DelegationError || s == DelegationRejected
}

// BudgetPeriod is the period a budget utilization refers to.
type BudgetPeriod string

// Budget periods; any other value is rejected with ErrUnknownStatus.
const (
	PeriodDaily   BudgetPeriod = "daily"
	PeriodWeekly  BudgetPeriod = "weekly"
	PeriodMonthly BudgetPeriod = "monthly"
)

func (p BudgetPeriod) valid() bool {
	return p == PeriodDaily || p == PeriodWeekly || p == PeriodMonthly
}

// ErrorTypeFunctionExecution is the error_type WithMetrics records when its
// function fails or panics.
const ErrorTypeFunctionExecution = "function_execution_error"

// RecordSessionStart adds one active session of sessionType (an open string
// such as "claude-code") to orchestrator_sessions_active.
func (c *Collector) RecordSessionStart(ctx context.Context, orchestratorID, sessionType string) error {
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	e, err := c.sessions.series.get(c, labelPair{orchestratorID, sessionType})
	if err != nil {
		c.leave(slot)
		return err
	}
	c.sessionStart(ctx, e)
	c.leave(slot)
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "session start", "orchestrator_id", orchestratorID, "session_type", sessionType)
	}
	return nil
}

// RecordSessionEnd removes one active session. Ending a session of a series
// with none active is rejected with ErrInvalidValue, so the gauge never goes
// negative.
//
// Past the cardinality limit, every (orchestrator, session type) without a
// series of its own shares the overflow series, and the check applies to
// that series: an end of such a tuple is accepted while any overflowed
// session is active, even one of another tuple, and rejected when none is.
// The overflow series itself never goes negative.
func (c *Collector) RecordSessionEnd(ctx context.Context, orchestratorID, sessionType string) error {
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	e, err := c.sessions.series.get(c, labelPair{orchestratorID, sessionType})
	if err != nil {
		c.leave(slot)
		return err
	}
	if err := c.sessionEnd(ctx, e); err != nil {
		c.leave(slot)
		return err
	}
	c.leave(slot)
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "session end", "orchestrator_id", orchestratorID, "session_type", sessionType)
	}
	return nil
}

func (c *Collector) sessionStart(ctx context.Context, e *counterEntry) {
	k := c.sessions
	if !k.atomic || k.startsEnds {
		// Before the active count: an end that sees this start's count
		// finds the start counted (stats.Cell loads ends first).
		e.started.Add(1)
	}
	e.n.Add(1)
	k.publish(ctx, e, 1)
	if k.startedSync != nil {
		k.startedSync.Add(ctx, 1, e.opts...)
	}
}

func (c *Collector) sessionEnd(ctx context.Context, e *counterEntry) error {
	for {
		n := e.n.Load()
		if n <= 0 {
			return c.reject(validate.NegativeValue, "active sessions after end", n-1)
		}
		if e.n.CompareAndSwap(n, n-1) {
			break
		}
	}
	k := c.sessions
	if !k.atomic || k.startsEnds {
		e.ended.Add(1)
	}
	k.publish(ctx, e, -1)
	if k.endedSync != nil {
		k.endedSync.Add(ctx, 1, e.opts...)
	}
	return nil
}

// RecordTokenUsage adds tokens to orchestrator_tokens_used_total for
// orchestratorID and model. Negative tokens are rejected; zero is accepted
// and creates the series.
func (c *Collector) RecordTokenUsage(ctx context.Context, orchestratorID, model string, tokens int64) error {
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	if r := validate.NonNegativeInt(tokens); r != validate.OK {
		c.leave(slot)
		return c.reject(r, "tokens", tokens)
	}
	e, err := c.tokens.series.get(c, labelPair{orchestratorID, model})
	if err != nil {
		c.leave(slot)
		return err
	}
	if !c.tokens.addSaturating(ctx, e, tokens) {
		c.leave(slot)
		return c.reject(validate.ValueOverflow, "tokens", tokens)
	}
	c.leave(slot)
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "tokens", "orchestrator_id", orchestratorID, "model", model, "tokens", tokens)
	}
	return nil
}

// RecordMessageLatency observes latency, in seconds, in
// orchestrator_message_latency_seconds. Negative latency is rejected. If ctx
// carries a sampled span, the SDK attaches its trace as an exemplar.
func (c *Collector) RecordMessageLatency(ctx context.Context, orchestratorID string, latency time.Duration) error {
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	if latency < 0 {
		c.leave(slot)
		return c.reject(validate.NegativeValue, "latency", latency)
	}
	e, err := c.latencySeries.get(c, orchKey(orchestratorID))
	if err != nil {
		c.leave(slot)
		return err
	}
	c.recordLatency(ctx, e, latency)
	c.leave(slot)
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "message latency", "orchestrator_id", orchestratorID, "latency", latency)
	}
	return nil
}

// recordLatency is the measurement shared by Collector.RecordMessageLatency
// and Orchestrator.RecordMessageLatency, once labels and value are checked.
func (c *Collector) recordLatency(ctx context.Context, e *latencyEntry, latency time.Duration) {
	v := latency.Seconds()
	if e.overflow {
		c.latencySeries.overflowed.Add(1)
	} else if c.stats != nil {
		e.live.Record(v)
	}
	c.latency.Record(ctx, v, e.opts...)
}

// RecordToolInvocation counts one invocation of toolName with its status in
// orchestrator_tool_invocations_total.
func (c *Collector) RecordToolInvocation(ctx context.Context, orchestratorID, toolName string, status ToolStatus) error {
	if c == nil {
		return ErrNilHandle
	}
	if err := count(ctx, c, c.tools, labelValues{orchestratorID, toolName, string(status)}, status, status.valid()); err != nil {
		return err
	}
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "tool invocation", "orchestrator_id", orchestratorID, "tool_name", toolName, "status", string(status))
	}
	return nil
}

// count is the shape of a counter record, shared by RecordToolInvocation,
// RecordDelegation and RecordError: enter, reject an unknown status
// (statusOK false), look the series up (validating
// its labels on a miss), add 1, leave. The caller logs afterwards.
//
// The other record methods keep the same shape written out, because their
// checks and measurements differ (a value to validate, a saturating add, a
// session count, a histogram). Measured for issue 11: this helper against
// the hand-written RecordToolInvocation, WithAtomicCounters (the mode where
// the wrapper is most of the cost), 6 interleaved runs of
// BenchmarkRecordToolInvocation/impl=otelcollector-atomic/mode=single at
// -benchtime 0.3s on the loaded 2-core machine: median 146 ns with the
// helper, 149 ns hand-written, within the noise; no sign of the 3 % cost
// that would justify the repetition.
func count[K seriesKey, S ~string](ctx context.Context, c *Collector, k *counter[K], key K, status S, statusOK bool) error {
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	if !statusOK {
		c.leave(slot)
		return c.reject(validate.UnknownStatus, "status", string(status))
	}
	e, err := k.series.get(c, key)
	if err != nil {
		c.leave(slot)
		return err
	}
	k.add(ctx, e, 1)
	c.leave(slot)
	return nil
}

// RecordDelegation counts one delegation from one orchestrator to another in
// orchestrator_federation_delegations_total.
func (c *Collector) RecordDelegation(ctx context.Context, fromOrchestrator, toOrchestrator string, status DelegationStatus) error {
	if c == nil {
		return ErrNilHandle
	}
	if err := count(ctx, c, c.delegations, labelValues{fromOrchestrator, toOrchestrator, string(status)}, status, status.valid()); err != nil {
		return err
	}
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "delegation", "from_orchestrator", fromOrchestrator, "to_orchestrator", toOrchestrator, "status", string(status))
	}
	return nil
}

// RecordError counts one error of errorType in orchestrator_errors_total.
func (c *Collector) RecordError(ctx context.Context, orchestratorID, errorType string) error {
	if c == nil {
		return ErrNilHandle
	}
	if err := count(ctx, c, c.errorsCtr, labelPair{orchestratorID, errorType}, "", true); err != nil {
		return err
	}
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "error", "orchestrator_id", orchestratorID, "error_type", errorType)
	}
	return nil
}
