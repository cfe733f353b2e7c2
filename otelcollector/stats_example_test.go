package otelcollector_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

func ExampleCollector_AggregatedStats() {
	ctx := context.Background()
	c, err := otelcollector.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)

	_ = c.RecordSessionStart(ctx, "orch-1", "claude-code")
	_ = c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", 1200)
	_ = c.RecordTokenUsage(ctx, "orch-1", "claude-haiku", 300)
	for _, ms := range []int{120, 250, 400, 900} {
		_ = c.RecordMessageLatency(ctx, "orch-1", time.Duration(ms)*time.Millisecond)
	}
	_ = c.RecordToolInvocation(ctx, "orch-1", "bash", otelcollector.ToolSuccess)
	_ = c.RecordToolInvocation(ctx, "orch-1", "web_search", otelcollector.ToolTimeout)
	_ = c.RecordError(ctx, "orch-1", "rate_limit")
	_ = c.RecordDelegation(ctx, "orch-1", "orch-2", otelcollector.DelegationSuccess)

	// The last five minutes, up to now: everything recorded above.
	st, err := c.AggregatedStats(ctx, "orch-1", otelcollector.Last(5*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("active sessions:", st.ActiveSessions)
	fmt.Println("tokens:", st.TotalTokens, st.TokensByModel)
	fmt.Printf("messages: %d, average %v, p50 %v\n",
		st.Messages, st.AvgLatency.Round(10*time.Millisecond), st.P50Latency.Round(10*time.Millisecond))
	fmt.Printf("tool calls: %d, failed %d (%.0f%%)\n", st.ToolInvocations, st.FailedToolCalls, 100*st.ToolFailureRate)
	fmt.Printf("errors: %d, error rate %.3f\n", st.Errors, st.ErrorRate)
	fmt.Println("delegations out/in:", st.DelegationsOut, st.DelegationsIn)
	// Output:
	// active sessions: 1
	// tokens: 1500 map[claude-haiku:300 claude-sonnet:1200]
	// messages: 4, average 420ms, p50 250ms
	// tool calls: 2, failed 1 (50%)
	// errors: 1, error rate 0.167
	// delegations out/in: 1 0
}
