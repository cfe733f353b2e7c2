package otelcollector

import (
	"fmt"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

// minSDKCardinalityLimit is the least cardinality limit the Collector gives
// the SDK. The Collector enforces the user's limit itself (limit-1 series
// plus the overflow series per instrument, limit-1 per gauge), so the SDK's
// limit is only a backstop; but it applies to the Collector's own counters
// too, whose few series (one per rejection reason, one per metric) must not
// fold into an overflow series when the user sets a tiny limit.
const minSDKCardinalityLimit = 16

// overflowSource is one metric's count of records past its cardinality
// limit, with the options of its orchestrator_collector_overflow_total
// series.
type overflowSource struct {
	metric string
	n      *atomic.Int64
	opts   []metric.ObserveOption
}

// overflowSources lists every metric's overflow count, in a fixed order.
func (c *Collector) overflowSources() []overflowSource {
	src := []struct {
		name string
		n    *atomic.Int64
	}{
		{schema.SessionsActive, &c.sessions.series.overflowed},
		{schema.TokensUsed, &c.tokens.series.overflowed},
		{schema.MessageLatency, &c.latencySeries.overflowed},
		{schema.ToolInvocations, &c.tools.series.overflowed},
		{schema.Delegations, &c.delegations.series.overflowed},
		{schema.NodeLoad, &c.gauges.loadOverflowed},
		{schema.Errors, &c.errorsCtr.series.overflowed},
		{schema.BudgetUtilization, &c.gauges.budgetOverflowed},
	}
	if g := c.genai; g != nil {
		src = append(src, []struct {
			name string
			n    *atomic.Int64
		}{
			{schema.GenAITokenUsage, &g.tokensOverflowed},
			{schema.GenAIOperationDuration, &g.durationOverflowed},
		}...)
	}
	out := make([]overflowSource, len(src))
	for i, s := range src {
		out[i] = overflowSource{metric: s.name, n: s.n, opts: observeOptions(attribute.String(schema.KeyMetric, s.name))}
	}
	return out
}

// Overflowed returns how many records since New got no series of their own
// because their metric had reached the cardinality limit, over all metrics:
// counter and histogram records that went to the overflow series, and gauge
// updates rejected with ErrCardinalityLimit. The same figure, by metric, is
// exported as orchestrator_collector_overflow_total, at 0 from the start.
func (c *Collector) Overflowed() int64 {
	if c == nil {
		return 0
	}
	var n int64
	for _, s := range c.overflowSources() {
		n += s.n.Load()
	}
	return n
}

// gaugeLimitError counts and describes an update refused because its gauge
// reports as many series as the cardinality limit allows.
func (c *Collector) gaugeLimitError(n *atomic.Int64, metricName, labels string) error {
	n.Add(1)
	err := fmt.Errorf("%w: %s already reports %d series; %s would start another (update an existing series or Forget one)",
		ErrCardinalityLimit, metricName, c.gauges.max, labels)
	if c.logger.Enabled(bgCtx, levelDebug) {
		c.logger.Debug("record rejected", "reason", "cardinality_limit", "error", err)
	}
	return err
}
