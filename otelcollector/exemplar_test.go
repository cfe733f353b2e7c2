package otelcollector_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

const openMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"

// TestLatencyExemplar records latencies with a sampled span in ctx, through
// the Collector and through a bound handle, and an unsampled one: an
// OpenMetrics scrape shows the sampled trace ids as exemplars on the
// latency buckets, and the unsampled trace id nowhere.
func TestLatencyExemplar(t *testing.T) {
	exp, err := prometheus.New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	spanCtx := func(tid byte, flags trace.TraceFlags) context.Context {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    trace.TraceID{tid, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
			SpanID:     trace.SpanID{tid, 1, 2, 3, 4, 5, 6, 7},
			TraceFlags: flags,
		})
		return trace.ContextWithSpanContext(context.Background(), sc)
	}
	sampled, bound, unsampled := spanCtx(0xa1, trace.FlagsSampled), spanCtx(0xb2, trace.FlagsSampled), spanCtx(0xc3, 0)

	if err := c.RecordMessageLatency(sampled, "orch-1", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	o, err := c.Orchestrator("orch-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.RecordMessageLatency(bound, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordMessageLatency(unsampled, "orch-3", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}

	om := scrapeText(t, exp.Handler(), openMetrics)
	for _, want := range []string{
		`orchestrator_message_latency_seconds_bucket{orchestrator_id="orch-1",le="0.5"} 1 # {trace_id="a10102030405060708090a0b0c0d0e0f",span_id="a101020304050607"} 0.3 `,
		`orchestrator_message_latency_seconds_bucket{orchestrator_id="orch-2",le="5.0"} 1 # {trace_id="b20102030405060708090a0b0c0d0e0f",span_id="b201020304050607"} 3.0 `,
	} {
		if !strings.Contains(om, want) {
			t.Errorf("OpenMetrics scrape lacks exemplar line\n%s\n%s", want, om)
		}
	}
	if strings.Contains(om, "c30102030405060708090a0b0c0d0e0f") {
		t.Errorf("unsampled trace id appears as an exemplar:\n%s", om)
	}
	if !strings.HasSuffix(om, "# EOF\n") {
		t.Errorf("not an OpenMetrics exposition (no # EOF):\n%s", om)
	}

	// The classic text format has no exemplars; the scrape stays valid.
	if txt := scrapeText(t, exp.Handler(), ""); strings.Contains(txt, "trace_id") {
		t.Errorf("text-format scrape carries exemplars:\n%s", txt)
	}
}
