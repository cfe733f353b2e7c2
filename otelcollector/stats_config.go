package otelcollector

import (
	"fmt"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/stats"
)

// StatsTier is one resolution of the history behind AggregatedStats: a
// sample every Step, kept for Retention. See WithStatsTiers.
type StatsTier struct {
	Step      time.Duration
	Retention time.Duration
}

// DefaultStatsTiers returns the tiers the Collector uses when none of
// WithStatsTiers, WithStatsResolution and WithStatsRetention is given:
//
//	a sample every 10 s,  kept 5 min
//	a sample every 1 min, kept 1 h
//	a sample every 1 h,   kept 24 h
//
// so that Last(24*time.Hour) works in-process. The hour tier keeps its
// latency histograms at scale 5 at most (percentiles within 2.19 %); the
// finer tiers keep the scale the SDK chose.
func DefaultStatsTiers() []StatsTier {
	out := make([]StatsTier, len(stats.DefaultTiers))
	for i, t := range stats.DefaultTiers {
		out[i] = StatsTier{Step: t.Step, Retention: t.Retention}
	}
	return out
}

// WithStatsTiers sets the resolutions of the history behind
// AggregatedStats, finest first. The Collector samples its live state
// every Step of the first tier; each coarser tier takes the first of those
// samples on or after each multiple of its own Step (aligned to the clock's
// zero, so an hour tier samples on the hour), and sums the finer tier's
// changes over its step. A window's start is the sample at or before the
// asked start in the finest tier that reaches back to it, so a window is
// exact to the step of the coarsest tier it needs: Last(5*time.Minute)
// within 10 s, Last(24*time.Hour) within an hour, with the default tiers.
// Memory grows with the sum over the tiers of Retention/Step (see
// docs/stats.md).
//
// The default is DefaultStatsTiers. New fails with ErrInvalidOption when
// no tier is given, when a Step is below MinStatsResolution (the first) or
// not a multiple of the previous tier's Step (the others), when a
// Retention is shorter than its Step or than the previous tier's
// Retention, or when a tier has more than MaxStatsSteps steps; and when
// WithStatsResolution or WithStatsRetention is given as well (they set a
// single tier).
func WithStatsTiers(tiers ...StatsTier) Option {
	tiers = append([]StatsTier(nil), tiers...)
	return optionFunc(func(c config) config {
		c.statsTiers, c.statsTiersSet = tiers, true
		return c
	})
}

// statsTiers returns the tiers the configuration asks for: those of
// WithStatsTiers, or the single tier of WithStatsResolution and
// WithStatsRetention, or the defaults.
func (c config) resolvedStatsTiers() []stats.Tier {
	switch {
	case c.statsTiersSet:
		out := make([]stats.Tier, len(c.statsTiers))
		for i, t := range c.statsTiers {
			out[i] = stats.Tier{Step: t.Step, Retention: t.Retention}
		}
		return out
	case c.statsWindowSet:
		return []stats.Tier{{Step: c.statsResolution, Retention: c.statsRetention}}
	}
	return stats.DefaultTiers
}

// checkStatsWindow validates the stats options together.
func checkStatsWindow(c config) error {
	if c.statsTiersSet {
		if c.statsWindowSet {
			return fmt.Errorf("%w: WithStatsTiers with WithStatsResolution or WithStatsRetention: give the tiers alone", ErrInvalidOption)
		}
		if len(c.statsTiers) > 0 && c.statsTiers[0].Step < MinStatsResolution {
			return fmt.Errorf("%w: stats tier 0: step %v, want >= %v", ErrInvalidOption, c.statsTiers[0].Step, MinStatsResolution)
		}
		if err := stats.CheckTiers(c.resolvedStatsTiers(), MaxStatsSteps); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidOption, err)
		}
		return nil
	}
	resolution, retention := c.statsResolution, c.statsRetention
	switch {
	case retention < resolution:
		return fmt.Errorf("%w: stats retention %v is shorter than the resolution %v", ErrInvalidOption, retention, resolution)
	case retention/resolution > MaxStatsSteps:
		return fmt.Errorf("%w: stats retention %v is more than %d steps of %v", ErrInvalidOption, retention, MaxStatsSteps, resolution)
	}
	return nil
}
