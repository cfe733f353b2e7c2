package otelcollector

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// Sentinel errors. Every error a record method returns wraps exactly one of
// them, so callers match with errors.Is; the message names the offending
// field.
var (
	// ErrInvalidLabel: a label value is empty, longer than MaxLabelBytes or
	// not valid UTF-8.
	ErrInvalidLabel = errors.New("otelcollector: invalid label value")
	// ErrInvalidValue: a measurement is negative, NaN, infinite, outside
	// its range (node load outside 0..1), or would take a token series past
	// the largest int64.
	ErrInvalidValue = errors.New("otelcollector: invalid value")
	// ErrUnknownStatus: a ToolStatus, DelegationStatus or BudgetPeriod that
	// is not one of the declared constants.
	ErrUnknownStatus = errors.New("otelcollector: unknown status")
	// ErrClosed: the Collector has been closed.
	ErrClosed = errors.New("otelcollector: collector is closed")
	// ErrInvalidOption: New was given an option it cannot honour.
	ErrInvalidOption = errors.New("otelcollector: invalid option")
	// ErrCardinalityLimit: UpdateNodeLoad or UpdateBudgetUtilization would
	// start a new series although the gauge already reports as many as the
	// cardinality limit allows. Update an existing series, or Forget one
	// first. Counters and the histogram never return it: past the limit
	// they record into the overflow series.
	ErrCardinalityLimit = errors.New("otelcollector: cardinality limit reached")
	// ErrNilHandle: a method was called on a nil handle (an *Orchestrator,
	// *TokenCounter, ... whose binding returned an error) or on a nil
	// *Collector.
	ErrNilHandle = errors.New("otelcollector: nil handle")
	// ErrStatsDisabled: AggregatedStats was called on a Collector created
	// with WithoutAggregatedStats.
	ErrStatsDisabled = errors.New("otelcollector: aggregated stats are disabled (WithoutAggregatedStats)")
	// ErrInvalidTimeRange: AggregatedStats was given a TimeRange that ends
	// before it starts, or Last with a negative duration.
	ErrInvalidTimeRange = errors.New("otelcollector: invalid time range")
)

// MaxLabelBytes is the longest label value accepted, in bytes.
const MaxLabelBytes = validate.MaxLabelBytes

// reject counts a rejected record and builds its error. It is only reached
// on the failure path, so the formatting never costs a valid record anything.
func (c *Collector) reject(r validate.Reason, field string, value any) error {
	if c == nil {
		return ErrNilHandle
	}
	c.rejected.Add(r)
	var err error
	switch r {
	case validate.EmptyLabel:
		err = fmt.Errorf("%w: %s is empty", ErrInvalidLabel, field)
	case validate.LabelTooLong:
		err = fmt.Errorf("%w: %s is %d bytes, longer than %d", ErrInvalidLabel, field, len(value.(string)), MaxLabelBytes)
	case validate.InvalidUTF8:
		err = fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalidLabel, field, value)
	case validate.NegativeValue:
		err = fmt.Errorf("%w: %s %v is negative", ErrInvalidValue, field, value)
	case validate.NonFiniteValue:
		err = fmt.Errorf("%w: %s %v is not finite", ErrInvalidValue, field, value)
	case validate.OutOfRange:
		err = fmt.Errorf("%w: %s %v is outside 0..1", ErrInvalidValue, field, value)
	case validate.UnknownStatus:
		err = fmt.Errorf("%w: %s %q", ErrUnknownStatus, field, value)
	case validate.ValueOverflow:
		err = fmt.Errorf("%w: %s %v would take its series past the largest int64", ErrInvalidValue, field, value)
	default: // validate.Closed; every reason has its case
		err = ErrClosed
	}
	if c.logger.Enabled(bgCtx, levelDebug) {
		c.logger.Debug("record rejected", "reason", r.String(), "error", err)
	}
	return err
}

// errorLogInterval is how often the Collector logs an error of one source
// that has no caller; errors in between are counted and the count is
// logged with the next line.
const errorLogInterval = 10 * time.Second

// errorLog rate-limits the Collector's log lines for errors with no caller.
type errorLog struct {
	mu      sync.Mutex
	sources map[string]*errorSource
}

type errorSource struct {
	last       time.Time
	suppressed int
}

// HandleError reports an error that has no caller, such as a record made
// by middleware on behalf of a request (httpmetrics), the way the Collector
// reports its own: to the handler of WithErrorHandler if one was given,
// otherwise to the Collector's logger at Warn level, at most one line every
// 10 s with the number of errors suppressed in between. It never calls the
// process-global otel.Handle unless WithErrorHandler(otel.Handle) asked
// for it. A nil error, or a nil Collector, is ignored.
func (c *Collector) HandleError(err error) {
	c.handleError("caller", err)
}

// handleError reports err from source (which names it in the log line).
func (c *Collector) handleError(source string, err error) {
	if c == nil || err == nil {
		return
	}
	if c.errorHandler != nil {
		c.errorHandler(err)
		return
	}
	now := time.Now()
	l := &c.errLog
	l.mu.Lock()
	if l.sources == nil {
		l.sources = map[string]*errorSource{}
	}
	s := l.sources[source]
	if s == nil {
		s = &errorSource{}
		l.sources[source] = s
	}
	if !s.last.IsZero() && now.Sub(s.last) < errorLogInterval {
		s.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := s.suppressed
	s.last, s.suppressed = now, 0
	l.mu.Unlock()
	c.logger.Warn("otelcollector: "+source+" failed", "error", err, "suppressed", suppressed)
}
