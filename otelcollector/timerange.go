package otelcollector

import (
	"fmt"
	"time"
)

// Resolve returns the absolute window r stands for when asked at now: for
// Last(d), [now-d, now]; otherwise Start and End, with a zero End read as
// now. A zero Start stays zero (as far back as the data reaches). It wraps
// ErrInvalidTimeRange for Last with a negative duration and for an End
// before Start. Other StatsSource implementations, such as the fleet
// client, use it to read a TimeRange the way the Collector does.
func (r TimeRange) Resolve(now time.Time) (start, end time.Time, err error) {
	if r.relative {
		if r.last < 0 {
			return time.Time{}, time.Time{}, fmt.Errorf("%w: Last(%v) is negative", ErrInvalidTimeRange, r.last)
		}
		return now.Add(-r.last), now, nil
	}
	end = r.End
	if end.IsZero() {
		end = now
	}
	if end.Before(r.Start) {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: End %v is before Start %v", ErrInvalidTimeRange, end, r.Start)
	}
	return r.Start, end, nil
}
