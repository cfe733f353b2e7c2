package otelcollector

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// Orchestrator records for one orchestrator ID, validated once when the
// handle is bound. Bind it once per orchestrator with Collector.Orchestrator
// and keep it: its methods skip the ID's lookup where they can, and Model,
// Tool, SessionType and ErrorType bind the remaining labels too, for the
// hottest paths. Values are still validated on every call, and every method
// returns ErrClosed once the Collector is closed.
//
// A handle does not own its series: records through a handle and through
// the Collector's methods with the same labels add to the same series.
// Binding creates no series and takes no cardinality slot; the first record
// does. All methods are safe for concurrent use.
type Orchestrator struct {
	c       *Collector
	id      string
	latency atomic.Pointer[latencyEntry] // bound by the first latency record
}

// Orchestrator returns the handle of orchestratorID. It fails with
// ErrInvalidLabel if the ID is not a valid label value, and with ErrClosed
// after Close; such failures are counted like rejected records.
func (c *Collector) Orchestrator(orchestratorID string) (*Orchestrator, error) {
	if err := c.bindCheck("orchestratorID", orchestratorID); err != nil {
		return nil, err
	}
	return &Orchestrator{c: c, id: orchestratorID}, nil
}

// bindCheck validates a label at bind time, without taking a slot.
func (c *Collector) bindCheck(param, v string) error {
	if c == nil {
		return ErrNilHandle
	}
	if c.closed.Load() {
		return c.reject(validate.Closed, "", nil)
	}
	if r := validate.Label(v); r != validate.OK {
		return c.reject(r, param, v)
	}
	return nil
}

// bound returns the entry p holds, or binds vals on first use and after
// ForgetOrchestrator retired the entry. The fast path is two atomic loads.
func bound[V interface {
	*E
	mortal
	isDead() bool
}, E any, K seriesKey](c *Collector, s *series[K, V], p *atomic.Pointer[E], k K) (V, error) {
	if e := V(p.Load()); e != nil && !e.isDead() {
		return e, nil
	}
	e, err := s.get(c, k)
	if err != nil {
		return nil, err
	}
	p.Store((*E)(e))
	return e, nil
}

// ID returns the orchestrator ID the handle is bound to.
func (o *Orchestrator) ID() string {
	if o == nil {
		return ""
	}
	return o.id
}

// RecordMessageLatency is Collector.RecordMessageLatency for the bound
// orchestrator, without the ID's lookup.
func (o *Orchestrator) RecordMessageLatency(ctx context.Context, latency time.Duration) error {
	if o == nil {
		return ErrNilHandle
	}
	c := o.c
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	if latency < 0 {
		c.leave(slot)
		return c.reject(validate.NegativeValue, "latency", latency)
	}
	e, err := bound(c, c.latencySeries, &o.latency, orchKey(o.id))
	if err != nil {
		c.leave(slot)
		return err
	}
	c.recordLatency(ctx, e, latency)
	c.leave(slot)
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "message latency", "orchestrator_id", o.id, "latency", latency)
	}
	return nil
}

// RecordTokenUsage is Collector.RecordTokenUsage for the bound orchestrator.
// For a model recorded often, bind it with Model.
func (o *Orchestrator) RecordTokenUsage(ctx context.Context, model string, tokens int64) error {
	if o == nil {
		return ErrNilHandle
	}
	return o.c.RecordTokenUsage(ctx, o.id, model, tokens)
}

// RecordToolInvocation is Collector.RecordToolInvocation for the bound
// orchestrator. For a tool recorded often, bind it with Tool.
func (o *Orchestrator) RecordToolInvocation(ctx context.Context, toolName string, status ToolStatus) error {
	if o == nil {
		return ErrNilHandle
	}
	return o.c.RecordToolInvocation(ctx, o.id, toolName, status)
}

// RecordSessionStart is Collector.RecordSessionStart for the bound
// orchestrator.
func (o *Orchestrator) RecordSessionStart(ctx context.Context, sessionType string) error {
	if o == nil {
		return ErrNilHandle
	}
	return o.c.RecordSessionStart(ctx, o.id, sessionType)
}

// RecordSessionEnd is Collector.RecordSessionEnd for the bound orchestrator.
func (o *Orchestrator) RecordSessionEnd(ctx context.Context, sessionType string) error {
	if o == nil {
		return ErrNilHandle
	}
	return o.c.RecordSessionEnd(ctx, o.id, sessionType)
}

// RecordDelegation is Collector.RecordDelegation from the bound orchestrator
// to toOrchestrator.
func (o *Orchestrator) RecordDelegation(ctx context.Context, toOrchestrator string, status DelegationStatus) error {
	if o == nil {
		return ErrNilHandle
	}
	return o.c.RecordDelegation(ctx, o.id, toOrchestrator, status)
}

// RecordError is Collector.RecordError for the bound orchestrator.
func (o *Orchestrator) RecordError(ctx context.Context, errorType string) error {
	if o == nil {
		return ErrNilHandle
	}
	return o.c.RecordError(ctx, o.id, errorType)
}

// Model binds the token counter of one model of the orchestrator. It fails
// with ErrInvalidLabel if model is not a valid label value, and with
// ErrClosed after Close.
func (o *Orchestrator) Model(model string) (*TokenCounter, error) {
	if o == nil {
		return nil, ErrNilHandle
	}
	if err := o.c.bindCheck("model", model); err != nil {
		return nil, err
	}
	return &TokenCounter{c: o.c, orchestratorID: o.id, model: model}, nil
}

// Tool binds the invocation counter of one tool of the orchestrator; the
// status is given per call. It fails with ErrInvalidLabel if toolName is not
// a valid label value, and with ErrClosed after Close.
func (o *Orchestrator) Tool(toolName string) (*ToolCounter, error) {
	if o == nil {
		return nil, ErrNilHandle
	}
	if err := o.c.bindCheck("toolName", toolName); err != nil {
		return nil, err
	}
	return &ToolCounter{c: o.c, orchestratorID: o.id, toolName: toolName}, nil
}

// SessionType binds the active-session gauge of one session type of the
// orchestrator. It fails with ErrInvalidLabel if sessionType is not a valid
// label value, and with ErrClosed after Close.
func (o *Orchestrator) SessionType(sessionType string) (*SessionCounter, error) {
	if o == nil {
		return nil, ErrNilHandle
	}
	if err := o.c.bindCheck("sessionType", sessionType); err != nil {
		return nil, err
	}
	return &SessionCounter{c: o.c, orchestratorID: o.id, sessionType: sessionType}, nil
}

// ErrorType binds the error counter of one error type of the orchestrator.
// It fails with ErrInvalidLabel if errorType is not a valid label value, and
// with ErrClosed after Close.
func (o *Orchestrator) ErrorType(errorType string) (*ErrorCounter, error) {
	if o == nil {
		return nil, ErrNilHandle
	}
	if err := o.c.bindCheck("errorType", errorType); err != nil {
		return nil, err
	}
	return &ErrorCounter{c: o.c, orchestratorID: o.id, errorType: errorType}, nil
}

// TokenCounter adds the tokens of one orchestrator and model to
// orchestrator_tokens_used_total. Bind it with Orchestrator.Model. It is
// safe for concurrent use.
type TokenCounter struct {
	c                     *Collector
	e                     atomic.Pointer[counterEntry] // bound by the first record
	orchestratorID, model string
}

// Add adds tokens, like Collector.RecordTokenUsage: negative tokens are
// rejected with ErrInvalidValue; zero is accepted and creates the series.
func (t *TokenCounter) Add(ctx context.Context, tokens int64) error {
	if t == nil {
		return ErrNilHandle
	}
	c := t.c
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	if tokens < 0 {
		c.leave(slot)
		return c.reject(validate.NegativeValue, "tokens", tokens)
	}
	e, err := bound(c, c.tokens.series, &t.e, labelPair{t.orchestratorID, t.model})
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
		c.logger.DebugContext(ctx, "tokens", "orchestrator_id", t.orchestratorID, "model", t.model, "tokens", tokens)
	}
	return nil
}

// ToolCounter counts the invocations of one tool of one orchestrator in
// orchestrator_tool_invocations_total. Bind it with Orchestrator.Tool. It is
// safe for concurrent use.
type ToolCounter struct {
	c                        *Collector
	orchestratorID, toolName string
	// entries per status (success, error, timeout), bound on first use so
	// that an unused status takes no cache slot.
	entries [3]atomic.Pointer[counterEntry]
}

func toolStatusIndex(s ToolStatus) int {
	switch s {
	case ToolSuccess:
		return 0
	case ToolError:
		return 1
	case ToolTimeout:
		return 2
	}
	return -1
}

// Inc counts one invocation with status, like
// Collector.RecordToolInvocation: an unknown status is rejected with
// ErrUnknownStatus.
func (t *ToolCounter) Inc(ctx context.Context, status ToolStatus) error {
	if t == nil {
		return ErrNilHandle
	}
	c := t.c
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	i := toolStatusIndex(status)
	if i < 0 {
		c.leave(slot)
		return c.reject(validate.UnknownStatus, "status", string(status))
	}
	e, err := bound(c, c.tools.series, &t.entries[i], labelValues{t.orchestratorID, t.toolName, string(status)})
	if err != nil {
		c.leave(slot)
		return err
	}
	c.tools.add(ctx, e, 1)
	c.leave(slot)
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "tool invocation", "orchestrator_id", t.orchestratorID, "tool_name", t.toolName, "status", string(status))
	}
	return nil
}

// SessionCounter tracks the active sessions of one orchestrator and session
// type in orchestrator_sessions_active. Bind it with
// Orchestrator.SessionType. It is safe for concurrent use.
type SessionCounter struct {
	c                           *Collector
	e                           atomic.Pointer[counterEntry] // bound by the first record
	orchestratorID, sessionType string
}

// Start adds one active session, like Collector.RecordSessionStart.
func (s *SessionCounter) Start(ctx context.Context) error {
	if s == nil {
		return ErrNilHandle
	}
	c := s.c
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	e, err := bound(c, c.sessions.series, &s.e, labelPair{s.orchestratorID, s.sessionType})
	if err != nil {
		c.leave(slot)
		return err
	}
	c.sessionStart(ctx, e)
	c.leave(slot)
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "session start", "orchestrator_id", s.orchestratorID, "session_type", s.sessionType)
	}
	return nil
}

// End removes one active session, like Collector.RecordSessionEnd: ending a
// session when none is active is rejected with ErrInvalidValue.
func (s *SessionCounter) End(ctx context.Context) error {
	if s == nil {
		return ErrNilHandle
	}
	c := s.c
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	e, err := bound(c, c.sessions.series, &s.e, labelPair{s.orchestratorID, s.sessionType})
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
		c.logger.DebugContext(ctx, "session end", "orchestrator_id", s.orchestratorID, "session_type", s.sessionType)
	}
	return nil
}

// ErrorCounter counts the errors of one orchestrator and error type in
// orchestrator_errors_total. Bind it with Orchestrator.ErrorType. It is safe
// for concurrent use.
type ErrorCounter struct {
	c                         *Collector
	e                         atomic.Pointer[counterEntry] // bound by the first record
	orchestratorID, errorType string
}

// Inc counts one error, like Collector.RecordError.
func (x *ErrorCounter) Inc(ctx context.Context) error {
	if x == nil {
		return ErrNilHandle
	}
	c := x.c
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	e, err := bound(c, c.errorsCtr.series, &x.e, labelPair{x.orchestratorID, x.errorType})
	if err != nil {
		c.leave(slot)
		return err
	}
	c.errorsCtr.add(ctx, e, 1)
	c.leave(slot)
	if c.debugEnabled(ctx) {
		c.logger.DebugContext(ctx, "error", "orchestrator_id", x.orchestratorID, "error_type", x.errorType)
	}
	return nil
}
