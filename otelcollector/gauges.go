package otelcollector

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// gaugeValue is the last value of one gauge series with its cached option.
type gaugeValue struct {
	value float64
	opts  []metric.ObserveOption
}

type budgetKey struct {
	orchestratorID string
	period         BudgetPeriod
}

// gaugeState keeps the last value per series of the two observable gauges;
// the registered callback reports them at each collection.
//
// Each map holds at most max series, limit-1 for a cardinality limit of
// limit: the SDK keeps limit-1 attribute sets per instrument and would fold
// any further one into an overflow series, and the last value of an
// arbitrary node is no use to anyone. A new series past max is rejected with
// ErrCardinalityLimit and counted; existing series keep updating.
type gaugeState struct {
	mu     sync.Mutex
	max    int
	load   map[string]*gaugeValue
	budget map[budgetKey]*gaugeValue

	loadOverflowed, budgetOverflowed atomic.Int64
}

func (g *gaugeState) init(limit int) {
	g.max = limit - 1
	g.load = map[string]*gaugeValue{}
	g.budget = map[budgetKey]*gaugeValue{}
}

func observeOptions(kvs ...attribute.KeyValue) []metric.ObserveOption {
	return []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}

// UpdateNodeLoad sets the load of nodeID, from 0 (idle) to 1 (saturated),
// reported as orchestrator_node_load at each collection until ForgetNode.
// A node not yet reported when the gauge already reports the cardinality
// limit minus one nodes is rejected with ErrCardinalityLimit.
func (c *Collector) UpdateNodeLoad(nodeID string, load float64) error {
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	defer c.leave(slot)
	if r := validate.Label(nodeID); r != validate.OK {
		return c.reject(r, "nodeID", nodeID)
	}
	if r := validate.UnitInterval(load); r != validate.OK {
		return c.reject(r, "load", load)
	}
	g := &c.gauges
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.load[nodeID]; ok {
		v.value = load
		return nil
	}
	if len(g.load) >= g.max {
		return c.gaugeLimitError(&g.loadOverflowed, schema.NodeLoad, "node_id "+strconv.Quote(nodeID))
	}
	g.load[nodeID] = &gaugeValue{value: load, opts: observeOptions(attribute.String(schema.KeyNodeID, nodeID))}
	return nil
}

// ForgetNode stops reporting nodeID's load, so a departed node does not
// linger in scrapes. Forgetting an unknown node is a no-op.
func (c *Collector) ForgetNode(nodeID string) {
	if c == nil {
		return
	}
	g := &c.gauges
	g.mu.Lock()
	delete(g.load, nodeID)
	g.mu.Unlock()
}

// UpdateBudgetUtilization sets the budget utilization of orchestratorID for
// period, in percent, reported as orchestrator_budget_utilization_percent
// until ForgetBudget. Values above 100 (over budget) are accepted; negative,
// NaN and infinite ones are rejected. A series not yet reported when the
// gauge already reports the cardinality limit minus one series is rejected
// with ErrCardinalityLimit.
func (c *Collector) UpdateBudgetUtilization(orchestratorID string, period BudgetPeriod, percent float64) error {
	slot, ok := c.enter()
	if !ok {
		return c.reject(validate.Closed, "", nil)
	}
	defer c.leave(slot)
	if r := validate.Label(orchestratorID); r != validate.OK {
		return c.reject(r, "orchestratorID", orchestratorID)
	}
	if !period.valid() {
		return c.reject(validate.UnknownStatus, "period", string(period))
	}
	if r := validate.NonNegativeFloat(percent); r != validate.OK {
		return c.reject(r, "percent", percent)
	}
	k := budgetKey{orchestratorID, period}
	g := &c.gauges
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.budget[k]; ok {
		v.value = percent
		return nil
	}
	if len(g.budget) >= g.max {
		return c.gaugeLimitError(&g.budgetOverflowed, schema.BudgetUtilization,
			"orchestrator_id "+strconv.Quote(orchestratorID)+" period "+string(period))
	}
	g.budget[k] = &gaugeValue{value: percent, opts: observeOptions(
		attribute.String(schema.KeyOrchestratorID, orchestratorID),
		attribute.String(schema.KeyPeriod, string(period)))}
	return nil
}

// ForgetBudget stops reporting the budget series of orchestratorID and
// period. Forgetting an unknown series is a no-op.
func (c *Collector) ForgetBudget(orchestratorID string, period BudgetPeriod) {
	if c == nil {
		return
	}
	g := &c.gauges
	g.mu.Lock()
	delete(g.budget, budgetKey{orchestratorID, period})
	g.mu.Unlock()
}

// observeGauges returns the callback that reports both gauges.
func (c *Collector) observeGauges(load, budget metric.Float64Observable) metric.Callback {
	return func(_ context.Context, o metric.Observer) error {
		g := &c.gauges
		g.mu.Lock()
		for _, v := range g.load {
			o.ObserveFloat64(load, v.value, v.opts...)
		}
		for _, v := range g.budget {
			o.ObserveFloat64(budget, v.value, v.opts...)
		}
		g.mu.Unlock()
		return nil
	}
}

// observeSelf returns the callback that reports the rejection and overflow
// counters. Each rejection reason is reported from the start, at 0, so that
// rate() and alerts work before the first rejection, and so is each
// metric's overflow count: an overflow series that first appears above 0
// would leave increase() at 0 and make alerts misfire across gaps and
// restarts.
func (c *Collector) observeSelf(rejected, overflowed metric.Int64Observable) metric.Callback {
	overflows := c.overflowSources()
	reasons := validate.Reasons()
	reasonOpts := make([][]metric.ObserveOption, len(reasons))
	for i, r := range reasons {
		reasonOpts[i] = observeOptions(attribute.String(schema.KeyReason, r.String()))
	}
	return func(_ context.Context, o metric.Observer) error {
		for i, r := range reasons {
			o.ObserveInt64(rejected, c.rejected.Load(r), reasonOpts[i]...)
		}
		for _, s := range overflows {
			o.ObserveInt64(overflowed, s.n.Load(), s.opts...)
		}
		return nil
	}
}
