package main

import (
	"context"
	"testing"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// TestSimulationLooksHealthy runs a week of simulated days (the quickstart's
// embedded default) and checks that no orchestrator's daily budget reaches
// the 90 % of OrchestratorBudgetUtilizationHigh: the budget starts again
// every simulated day. Before it did, the budget grew about 0.14 %/s
// forever and passed 90 % after about 10 minutes.
func TestSimulationLooksHealthy(t *testing.T) {
	c, err := otelcollector.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	s := newSimulation(c)
	ctx := context.Background()
	peak := map[string]float64{}
	resets := 0
	for i := 0; i < 7*stepsPerDay; i++ {
		before := s.budget[orchestrators[0]]
		s.step(ctx)
		for _, o := range orchestrators {
			peak[o] = max(peak[o], s.budget[o])
		}
		if s.budget[orchestrators[0]] < before {
			resets++
		}
	}
	for _, o := range orchestrators {
		if peak[o] >= 90 || peak[o] < 10 {
			t.Errorf("%s: daily budget peaked at %.1f %%, want a plausible share below 90 %%", o, peak[o])
		}
	}
	if resets != 6 {
		t.Errorf("budget of %s reset %d times in 7 simulated days, want 6", orchestrators[0], resets)
	}
	if n := c.Rejected(); n != 0 {
		t.Errorf("the simulation made %d rejected records", n)
	}
}
