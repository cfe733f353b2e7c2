package fleet

import "time"

// WithRawMax is a test hook: intervals up to d are read from raw samples,
// longer ones through the grid of last/min/resets.
func WithRawMax(d time.Duration) Option {
	return optionFunc(func(c config) config {
		c.rawMax = d
		return c
	})
}

// WithClock is a test hook for the clock of Last and a zero End.
func WithClock(now func() time.Time) Option { return withClock(now) }

// WithGridIntervals is a test hook: the number of intervals of a grid.
func WithGridIntervals(n int64) Option {
	return optionFunc(func(c config) config {
		c.grid = n
		return c
	})
}

// WithRawBudget is a test hook: the most raw samples a zoom reads at once
// (0: always a finer grid, down to WithRawMax).
func WithRawBudget(n float64) Option {
	return optionFunc(func(c config) config {
		c.budget = n
		return c
	})
}

// ParseVMRetention and ParsePromRetention expose the retention parsers.
var (
	ParseVMRetention   = parseVMRetention
	ParsePromRetention = parsePromRetention
	PromRetentionFlags = promRetentionFlags
)

// WithWholeBudget is a test hook: the most raw samples a window may hold to
// be read raw instead of through the grid (0: always through the grid).
func WithWholeBudget(n float64) Option {
	return optionFunc(func(c config) config {
		c.whole = n
		return c
	})
}

// WithChunkBudget is a test hook: the most raw samples one raw query of a
// window read raw reads (instances grouped up to it, an instance above it
// read in time slices).
func WithChunkBudget(n float64) Option {
	return optionFunc(func(c config) config {
		c.chunk = max(n, 1)
		return c
	})
}

// WithOptimisticLimit is a test hook: the most bytes of answer the
// optimistic read of a window takes (0: no optimistic read; the baseline
// is read beside the sample count).
func WithOptimisticLimit(n int64) Option {
	return optionFunc(func(c config) config {
		c.optimistic = n
		return c
	})
}

// CounterFamilies is the number of counter families AggregatedStats reads.
const CounterFamilies = fEnded + 1
