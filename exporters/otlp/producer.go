package otlp

import (
	"context"
	"errors"
	"sync/atomic"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// lateProducer is the Producer the exporter's reader is built with; the
// Collector's Producer is set into it later, by SetProducer. Until then it
// produces nothing.
type lateProducer struct {
	p atomic.Pointer[sdkmetric.Producer]
}

var _ sdkmetric.Producer = (*lateProducer)(nil)

func (l *lateProducer) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
	p := l.p.Load()
	if p == nil {
		return nil, nil
	}
	return (*p).Produce(ctx)
}

// errProducerSet is returned by SetProducer when the exporter already has
// a producer: it is used by another Collector.
var errProducerSet = errors.New("otlp: exporter already used by a Collector")

// SetProducer is called by otelcollector.New, once: the reader then also
// reads p, the Collector's recorded series (otelcollector.ProducerExporter).
// It fails if a producer is already set.
func (e *Exporter) SetProducer(p sdkmetric.Producer) error {
	if p == nil {
		return errors.New("otlp: SetProducer(nil)")
	}
	if !e.producer.p.CompareAndSwap(nil, &p) {
		return errProducerSet
	}
	return nil
}

// Temporality is the temporality the exporter sends each kind with
// (WithTemporality, or the OTel exporter's environment variables).
func (e *Exporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return e.exporter.Temporality(k)
}
