// Command worker is a pool of agent workers that take jobs from a queue and
// record them through otelcollector the way a busy daemon should: handles
// bound once per orchestrator, model and tool (no label lookup per record),
// WithMetrics around each job, and RecordTokenUsageDetailed with the GenAI
// semantic-convention metrics on. It serves /metrics for Prometheus and,
// after the last job, prints each orchestrator's AggregatedStats.
//
//	go run ./examples/worker -jobs 200
//	curl -s http://127.0.0.1:9464/metrics | grep gen_ai_
//
// See README.md beside this file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

type options struct {
	addr    string
	workers int
	jobs    int
	linger  time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", prometheus.DefaultAddress, "address of the /metrics endpoint")
	flag.IntVar(&o.workers, "workers", 4, "number of workers")
	flag.IntVar(&o.jobs, "jobs", 200, "number of jobs to run")
	flag.DurationVar(&o.linger, "linger", 0, "keep serving /metrics this long after the last job (for a scrape)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// job is one unit of work: answer a message for an orchestrator with a
// model, calling one tool.
type job struct {
	orchestrator string
	model        model
	tool         string
}

type model struct{ name, provider string }

var (
	orchestrators = []string{"orch-eu-1", "orch-us-1"}
	models        = []model{{"claude-sonnet", "anthropic"}, {"claude-haiku", "anthropic"}, {"gpt-4o", "openai"}}
	tools         = []string{"bash", "read_file", "web_search"}
)

// handles are bound once, before the workers start: a record through them
// validates only its value.
type handles struct {
	orch  map[string]*otelcollector.Orchestrator
	tools map[[2]string]*otelcollector.ToolCounter
}

func bind(c *otelcollector.Collector) (*handles, error) {
	h := &handles{orch: map[string]*otelcollector.Orchestrator{}, tools: map[[2]string]*otelcollector.ToolCounter{}}
	for _, id := range orchestrators {
		o, err := c.Orchestrator(id)
		if err != nil {
			return nil, err
		}
		h.orch[id] = o
		for _, tool := range tools {
			tc, err := o.Tool(tool)
			if err != nil {
				return nil, err
			}
			h.tools[[2]string{id, tool}] = tc
		}
	}
	return h, nil
}

func run(ctx context.Context, o options, out io.Writer) error {
	exp, err := prometheus.New(prometheus.WithServer(o.addr))
	if err != nil {
		return err
	}
	c, err := otelcollector.New(context.Background(),
		otelcollector.WithExporter(exp),
		otelcollector.WithGenAIMetrics(),
	)
	if err != nil {
		return errors.Join(err, exp.Shutdown(context.Background()))
	}
	fmt.Fprintf(out, "serving metrics on http://%s/metrics\n", exp.Addr())
	if err := work(ctx, c, o, out); err != nil {
		return errors.Join(err, c.Close(context.Background()))
	}
	if o.linger > 0 {
		select {
		case <-time.After(o.linger):
		case <-ctx.Done():
		}
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Close(closeCtx)
}

// work runs o.jobs jobs on o.workers workers, recording into c, and
// prints a summary per orchestrator from c's aggregated stats.
func work(ctx context.Context, c *otelcollector.Collector, o options, out io.Writer) error {
	h, err := bind(c)
	if err != nil {
		return err
	}

	queue := make(chan job)
	var wg sync.WaitGroup
	for w := range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker(ctx, c, h, rand.New(rand.NewPCG(uint64(w), 7)), queue)
		}()
	}
	rng := rand.New(rand.NewPCG(42, 42))
feed:
	for range o.jobs {
		j := job{
			orchestrator: orchestrators[rng.IntN(len(orchestrators))],
			model:        models[rng.IntN(len(models))],
			tool:         tools[rng.IntN(len(tools))],
		}
		select {
		case queue <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()

	for _, id := range orchestrators {
		st, err := c.AggregatedStats(context.Background(), id, otelcollector.Last(time.Hour))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: messages=%d p95=%v tokens=%d tool_calls=%d failed=%d errors=%d\n",
			id, st.Messages, st.P95Latency.Round(time.Millisecond), st.TotalTokens, st.ToolInvocations, st.FailedToolCalls, st.Errors)
	}
	return nil
}

// worker runs jobs until the queue is closed. Each worker holds one session
// of its orchestrator while it works on a job.
func worker(ctx context.Context, c *otelcollector.Collector, h *handles, rng *rand.Rand, queue <-chan job) {
	report := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "record:", err)
		}
	}
	for j := range queue {
		o := h.orch[j.orchestrator]
		report(o.RecordSessionStart(ctx, "worker"))
		_, _ = otelcollector.WithMetrics(ctx, c, j.orchestrator, func(ctx context.Context) (struct{}, error) {
			// The model call: its own duration and the input/output split
			// feed the GenAI metrics; the total feeds the legacy counter.
			call := time.Duration(2+rng.IntN(20)) * time.Millisecond
			time.Sleep(call)
			report(c.RecordTokenUsageDetailed(ctx, j.orchestrator, otelcollector.TokenUsage{
				Model: j.model.name, Provider: j.model.provider,
				Input: int64(500 + rng.IntN(4000)), Output: int64(50 + rng.IntN(800)),
				Duration: call,
			}))
			status := otelcollector.ToolSuccess
			if rng.IntN(10) == 0 {
				status = otelcollector.ToolTimeout
			}
			report(h.tools[[2]string{j.orchestrator, j.tool}].Inc(ctx, status))
			if status != otelcollector.ToolSuccess {
				return struct{}{}, errors.New("tool timed out")
			}
			return struct{}{}, nil
		})
		report(o.RecordSessionEnd(ctx, "worker"))
	}
}
