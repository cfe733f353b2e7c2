package otelcollector

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// orchestratorKeys are the attribute keys that carry an orchestrator ID.
var orchestratorKeys = []attribute.Key{
	attribute.Key(schema.KeyOrchestratorID),
	attribute.Key(schema.KeyFromOrchestrator),
	attribute.Key(schema.KeyToOrchestrator),
}

// ForgetOrchestrator forgets a departed orchestrator: every series that
// carries orchestratorID stops being exported (the five counters, the
// latency histogram, the budget gauge; delegations from and to it), its
// cardinality slots are freed for other orchestrators, and its history is
// dropped from AggregatedStats. A later record for the same ID starts a
// new series from 0, which Prometheus reads as a counter reset; over OTLP
// the new series has a start time after the forget.
//
// Forgetting applies to what exporters that implement ProducerExporter
// (exporters/prometheus, exporters/otlp) and AggregatedStats read. A reader
// given with WithReader reads the SDK's own cumulative state, which cannot
// delete a series of a synchronous instrument: there the orchestrator's
// counters and histogram keep their last value.
//
// Records for the orchestrator made while ForgetOrchestrator runs may land
// before or after it. Handles bound to the orchestrator stay valid: their
// next record starts the new series. Forgetting an ID never seen is a
// no-op; an invalid ID fails with ErrInvalidLabel, and after Close
// ForgetOrchestrator returns ErrClosed.
func (c *Collector) ForgetOrchestrator(orchestratorID string) error {
	if c == nil {
		return ErrNilHandle
	}
	if c.closed.Load() {
		return ErrClosed
	}
	if r := validate.Label(orchestratorID); r != validate.OK {
		return c.reject(r, "orchestratorID", orchestratorID)
	}
	id := orchestratorID
	first := func(k labelValues) bool { return k[0] == id }
	c.sessions.series.forget(first)
	c.tokens.series.forget(first)
	c.tools.series.forget(first)
	c.errorsCtr.series.forget(first)
	c.delegations.series.forget(func(k labelValues) bool { return k[0] == id || k[1] == id })
	c.latencySeries.forget(first)

	g := &c.gauges
	g.mu.Lock()
	for k := range g.budget {
		if k.orchestratorID == id {
			delete(g.budget, k)
		}
	}
	g.mu.Unlock()

	ctx := bgCtx
	var err error
	if c.store != nil {
		err = c.store.forget(ctx, id)
	}
	if c.stats != nil {
		err = errors.Join(err, c.stats.store.Forget(id))
	}
	if err != nil {
		return fmt.Errorf("otelcollector: ForgetOrchestrator: %w", err)
	}
	return nil
}

// ForgetOrchestrator is Collector.ForgetOrchestrator for the bound
// orchestrator. The handle stays usable: its next record starts anew.
func (o *Orchestrator) ForgetOrchestrator() error {
	if o == nil {
		return ErrNilHandle
	}
	return o.c.ForgetOrchestrator(o.id)
}
