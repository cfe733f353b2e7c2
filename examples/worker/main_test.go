package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/otelcollectortest"
)

// TestRun runs a small batch on a loopback port and checks the summary
// accounts for every job.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), options{addr: "127.0.0.1:0", workers: 3, jobs: 60}, &out); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^orch-\S+: messages=(\d+) .* tool_calls=(\d+) failed=(\d+) errors=(\d+)$`)
	var messages, calls int
	for _, m := range re.FindAllStringSubmatch(out.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		k, _ := strconv.Atoi(m[2])
		failed, _ := strconv.Atoi(m[3])
		errs, _ := strconv.Atoi(m[4])
		if failed != errs {
			t.Errorf("failed tool calls %d != errors %d (each failed job records one error)", failed, errs)
		}
		messages += n
		calls += k
	}
	if messages != 60 || calls != 60 {
		t.Errorf("summary accounts for %d messages and %d tool calls, want 60 each:\n%s", messages, calls, out.String())
	}
}

// TestWorkRecords runs the workers on an otelcollectortest Collector, no
// server: every job is one tool call and one message, every session that
// started has ended, and nothing was rejected.
func TestWorkRecords(t *testing.T) {
	c := otelcollectortest.New(t, otelcollector.WithGenAIMetrics())
	var out bytes.Buffer
	if err := work(context.Background(), c.Collector, options{workers: 3, jobs: 60}, &out); err != nil {
		t.Fatal(err)
	}
	var calls, messages float64
	for _, orch := range orchestrators {
		for _, tool := range tools {
			for _, status := range []string{"success", "timeout"} {
				v, err := c.Value("orchestrator_tool_invocations_total", map[string]string{
					"orchestrator_id": orch, "tool_name": tool, "status": status,
				})
				if err != nil && !errors.Is(err, otelcollectortest.ErrNoSeries) {
					t.Fatal(err)
				}
				calls += v
			}
		}
		messages += c.ToFloat64(t, "orchestrator_message_latency_seconds_count", map[string]string{"orchestrator_id": orch})
	}
	if calls != 60 || messages != 60 {
		t.Errorf("recorded %v tool calls and %v messages, want 60 each", calls, messages)
	}

	// Both orchestrators got jobs (60 drawn at random from 2): each has a
	// worker session series, back at 0 once the queue is drained.
	const sessions = `
# HELP orchestrator_sessions_active Number of agent sessions currently active, by orchestrator and session type.
# TYPE orchestrator_sessions_active gauge
orchestrator_sessions_active{orchestrator_id="orch-eu-1",session_type="worker"} 0
orchestrator_sessions_active{orchestrator_id="orch-us-1",session_type="worker"} 0
`
	if err := c.Compare(strings.NewReader(sessions), "orchestrator_sessions_active"); err != nil {
		t.Error(err)
	}
	if n := c.ToFloat64(t, "orchestrator_collector_rejected_total", map[string]string{"reason": "empty_label"}); n != 0 {
		t.Errorf("%v records rejected", n)
	}
}
