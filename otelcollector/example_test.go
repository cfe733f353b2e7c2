package otelcollector_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// Example records a message's work and reads it back through an SDK
// ManualReader. A program would pass an exporter instead:
// otelcollector.WithExporter(exp) with exp from exporters/prometheus or
// exporters/otlp.
func Example() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	c, err := otelcollector.New(ctx, otelcollector.WithReader(reader))
	if err != nil {
		panic(err)
	}
	defer c.Close(ctx)

	_ = c.RecordSessionStart(ctx, "orch-1", "claude-code")
	_ = c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", 1200)
	_ = c.RecordToolInvocation(ctx, "orch-1", "bash", otelcollector.ToolSuccess)
	_ = c.RecordMessageLatency(ctx, "orch-1", 800*time.Millisecond)

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(ctx, &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			if m.Name != "orchestrator.collector.rejected" && m.Name != "orchestrator.collector.overflow" {
				fmt.Println(m.Name, d.DataPoints[0].Value)
			}
		case metricdata.Histogram[float64]:
			fmt.Println(m.Name, d.DataPoints[0].Count, d.DataPoints[0].Sum)
		}
	}
	// Unordered output:
	// orchestrator.sessions.active 1
	// orchestrator.tokens.used 1200
	// orchestrator.tool.invocations 1
	// orchestrator.message.latency 1 0.8
}

// ExampleCollector_RecordTokenUsage shows the error a bad record returns:
// it wraps a sentinel and names the field, and the record is dropped.
func ExampleCollector_RecordTokenUsage() {
	ctx := context.Background()
	c, _ := otelcollector.New(ctx)
	defer c.Close(ctx)

	err := c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", -3)
	fmt.Println(errors.Is(err, otelcollector.ErrInvalidValue), err)
	err = c.RecordTokenUsage(ctx, "", "claude-sonnet", 3)
	fmt.Println(errors.Is(err, otelcollector.ErrInvalidLabel), err)
	fmt.Println("rejected:", c.Rejected())
	// Output:
	// true otelcollector: invalid value: tokens -3 is negative
	// true otelcollector: invalid label value: orchestratorID is empty
	// rejected: 2
}

// ExampleWithMetrics times a function, records its latency, and records an
// error of type function_execution_error when it fails.
func ExampleWithMetrics() {
	ctx := context.Background()
	c, _ := otelcollector.New(ctx)
	defer c.Close(ctx)

	answer, err := otelcollector.WithMetrics(ctx, c, "orch-1", func(ctx context.Context) (string, error) {
		return "42", nil
	})
	fmt.Println(answer, err)
	// Output: 42 <nil>
}

// ExampleCollector_StartTimer measures a span of work without allocating.
func ExampleCollector_StartTimer() {
	ctx := context.Background()
	c, _ := otelcollector.New(ctx)
	defer c.Close(ctx)

	t := c.StartTimer()
	time.Sleep(time.Millisecond)
	err := c.RecordMessageLatency(ctx, "orch-1", t.Stop())
	fmt.Println(err)
	// Output: <nil>
}

// ExampleCollector_UpdateNodeLoad reports a node's load until the node is
// forgotten.
func ExampleCollector_UpdateNodeLoad() {
	ctx := context.Background()
	c, _ := otelcollector.New(ctx)
	defer c.Close(ctx)

	fmt.Println(c.UpdateNodeLoad("node-a", 0.42))
	fmt.Println(c.UpdateNodeLoad("node-a", 1.5))
	c.ForgetNode("node-a")
	// Output:
	// <nil>
	// otelcollector: invalid value: load 1.5 is outside 0..1
}
