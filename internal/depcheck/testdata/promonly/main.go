// Command promonly is the smallest program that pulls with the Prometheus
// exporter and never pushes; internal/depcheck checks that it links no gRPC.
package main

import (
	"context"
	"log"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

func main() {
	ctx := context.Background()
	exp, err := prometheus.New()
	if err != nil {
		log.Fatal(err)
	}
	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.RecordTokenUsage(ctx, "orch-1", "model-a", 1); err != nil {
		log.Fatal(err)
	}
}
