package otelcollector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/internal/selfobs"
	"github.com/wundr-io/orchestrator-otel/internal/stats"
	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// defaultShutdownTimeout bounds Flush and Close when their context has no
// deadline, as the SDK's periodic reader does.
const defaultShutdownTimeout = 30 * time.Second

var bgCtx = context.Background()

const levelDebug = slog.LevelDebug

// Collector records the orchestrator metrics. Create it with New; all of its
// methods are safe for concurrent use.
type Collector struct {
	provider  *sdkmetric.MeterProvider
	exporters []Exporter
	logger    *slog.Logger
	statsRdr  *sdkmetric.ManualReader
	stats     *statsSampler // AggregatedStats (stats.go)

	// The counters and their series (counters.go).
	sessions, tokens, tools, delegations, errorsCtr *counter
	counterReg                                      metric.Registration

	latency       metric.Float64Histogram
	latencySeries *series[[]metric.RecordOption]

	gauges   gaugeState
	callback metric.Registration

	rejected selfobs.Rejections

	// genai is nil unless WithGenAIMetrics (genai.go).
	genai *genaiMetrics

	closed    atomic.Bool
	inflight  inflight // records between their closed check and their measurement (gate.go)
	closeOnce sync.Once
	closeErr  error
}

// New creates a Collector: one MeterProvider with the given readers and
// exporters plus an in-memory reader, and the eight instruments. With no
// exporter New still works; records then reach only the in-memory reader.
//
// New fails if an option is invalid, if ctx is already done, or if an
// instrument cannot be created; it does not contact any backend, so an
// unreachable exporter endpoint does not stop a daemon from starting.
func New(ctx context.Context, opts ...Option) (*Collector, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("otelcollector: New: %w", err)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}

	c := &Collector{
		exporters: cfg.exporters,
		logger:    cfg.logger,
		statsRdr:  stats.NewReader(),
	}

	res := cfg.resource
	if res == nil {
		res = resource.Default()
	}
	popts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithCardinalityLimit(max(cfg.cardinalityLimit, minSDKCardinalityLimit)),
		sdkmetric.WithReader(c.statsRdr),
		stats.NoExemplarsView(),
	}
	for _, r := range cfg.readers {
		popts = append(popts, sdkmetric.WithReader(r))
	}
	for _, e := range cfg.exporters {
		popts = append(popts, sdkmetric.WithReader(e.Reader()))
	}
	c.provider = sdkmetric.NewMeterProvider(popts...)

	if err := c.createInstruments(cfg); err != nil {
		// Release the readers we were handed; the error says what failed.
		return nil, errors.Join(err, c.provider.Shutdown(ctx))
	}
	c.startStats(cfg)
	return c, nil
}

func (c *Collector) createInstruments(cfg config) error {
	m := c.provider.Meter(schema.MeterName)
	var err, e error

	err = errors.Join(err, c.createCounters(m, cfg))
	err = errors.Join(err, c.createGenAI(m, cfg), c.startRuntime(cfg))
	c.latency, e = m.Float64Histogram(schema.MessageLatency,
		metric.WithUnit(schema.UnitSeconds), metric.WithDescription(schema.DescMessageLatency),
		metric.WithExplicitBucketBoundaries(cfg.latencyBuckets...))
	err = errors.Join(err, e)

	load, e := m.Float64ObservableGauge(schema.NodeLoad, metric.WithDescription(schema.DescNodeLoad))
	err = errors.Join(err, e)
	budget, e := m.Float64ObservableGauge(schema.BudgetUtilization,
		metric.WithUnit(schema.UnitPercent), metric.WithDescription(schema.DescBudgetUtilization))
	err = errors.Join(err, e)
	rejected, e := m.Int64ObservableCounter(schema.CollectorRejected,
		metric.WithUnit(schema.UnitRecords), metric.WithDescription(schema.DescCollectorRejected))
	err = errors.Join(err, e)
	overflowed, e := m.Int64ObservableCounter(schema.CollectorOverflow,
		metric.WithUnit(schema.UnitRecords), metric.WithDescription(schema.DescCollectorOverflow))
	err = errors.Join(err, e)
	if err != nil {
		return fmt.Errorf("otelcollector: creating instruments: %w", err)
	}

	limit := cfg.cardinalityLimit
	c.latencySeries = newLimitedSeries(limit, recordOptions, field{schema.KeyOrchestratorID, "orchestratorID"})

	c.gauges.init(limit)
	c.callback, err = m.RegisterCallback(c.observe(load, budget, rejected, overflowed), load, budget, rejected, overflowed)
	if err != nil {
		return fmt.Errorf("otelcollector: registering gauge callback: %w", err)
	}
	return nil
}

// Flush makes every reader export what it holds now (ForceFlush). Without a
// deadline on ctx it gives up after 30 s. After Close it returns ErrClosed.
func (c *Collector) Flush(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	return untilDeadline(ctx, "Flush", c.provider.ForceFlush)
}

// Close flushes every reader, shuts the MeterProvider down and then each
// exporter. Without a deadline on ctx it gives up after 30 s. Records made
// after Close returns ErrClosed. Close is idempotent: later calls return the
// first call's result.
func (c *Collector) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		ctx, cancel := withDefaultTimeout(ctx)
		defer cancel()
		// From here records return ErrClosed; wait for those already past
		// the check so that the final collection has every accepted record.
		c.closed.Store(true)
		err := c.drain(ctx)
		c.stopStats()
		// Shut down before unregistering the callbacks: the readers' final
		// collection must still observe the gauges and atomic counters.
		err = errors.Join(err, c.shutdownProvider(ctx))
		err = errors.Join(err, c.callback.Unregister(), c.unregisterCounters())
		for _, e := range c.exporters {
			err = errors.Join(err, e.Shutdown(ctx))
		}
		c.closeErr = err
	})
	return c.closeErr
}

// Rejected returns how many records the Collector has rejected as invalid
// since New, over all reasons. The same figure, by reason, is exported as
// orchestrator_collector_rejected_total.
func (c *Collector) Rejected() int64 { return c.rejected.Total() }

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultShutdownTimeout)
}

// debugEnabled reports whether per-record debug logging is on.
func (c *Collector) debugEnabled(ctx context.Context) bool {
	return c.logger.Enabled(ctx, levelDebug)
}

var _ = validate.OK
