package otelcollector_test

import (
	"context"
	"fmt"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// ExampleCollector_RecordTokenUsageDetailed records one model call with
// WithGenAIMetrics: the legacy counter gets the total, the GenAI histogram
// one observation per token type.
func ExampleCollector_RecordTokenUsageDetailed() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	c, err := otelcollector.New(ctx, otelcollector.WithReader(reader), otelcollector.WithGenAIMetrics())
	if err != nil {
		panic(err)
	}
	defer c.Close(ctx)

	err = c.RecordTokenUsageDetailed(ctx, "orch-1", otelcollector.TokenUsage{
		Model: "claude-sonnet", Provider: "anthropic", Input: 1200, Output: 300, Duration: 2 * time.Second,
	})
	fmt.Println(err)

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(ctx, &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			if m.Name == "orchestrator.tokens.used" {
				fmt.Println(m.Name, d.DataPoints[0].Value)
			}
		case metricdata.Histogram[int64]:
			for _, dp := range d.DataPoints {
				tt, _ := dp.Attributes.Value("gen_ai.token.type")
				fmt.Println(m.Name, tt.AsString(), dp.Sum)
			}
		case metricdata.Histogram[float64]:
			if m.Name == "gen_ai.client.operation.duration" {
				fmt.Println(m.Name, m.Unit, d.DataPoints[0].Sum)
			}
		}
	}
	// Unordered output:
	// <nil>
	// orchestrator.tokens.used 1500
	// gen_ai.client.token.usage input 1200
	// gen_ai.client.token.usage output 300
	// gen_ai.client.operation.duration s 2
}
