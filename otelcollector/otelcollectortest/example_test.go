package otelcollectortest_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/otelcollectortest"
)

// handle is the code under test: it records one answered message.
func handle(ctx context.Context, c *otelcollector.Collector, orchestratorID string) error {
	return c.RecordTokenUsage(ctx, orchestratorID, "claude-sonnet", 1500)
}

func ExampleCollector_Value() {
	// In a test: c := otelcollectortest.New(t), closed when the test ends.
	c, err := otelcollectortest.NewCollector()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(context.Background())
	if err := handle(context.Background(), c.Collector, "orch-1"); err != nil {
		fmt.Println(err)
	}
	v, err := c.Value("orchestrator_tokens_used_total", map[string]string{
		"orchestrator_id": "orch-1", "model": "claude-sonnet",
	})
	fmt.Println(v, err)
	// Output: 1500 <nil>
}

func ExampleCollector_Compare() {
	// In a test: c := otelcollectortest.New(t), closed when the test ends.
	c, err := otelcollectortest.NewCollector()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(context.Background())
	if err := handle(context.Background(), c.Collector, "orch-1"); err != nil {
		fmt.Println(err)
	}
	const want = `
# HELP orchestrator_tokens_used_total LLM tokens consumed, by orchestrator and model.
# TYPE orchestrator_tokens_used_total counter
orchestrator_tokens_used_total{model="claude-sonnet",orchestrator_id="orch-1"} 1500
`
	fmt.Println(c.Compare(strings.NewReader(want), "orchestrator_tokens_used_total"))
	// Output: <nil>
}
