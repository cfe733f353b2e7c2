package otelcollector

import (
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel/metric"
)

// Go runtime metrics (WithRuntimeMetrics).
//
// The contrib package reports the live goroutines as go.goroutine.count,
// the semantic-convention name, which the Prometheus exporter turns into
// go_goroutine_count: a gauge whose _count suffix `promtool check metrics`
// reports ("non-histogram and non-summary metrics should not have _count
// suffix"). The Collector reports it as go.goroutines instead, scraped as
// go_goroutines, the name client_golang's Go collector gives the same
// figure. Only that one runtime instrument is renamed; the orchestrator_*
// series and the other runtime series keep their names.
//
// The rename happens where contrib creates the instrument, through the
// MeterProvider handed to runtime.Start, not with a View: the Collector's
// MeterProvider already has a wildcard View (no exemplars for the in-memory
// reader), and in the SDK every matching View makes a stream of its own, so
// a renaming View would add go_goroutines beside go_goroutine_count rather
// than replace it.
const (
	goroutineCountName = "go.goroutine.count"
	goroutinesName     = "go.goroutines"
)

// startRuntime registers the Go runtime metrics of
// go.opentelemetry.io/contrib/instrumentation/runtime on the Collector's
// MeterProvider when WithRuntimeMetrics is given.
//
// runtime.Start returns no registration to unregister: its observable
// instruments live on our MeterProvider and start no goroutine, so Close,
// which shuts the provider down, is what stops them.
func (c *Collector) startRuntime(cfg config) error {
	if !cfg.runtimeMetrics {
		return nil
	}
	if err := runtime.Start(runtime.WithMeterProvider(renamingProvider{c.provider})); err != nil {
		return fmt.Errorf("otelcollector: starting runtime metrics: %w", err)
	}
	return nil
}

// renamingProvider hands out Meters that create go.goroutine.count under
// goroutinesName; everything else goes to the wrapped provider unchanged.
type renamingProvider struct{ metric.MeterProvider }

func (p renamingProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return renamingMeter{p.MeterProvider.Meter(name, opts...)}
}

type renamingMeter struct{ metric.Meter }

func (m renamingMeter) Int64ObservableUpDownCounter(name string, opts ...metric.Int64ObservableUpDownCounterOption) (metric.Int64ObservableUpDownCounter, error) {
	if name == goroutineCountName {
		name = goroutinesName
	}
	return m.Meter.Int64ObservableUpDownCounter(name, opts...)
}
