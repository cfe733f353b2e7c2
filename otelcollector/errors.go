package otelcollector

import (
	"errors"
	"fmt"

	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// Sentinel errors. Every error a record method returns wraps exactly one of
// them, so callers match with errors.Is; the message names the offending
// field.
var (
	// ErrInvalidLabel: a label value is empty, longer than MaxLabelBytes or
	// not valid UTF-8.
	ErrInvalidLabel = errors.New("otelcollector: invalid label value")
	// ErrInvalidValue: a measurement is negative, NaN, infinite or outside
	// its range (node load outside 0..1).
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
	// *TokenCounter, ... whose binding returned an error).
	ErrNilHandle = errors.New("otelcollector: nil handle")
	// ErrInvalidTimeRange: AggregatedStats was given a TimeRange that ends
	// before it starts, or Last with a negative duration.
	ErrInvalidTimeRange = errors.New("otelcollector: invalid time range")
)

// MaxLabelBytes is the longest label value accepted, in bytes.
const MaxLabelBytes = validate.MaxLabelBytes

// reject counts a rejected record and builds its error. It is only reached
// on the failure path, so the formatting never costs a valid record anything.
func (c *Collector) reject(r validate.Reason, field string, value any) error {
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
	case validate.Closed:
		err = ErrClosed
	default:
		err = fmt.Errorf("otelcollector: %s rejected (%v)", field, r)
	}
	if c.logger.Enabled(bgCtx, levelDebug) {
		c.logger.Debug("record rejected", "reason", r.String(), "error", err)
	}
	return err
}
