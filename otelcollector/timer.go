package otelcollector

import (
	"context"
	"time"
)

// Timer measures elapsed time on the monotonic clock. It is a value: starting
// one allocates nothing. The zero Timer's Stop returns 0.
type Timer struct {
	start time.Time
}

// StartTimer returns a Timer started now.
func (c *Collector) StartTimer() Timer {
	return Timer{start: time.Now()}
}

// Stop returns the time elapsed since StartTimer. A Timer holds no state
// besides its start, so calling Stop again returns the time elapsed until
// that later call.
func (t Timer) Stop() time.Duration {
	if t.start.IsZero() {
		return 0
	}
	return time.Since(t.start)
}

// WithMetrics runs fn and records its latency for orchestratorID whether it
// succeeds or fails; when fn returns an error it also records an error of
// type ErrorTypeFunctionExecution. It returns fn's result and error
// unchanged. If fn panics, WithMetrics records the latency and the error and
// then panics again with the same value. A recording failure (an invalid
// orchestratorID, a closed Collector) never changes what fn returns; it is
// reported like every error with no caller (see WithErrorHandler: by
// default a rate-limited Warn line on the Collector's logger).
func WithMetrics[T any](ctx context.Context, c *Collector, orchestratorID string, fn func(ctx context.Context) (T, error)) (T, error) {
	t := c.StartTimer()
	failed := true
	defer func() {
		err := c.RecordMessageLatency(ctx, orchestratorID, t.Stop())
		if failed {
			if e := c.RecordError(ctx, orchestratorID, ErrorTypeFunctionExecution); e != nil && err == nil {
				err = e
			}
		}
		if err != nil {
			c.handleError("WithMetrics", err)
		}
	}()
	v, err := fn(ctx)
	failed = err != nil
	return v, err
}
