package otelcollector_test

import (
	"context"
	"fmt"
	"slices"
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
	for _, want := range []struct{ bucket, traceID, spanID, value string }{
		{`orchestrator_message_latency_seconds_bucket{orchestrator_id="orch-1",le="0.5"} 1`, "a10102030405060708090a0b0c0d0e0f", "a101020304050607", "0.3"},
		{`orchestrator_message_latency_seconds_bucket{orchestrator_id="orch-2",le="5.0"} 1`, "b20102030405060708090a0b0c0d0e0f", "b201020304050607", "3.0"},
	} {
		if err := findExemplar(om, want.bucket, want.traceID, want.spanID, want.value); err != nil {
			t.Errorf("%v\n%s", err, om)
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

// findExemplar finds the line of bucket and checks its exemplar:
// "<bucket> # {trace_id=...,span_id=...} <value> <timestamp>", with the two
// labels in either order (the exporter does not sort them).
func findExemplar(exposition, bucket, traceID, spanID, value string) error {
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, bucket+" # {")
		if !ok {
			continue
		}
		labels, after, ok := strings.Cut(rest, "} ")
		if !ok {
			return fmt.Errorf("malformed exemplar: %s", line)
		}
		got := strings.Split(labels, ",")
		slices.Sort(got)
		if want := []string{`span_id="` + spanID + `"`, `trace_id="` + traceID + `"`}; !slices.Equal(got, want) {
			return fmt.Errorf("exemplar labels %v, want %v", got, want)
		}
		if f := strings.Fields(after); len(f) != 2 || f[0] != value {
			return fmt.Errorf("exemplar value and timestamp %q, want %s and a timestamp", after, value)
		}
		return nil
	}
	return fmt.Errorf("no exemplar on %s", bucket)
}
