package otelcollector_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// TestRecordAllocs asserts that every record method allocates nothing once
// its series exists, in both counter modes: the Collector's methods with
// string labels, the gauges on existing series, the Timer, WithMetrics
// (beyond what its function does) and each bound handle method.
func TestRecordAllocs(t *testing.T) {
	if raceDetector {
		t.Skip("allocation counts are not meaningful under -race")
	}
	modes := []struct {
		name string
		opts []otelcollector.Option
	}{
		{"mode=synchronous", nil},
		{"mode=atomic", []otelcollector.Option{otelcollector.WithAtomicCounters()}},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			c, _ := newTestCollector(t, mode.opts...)
			o, err := c.Orchestrator("orch-1")
			if err != nil {
				t.Fatal(err)
			}
			tokens, err := o.Model("claude-sonnet")
			if err != nil {
				t.Fatal(err)
			}
			tool, err := o.Tool("search")
			if err != nil {
				t.Fatal(err)
			}
			sessions, err := o.SessionType("claude-code")
			if err != nil {
				t.Fatal(err)
			}
			errs, err := o.ErrorType("timeout")
			if err != nil {
				t.Fatal(err)
			}
			errFn := errors.New("fn failed")
			ok := func(err error) {
				if err != nil {
					t.Fatal(err)
				}
			}
			testCases := []struct {
				name string
				f    func()
			}{
				{"Collector.RecordSessionStart+End", func() {
					ok(c.RecordSessionStart(ctx, "orch-1", "claude-code"))
					ok(c.RecordSessionEnd(ctx, "orch-1", "claude-code"))
				}},
				{"Collector.RecordTokenUsage", func() { ok(c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", 42)) }},
				{"Collector.RecordMessageLatency", func() { ok(c.RecordMessageLatency(ctx, "orch-1", 250*time.Millisecond)) }},
				{"Collector.RecordToolInvocation", func() { ok(c.RecordToolInvocation(ctx, "orch-1", "search", otelcollector.ToolSuccess)) }},
				{"Collector.RecordDelegation", func() {
					ok(c.RecordDelegation(ctx, "orch-1", "orch-2", otelcollector.DelegationSuccess))
				}},
				{"Collector.RecordError", func() { ok(c.RecordError(ctx, "orch-1", "timeout")) }},
				{"Collector.UpdateNodeLoad", func() { ok(c.UpdateNodeLoad("node-a", 0.5)) }},
				{"Collector.UpdateBudgetUtilization", func() { ok(c.UpdateBudgetUtilization("orch-1", otelcollector.PeriodDaily, 42)) }},
				{"Collector.StartTimer+Stop", func() { _ = c.StartTimer().Stop() }},
				{"WithMetrics/success", func() {
					_, _ = otelcollector.WithMetrics(ctx, c, "orch-1", func(context.Context) (int, error) { return 1, nil })
				}},
				{"WithMetrics/failure", func() {
					_, _ = otelcollector.WithMetrics(ctx, c, "orch-1", func(context.Context) (int, error) { return 0, errFn })
				}},
				{"Orchestrator.RecordTokenUsage", func() { ok(o.RecordTokenUsage(ctx, "claude-sonnet", 42)) }},
				{"Orchestrator.RecordMessageLatency", func() { ok(o.RecordMessageLatency(ctx, time.Second)) }},
				{"Orchestrator.RecordToolInvocation", func() { ok(o.RecordToolInvocation(ctx, "search", otelcollector.ToolError)) }},
				{"Orchestrator.RecordSessionStart+End", func() {
					ok(o.RecordSessionStart(ctx, "ruflo"))
					ok(o.RecordSessionEnd(ctx, "ruflo"))
				}},
				{"Orchestrator.RecordDelegation", func() { ok(o.RecordDelegation(ctx, "orch-3", otelcollector.DelegationError)) }},
				{"Orchestrator.RecordError", func() { ok(o.RecordError(ctx, "rate_limit")) }},
				{"TokenCounter.Add", func() { ok(tokens.Add(ctx, 42)) }},
				{"ToolCounter.Inc", func() { ok(tool.Inc(ctx, otelcollector.ToolTimeout)) }},
				{"SessionCounter.Start+End", func() {
					ok(sessions.Start(ctx))
					ok(sessions.End(ctx))
				}},
				{"ErrorCounter.Inc", func() { ok(errs.Inc(ctx)) }},
			}
			for _, tc := range testCases {
				t.Run(tc.name, func(t *testing.T) {
					tc.f() // create the series
					if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
						t.Errorf("%s: %v allocs per call, want 0", tc.name, n)
					}
				})
			}
		})
	}
}
