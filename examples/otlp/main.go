// Command otlp runs a small simulated orchestrator that pushes its metrics
// over OTLP to an OpenTelemetry Collector, and prints a status line every few
// seconds until interrupted.
//
//	go run ./examples/otlp -endpoint 127.0.0.1:4317 -insecure
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 go run ./examples/otlp
//
// Flags override the OTEL_EXPORTER_OTLP_* environment variables; what no
// flag sets is read from them. See README.md beside this file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/wundr-io/orchestrator-otel/exporters/otlp"
	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

type flags struct {
	endpoint string
	protocol string
	insecure bool
	token    string
	interval time.Duration
	every    time.Duration
	duration time.Duration
	prom     string
	name     string
	instance string
}

func main() {
	var f flags
	flag.StringVar(&f.endpoint, "endpoint", "", "Collector host:port (default: OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4317)")
	flag.StringVar(&f.protocol, "protocol", "", `"grpc" or "http/protobuf" (default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)`)
	flag.BoolVar(&f.insecure, "insecure", false, "send without TLS (plaintext gRPC or http://)")
	flag.StringVar(&f.token, "token", "", "bearer token sent as the Authorization header (default: none, or OTEL_EXPORTER_OTLP_HEADERS)")
	flag.DurationVar(&f.interval, "interval", 0, "export interval (default: OTEL_METRIC_EXPORT_INTERVAL, else 10s)")
	flag.DurationVar(&f.every, "every", 5*time.Second, "how often to print a status line")
	flag.DurationVar(&f.duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	flag.StringVar(&f.prom, "prometheus", "", "also serve /metrics for Prometheus on this address, e.g. 127.0.0.1:9464 (default: off)")
	flag.StringVar(&f.name, "name", "orchestrator-daemon", "service.name of this daemon (the Collector's Prometheus exporter makes it the job label)")
	flag.StringVar(&f.instance, "instance", hostname(), "service.instance.id, unique per daemon of a fleet (the instance label)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	if err := run(ctx, f); err != nil {
		log.Fatal(err)
	}
}

func (f flags) options(logger *slog.Logger) []otlp.Option {
	opts := []otlp.Option{otlp.WithLogger(logger)}
	if f.endpoint != "" {
		opts = append(opts, otlp.WithEndpoint(f.endpoint))
	}
	if f.protocol != "" {
		opts = append(opts, otlp.WithProtocol(otlp.Protocol(f.protocol)))
	}
	if f.insecure {
		opts = append(opts, otlp.WithInsecure())
	}
	if f.token != "" {
		opts = append(opts, otlp.WithHeaders(map[string]string{"Authorization": "Bearer " + f.token}))
	}
	if f.interval > 0 {
		opts = append(opts, otlp.WithInterval(f.interval))
	}
	return opts
}

func run(ctx context.Context, f flags) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// The exporter logs its own failures, rate-limited, and never writes to
	// otel.Handle; other OTel components in the program might: send those
	// to the logger too.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Debug("otel", "error", err)
	}))

	push, err := otlp.New(ctx, f.options(logger)...)
	if err != nil {
		return err
	}
	// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, read last, win over
	// the flags.
	res, err := resource.New(ctx,
		resource.WithAttributes(
			attribute.String("service.name", f.name),
			attribute.String("service.instance.id", f.instance)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv())
	if err != nil {
		return errors.Join(err, push.Shutdown(context.Background()))
	}
	opts := []otelcollector.Option{
		otelcollector.WithExporter(push),
		otelcollector.WithLogger(logger),
		otelcollector.WithResource(res),
	}
	if f.prom != "" {
		pull, err := prometheus.New(prometheus.WithServer(f.prom), prometheus.WithLogger(logger))
		if err != nil {
			return errors.Join(err, push.Shutdown(context.Background()))
		}
		opts = append(opts, otelcollector.WithExporter(pull))
		fmt.Printf("also serving http://%s/metrics\n", pull.Addr())
	}
	c, err := otelcollector.New(ctx, opts...)
	if err != nil {
		return errors.Join(err, push.Shutdown(context.Background()))
	}
	fmt.Printf("pushing OTLP over %s (Ctrl-C to stop)\n", push.Protocol())

	sim := &simulation{c: c, rng: rand.New(rand.NewPCG(7, 11))}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	status := time.NewTicker(f.every)
	defer status.Stop()
	for {
		select {
		case <-ctx.Done():
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := c.Close(closeCtx) // pushes what is left
			sim.print(push)
			if err != nil {
				return fmt.Errorf("close (the last push may not have arrived): %w", err)
			}
			fmt.Println("stopped: last values pushed")
			return nil
		case <-tick.C:
			sim.step(ctx)
		case <-status.C:
			sim.print(push)
		}
	}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

var (
	orchestrators = []string{"orch-1", "orch-2"}
	models        = []string{"model-large", "model-small"}
	tools         = []string{"bash", "read_file", "web_search"}
)

// simulation records a plausible workload: sessions, messages with their
// tokens and latency, tool calls, delegations, errors, node load, budget.
type simulation struct {
	c        *otelcollector.Collector
	rng      *rand.Rand
	sessions int
	messages int64
	tokens   int64
	budget   float64
}

func (s *simulation) step(ctx context.Context) {
	c, r := s.c, s.rng
	orch := orchestrators[r.IntN(len(orchestrators))]
	if s.sessions > 0 && r.Float64() < 0.2 {
		s.check(c.RecordSessionEnd(ctx, "orch-1", "claude-code"))
		s.sessions--
	} else if r.Float64() < 0.2 {
		s.check(c.RecordSessionStart(ctx, "orch-1", "claude-code"))
		s.sessions++
	}

	tokens := int64(100 + r.IntN(2000))
	s.check(c.RecordTokenUsage(ctx, orch, models[r.IntN(len(models))], tokens))
	s.check(c.RecordMessageLatency(ctx, orch, time.Duration(50+r.IntN(3000))*time.Millisecond))
	s.tokens += tokens
	s.messages++

	status := otelcollector.ToolSuccess
	if r.Float64() < 0.1 {
		status = otelcollector.ToolError
	}
	s.check(c.RecordToolInvocation(ctx, orch, tools[r.IntN(len(tools))], status))
	if r.Float64() < 0.1 {
		s.check(c.RecordDelegation(ctx, "orch-1", "orch-2", otelcollector.DelegationSuccess))
	}
	if r.Float64() < 0.03 {
		s.check(c.RecordError(ctx, orch, "rate_limit"))
	}
	s.check(c.UpdateNodeLoad("node-a", r.Float64()))
	s.budget = min(100, s.budget+0.05)
	s.check(c.UpdateBudgetUtilization("orch-1", otelcollector.PeriodDaily, s.budget))
}

func (s *simulation) check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
	}
}

func (s *simulation) print(push *otlp.Exporter) {
	fmt.Printf("%s  messages=%d tokens=%d active_sessions=%d failed_exports=%d\n",
		time.Now().Format(time.TimeOnly), s.messages, s.tokens, s.sessions, push.FailedExports())
}
