package prometheus

import (
	"fmt"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/otlptranslator"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

// strategy turns the OTel names and units of internal/schema into the
// exact legacy Prometheus names.
var strategy = otlptranslator.UnderscoreEscapingWithSuffixes

// ownMetrics are the series names this library always owns: the eight
// orchestrator metrics and the collector's own two counters.
var ownMetrics = []otlptranslator.Metric{
	{Name: schema.SessionsActive, Unit: schema.UnitSessions, Type: otlptranslator.MetricTypeNonMonotonicCounter},
	{Name: schema.TokensUsed, Unit: schema.UnitTokens, Type: otlptranslator.MetricTypeMonotonicCounter},
	{Name: schema.MessageLatency, Unit: schema.UnitSeconds, Type: otlptranslator.MetricTypeHistogram},
	{Name: schema.ToolInvocations, Unit: schema.UnitInvocations, Type: otlptranslator.MetricTypeMonotonicCounter},
	{Name: schema.Delegations, Unit: schema.UnitDelegations, Type: otlptranslator.MetricTypeMonotonicCounter},
	{Name: schema.NodeLoad, Type: otlptranslator.MetricTypeGauge},
	{Name: schema.Errors, Unit: schema.UnitErrors, Type: otlptranslator.MetricTypeMonotonicCounter},
	{Name: schema.BudgetUtilization, Unit: schema.UnitPercent, Type: otlptranslator.MetricTypeGauge},
	{Name: schema.CollectorRejected, Unit: schema.UnitRecords, Type: otlptranslator.MetricTypeMonotonicCounter},
	{Name: schema.CollectorOverflow, Unit: schema.UnitRecords, Type: otlptranslator.MetricTypeMonotonicCounter},
}

// ownNames returns the Prometheus names of ownMetrics.
func ownNames() ([]string, error) {
	namer := otlptranslator.NewMetricNamer("", strategy)
	names := make([]string, 0, len(ownMetrics))
	for _, m := range ownMetrics {
		n, err := namer.Build(m)
		if err != nil {
			return nil, fmt.Errorf("exporters/prometheus: naming %s: %w", m.Name, err)
		}
		names = append(names, n)
	}
	return names, nil
}

// claim is a checked collector that describes the library's series names
// and collects nothing. Registering it makes the registry refuse a second
// exporter, or an application metric, with any of those names; the
// series themselves come from the unchecked forwarder, so that pedantic
// registries do not check them against these label-less descriptions.
type claim struct{ descs []*promclient.Desc }

func newClaim() (*claim, error) {
	names, err := ownNames()
	if err != nil {
		return nil, err
	}
	c := &claim{descs: make([]*promclient.Desc, len(names))}
	for i, n := range names {
		c.descs[i] = promclient.NewDesc(n, "Reserved by github.com/wundr-io/orchestrator-otel/exporters/prometheus.", nil, nil)
	}
	return c, nil
}

func (c *claim) Describe(ch chan<- *promclient.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (*claim) Collect(chan<- promclient.Metric) {}

// capture is the Registerer handed to the OTel exporter: it keeps the
// collector that exporter registers, for the Exporter to register where it
// decides.
type capture struct{ c promclient.Collector }

func (r *capture) Register(c promclient.Collector) error {
	r.c = c
	return nil
}

func (r *capture) MustRegister(cs ...promclient.Collector) {
	for _, c := range cs {
		r.c = c
	}
}

func (r *capture) Unregister(promclient.Collector) bool { return false }

// forwarder is the unchecked collector registered for the series: it
// forwards to the OTel exporter's collector until the Exporter is shut
// down, and yields nothing after. (A registry cannot unregister an
// unchecked collector, so a closed one must go quiet by itself.)
type forwarder struct{ e *Exporter }

func (forwarder) Describe(chan<- *promclient.Desc) {}

func (f forwarder) Collect(ch chan<- promclient.Metric) {
	if f.e.closed.Load() {
		return
	}
	f.e.inner.Collect(ch)
}
