package otlp_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/otlp"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// Push to a Collector on the same host over gRPC without TLS, every 10 s.
func Example() {
	ctx := context.Background()
	exp, err := otlp.New(ctx, otlp.WithEndpoint("127.0.0.1:4317"), otlp.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx) // pushes what is left

	_ = c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", 1200)
}

// Over HTTP with a bearer token, gzip and delta temporality.
func ExampleWithProtocol() {
	exp, err := otlp.New(context.Background(),
		otlp.WithProtocol(otlp.ProtocolHTTP),
		otlp.WithEndpointURL("https://collector.example:4318/v1/metrics"),
		otlp.WithHeaders(map[string]string{"Authorization": "Bearer <token>"}),
		otlp.WithGzip(),
		otlp.WithTemporality(otlp.Delta),
	)
	if err != nil {
		log.Fatal(err)
	}
	_ = exp // otelcollector.WithExporter(exp)
}

// The daemon starts while its Collector is down: New succeeds, the export
// fails and is counted.
func ExampleExporter_FailedExports() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := ln.Addr().String()
	ln.Close() // nothing listens there now

	ctx := context.Background()
	exp, err := otlp.New(ctx, otlp.WithProtocol(otlp.ProtocolHTTP), otlp.WithEndpoint(down),
		otlp.WithInsecure(), otlp.WithRetry(false), otlp.WithInterval(time.Hour))
	fmt.Println("New:", err)
	c, _ := otelcollector.New(ctx, otelcollector.WithExporter(exp))
	_ = c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", 1200)

	fmt.Println("Flush failed:", c.Flush(ctx) != nil)
	fmt.Println("FailedExports:", exp.FailedExports())
	_ = c.Close(ctx)
	// Output:
	// New: <nil>
	// Flush failed: true
	// FailedExports: 1
}
