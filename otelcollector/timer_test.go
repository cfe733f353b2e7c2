package otelcollector_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

func TestTimer(t *testing.T) {
	c, _ := newTestCollector(t)
	tm := c.StartTimer()
	time.Sleep(5 * time.Millisecond)
	d1 := tm.Stop()
	d2 := tm.Stop()
	if d1 < 5*time.Millisecond || d2 < d1 {
		t.Fatalf("Stop = %v then %v; want >= 5ms and non-decreasing", d1, d2)
	}
	var zero otelcollector.Timer
	if zero.Stop() != 0 {
		t.Fatal("zero Timer Stop != 0")
	}
}

func latencyPoint(t *testing.T, m metricdata.Metrics) metricdata.HistogramDataPoint[float64] {
	t.Helper()
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 {
		t.Fatalf("latency: %#v", m.Data)
	}
	return h.DataPoints[0]
}

func TestWithMetrics(t *testing.T) {
	ctx := context.Background()
	errBoom := errors.New("boom")
	testCases := []struct {
		name       string
		fn         func(context.Context) (int, error)
		wantV      int
		wantErr    error
		wantErrors int64
	}{
		{"success", func(context.Context) (int, error) { return 42, nil }, 42, nil, 0},
		{"failure", func(context.Context) (int, error) { return 7, errBoom }, 7, errBoom, 1},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			c, r := newTestCollector(t)
			v, err := otelcollector.WithMetrics(ctx, c, "o", tc.fn)
			if v != tc.wantV || err != tc.wantErr {
				t.Fatalf("got %v, %v; want %v, %v", v, err, tc.wantV, tc.wantErr)
			}
			ms := collect(t, r)
			if dp := latencyPoint(t, ms["orchestrator.message.latency"]); dp.Count != 1 {
				t.Errorf("latency count %d, want 1", dp.Count)
			}
			got, _ := intValue(ms["orchestrator.errors"], set("orchestrator_id", "o", "error_type", otelcollector.ErrorTypeFunctionExecution))
			if got != tc.wantErrors {
				t.Errorf("errors %d, want %d", got, tc.wantErrors)
			}
		})
	}
}

func TestWithMetricsPanic(t *testing.T) {
	c, r := newTestCollector(t)
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Fatalf("recovered %v, want the original panic value", p)
			}
		}()
		_, _ = otelcollector.WithMetrics(context.Background(), c, "o", func(context.Context) (struct{}, error) {
			panic("kaboom")
		})
	}()
	ms := collect(t, r)
	if dp := latencyPoint(t, ms["orchestrator.message.latency"]); dp.Count != 1 {
		t.Errorf("latency count %d, want 1", dp.Count)
	}
	if got, _ := intValue(ms["orchestrator.errors"], set("orchestrator_id", "o", "error_type", otelcollector.ErrorTypeFunctionExecution)); got != 1 {
		t.Errorf("errors %d, want 1", got)
	}
}

func TestWithMetricsInvalidIDStillRunsFn(t *testing.T) {
	var handled []error
	c, _ := newTestCollector(t, otelcollector.WithErrorHandler(func(err error) { handled = append(handled, err) }))
	ran := false
	v, err := otelcollector.WithMetrics(context.Background(), c, "", func(context.Context) (string, error) {
		ran = true
		return "ok", nil
	})
	if !ran || v != "ok" || err != nil {
		t.Fatalf("ran=%v v=%q err=%v", ran, v, err)
	}
	if c.Rejected() == 0 {
		t.Error("the invalid orchestrator id was not counted")
	}
	if len(handled) == 0 || !errors.Is(handled[0], otelcollector.ErrInvalidLabel) {
		t.Errorf("error handler got %v, want the ErrInvalidLabel", handled)
	}
}
