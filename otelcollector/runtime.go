package otelcollector

import (
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/runtime"
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
	if err := runtime.Start(runtime.WithMeterProvider(c.provider)); err != nil {
		return fmt.Errorf("otelcollector: starting runtime metrics: %w", err)
	}
	return nil
}
