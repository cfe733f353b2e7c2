package lateproducer

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

type fixed []metricdata.ScopeMetrics

func (f fixed) Produce(context.Context) ([]metricdata.ScopeMetrics, error) { return f, nil }

func TestProducer(t *testing.T) {
	ctx := context.Background()
	var p Producer
	if sms, err := p.Produce(ctx); sms != nil || err != nil {
		t.Fatalf("before Set: %v, %v; want nothing", sms, err)
	}
	if err := p.Set(nil); !errors.Is(err, ErrNil) {
		t.Fatalf("Set(nil) = %v, want ErrNil", err)
	}
	want := fixed{{Scope: instrumentation.Scope{Name: "a"}}}
	if err := p.Set(want); err != nil {
		t.Fatal(err)
	}
	if err := p.Set(fixed{}); !errors.Is(err, ErrAlreadySet) {
		t.Fatalf("second Set = %v, want ErrAlreadySet", err)
	}
	sms, err := p.Produce(ctx)
	if err != nil || len(sms) != 1 || sms[0].Scope.Name != "a" {
		t.Fatalf("after Set: %v, %v; want the first producer's data", sms, err)
	}
}
