// Command quickstart runs a small simulated orchestrator that records every
// metric through otelcollector, serves them for Prometheus on loopback and
// prints a summary every few seconds until interrupted.
//
//	go run ./examples/quickstart
//	curl -s http://127.0.0.1:9464/metrics
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

func main() {
	addr := flag.String("addr", prometheus.DefaultAddress, "address of the /metrics endpoint")
	every := flag.Duration("every", 5*time.Second, "how often to print a summary")
	duration := flag.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := run(ctx, *addr, *every); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr string, every time.Duration) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	exp, err := prometheus.New(prometheus.WithServer(addr), prometheus.WithLogger(logger))
	if err != nil {
		return err
	}
	c, err := otelcollector.New(context.Background(),
		otelcollector.WithExporter(exp),
		otelcollector.WithLogger(logger),
		otelcollector.WithRuntimeMetrics(), // go_memory_used_bytes, go_goroutines, ...
	)
	if err != nil {
		return errors.Join(err, exp.Shutdown(context.Background()))
	}
	fmt.Printf("serving metrics on http://%s/metrics (Ctrl-C to stop)\n", exp.Addr())

	sim := newSimulation(c)
	tick := time.NewTicker(stepInterval)
	defer tick.Stop()
	report := time.NewTicker(every)
	defer report.Stop()
	for {
		select {
		case <-ctx.Done():
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := c.Close(closeCtx)
			sim.print()
			fmt.Println("stopped: metrics flushed and endpoint closed")
			return err
		case <-tick.C:
			sim.step(ctx)
		case <-report.C:
			sim.print()
		}
	}
}

const (
	// stepInterval is how often the simulation records a step.
	stepInterval = 100 * time.Millisecond
	// simulatedDay is how long the simulated daily budget period lasts:
	// the budgets start again from 0 every simulatedDay, as a real daily
	// budget does at midnight. A day's spend reaches about 45 %, so the
	// quickstart looks like a healthy fleet and raises no budget alert.
	simulatedDay  = 5 * time.Minute
	stepsPerDay   = int(simulatedDay / stepInterval)
	budgetPerStep = 0.09 // percent of the daily budget, at most, per message
)

var (
	orchestrators = []string{"orch-eu-1", "orch-us-1", "orch-ap-1"}
	models        = []string{"claude-sonnet", "claude-haiku", "gpt-4o"}
	tools         = []string{"bash", "read_file", "web_search", "edit"}
	sessionTypes  = []string{"claude-code", "ruflo"}
	nodes         = []string{"node-a", "node-b"}
)

// simulation drives a random but plausible orchestrator workload and keeps
// its own totals to print beside what the collector recorded.
type simulation struct {
	c        *otelcollector.Collector
	rng      *rand.Rand
	active   map[[2]string]int
	tokens   int64
	messages int64
	errors   int64
	steps    int
	budget   map[string]float64
}

func newSimulation(c *otelcollector.Collector) *simulation {
	return &simulation{
		c:      c,
		rng:    rand.New(rand.NewPCG(1, 2)),
		active: map[[2]string]int{},
		budget: map[string]float64{},
	}
}

func (s *simulation) pick(xs []string) string { return xs[s.rng.IntN(len(xs))] }

func (s *simulation) step(ctx context.Context) {
	c := s.c
	orch := s.pick(orchestrators)
	key := [2]string{orch, s.pick(sessionTypes)}
	switch {
	case s.active[key] > 0 && s.rng.Float64() < 0.3:
		s.check(c.RecordSessionEnd(ctx, key[0], key[1]))
		s.active[key]--
	case s.rng.Float64() < 0.2:
		s.check(c.RecordSessionStart(ctx, key[0], key[1]))
		s.active[key]++
	}

	// Answer a message: time it, spend tokens, maybe call a tool.
	// Answer a message. A real orchestrator would wrap the model call in
	// otelcollector.WithMetrics or time it with StartTimer; the simulation
	// draws a plausible latency (log-normal, median about 1.2 s) instead of
	// sleeping, so that the histogram's buckets all see traffic.
	n := int64(200 + s.rng.IntN(3000))
	s.check(c.RecordTokenUsage(ctx, orch, s.pick(models), n))
	s.tokens += n
	latency := time.Duration(math.Exp(s.rng.NormFloat64()*0.8) * 1.2 * float64(time.Second))
	s.check(c.RecordMessageLatency(ctx, orch, latency))
	s.messages++
	if s.rng.Float64() < 0.05 {
		s.check(c.RecordError(ctx, orch, otelcollector.ErrorTypeFunctionExecution))
		s.errors++
	}
	status := otelcollector.ToolSuccess
	switch r := s.rng.Float64(); {
	case r < 0.05:
		status = otelcollector.ToolTimeout
	case r < 0.12:
		status = otelcollector.ToolError
	}
	s.check(c.RecordToolInvocation(ctx, orch, s.pick(tools), status))
	if s.rng.Float64() < 0.1 {
		to := s.pick(orchestrators)
		if to != orch {
			st := otelcollector.DelegationSuccess
			if s.rng.Float64() < 0.2 {
				st = otelcollector.DelegationRejected
			}
			s.check(c.RecordDelegation(ctx, orch, to, st))
		}
	}
	if s.rng.Float64() < 0.02 {
		s.check(c.RecordError(ctx, orch, "rate_limit"))
		s.errors++
	}
	for _, n := range nodes {
		s.check(c.UpdateNodeLoad(n, s.rng.Float64()))
	}
	// The daily budget: each message spends a little of its orchestrator's,
	// and a new simulated day starts every stepsPerDay steps.
	if s.steps%stepsPerDay == 0 {
		for _, o := range orchestrators {
			s.budget[o] = 0
			s.check(c.UpdateBudgetUtilization(o, otelcollector.PeriodDaily, 0))
		}
	}
	s.steps++
	s.budget[orch] += budgetPerStep * float64(s.rng.IntN(10)) / 9
	s.check(c.UpdateBudgetUtilization(orch, otelcollector.PeriodDaily, s.budget[orch]))
}

func (s *simulation) check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
	}
}

func (s *simulation) print() {
	active := 0
	for _, n := range s.active {
		active += n
	}
	fmt.Printf("%s  messages=%d tokens=%d active_sessions=%d errors=%d rejected=%d\n",
		time.Now().Format(time.TimeOnly), s.messages, s.tokens, active, s.errors, s.c.Rejected())
	// Per orchestrator over the last minute, from the in-memory stats
	// (after Close they are gone: ErrClosed).
	for _, orch := range orchestrators {
		st, err := s.c.AggregatedStats(context.Background(), orch, otelcollector.Last(time.Minute))
		if err != nil {
			continue
		}
		fmt.Printf("  %s last %v: messages=%d latency avg=%v p50=%v p95=%v p99=%v tokens=%d tools=%d (%.0f%% failed) errors=%d (rate %.3f) sessions active=%d +%d -%d delegations out=%d in=%d\n",
			orch, st.End.Sub(st.Start).Round(time.Second), st.Messages,
			st.AvgLatency.Round(time.Millisecond), st.P50Latency.Round(time.Millisecond),
			st.P95Latency.Round(time.Millisecond), st.P99Latency.Round(time.Millisecond),
			st.TotalTokens, st.ToolInvocations, 100*st.ToolFailureRate, st.Errors, st.ErrorRate,
			st.ActiveSessions, st.SessionsStarted, st.SessionsEnded, st.DelegationsOut, st.DelegationsIn)
	}
}
