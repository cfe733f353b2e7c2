package prometheus

import (
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// SetProducer is called by otelcollector.New, once: the reader then also
// reads p, the Collector's recorded series (otelcollector.ProducerExporter).
// It fails if p is nil or a producer is already set, that is when another
// Collector uses the exporter.
func (e *Exporter) SetProducer(p sdkmetric.Producer) error {
	if err := e.producer.Set(p); err != nil {
		return fmt.Errorf("prometheus: %w", err)
	}
	return nil
}

// Temporality is cumulative for every kind: what Prometheus reads.
func (e *Exporter) Temporality(sdkmetric.InstrumentKind) metricdata.Temporality {
	return metricdata.CumulativeTemporality
}
