// Package lateproducer holds an sdkmetric.Producer that is known only after
// the reader reading it was built: the exporters build their SDK reader in
// their own New, and otelcollector.New hands them the Collector's series
// later (otelcollector.ProducerExporter). Both exporters share this one
// type, so that the rule "one Collector per exporter" is enforced alike.
package lateproducer

import (
	"context"
	"errors"
	"sync/atomic"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Errors of Set. The exporters wrap them with their own name.
var (
	// ErrNil: Set was given a nil Producer.
	ErrNil = errors.New("SetProducer(nil)")
	// ErrAlreadySet: a Producer was set before, by another Collector.
	ErrAlreadySet = errors.New("exporter already used by a Collector")
)

// Producer produces what the Producer set into it produces, and nothing
// until one is set. The zero value is ready to use; it is safe for
// concurrent use.
type Producer struct {
	p atomic.Pointer[sdkmetric.Producer]
}

var _ sdkmetric.Producer = (*Producer)(nil)

// Produce implements sdkmetric.Producer.
func (l *Producer) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
	p := l.p.Load()
	if p == nil {
		return nil, nil
	}
	return (*p).Produce(ctx)
}

// Set sets p, once: a second call fails with ErrAlreadySet.
func (l *Producer) Set(p sdkmetric.Producer) error {
	if p == nil {
		return ErrNil
	}
	if !l.p.CompareAndSwap(nil, &p) {
		return ErrAlreadySet
	}
	return nil
}
