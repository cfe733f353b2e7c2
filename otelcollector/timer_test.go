package otelcollector_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// TestTimer: Stop is a pure read of the monotonic clock; each Stop returns
// the time since StartTimer (at least the time slept, and non-decreasing,
// strictly after a sleep), and the zero Timer returns 0, however often it
// is stopped.
func TestTimer(t *testing.T) {
	c, _ := newTestCollector(t)
	tm := c.StartTimer()
	time.Sleep(2 * time.Millisecond)
	d1 := tm.Stop()
	d2 := tm.Stop()
	time.Sleep(2 * time.Millisecond)
	d3 := tm.Stop()
	if d1 < 2*time.Millisecond || d2 < d1 || d3 <= d2 || d3 < 4*time.Millisecond {
		t.Fatalf("Stop = %v, %v, then after a sleep %v; want >= 2ms, non-decreasing, and larger after the sleep", d1, d2, d3)
	}
	var zero otelcollector.Timer
	//lint:ignore SA4000 two calls on purpose: a zero Timer stopped twice
	if zero.Stop() != 0 || zero.Stop() != 0 {
		t.Fatal("zero Timer's Stop is not 0")
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
