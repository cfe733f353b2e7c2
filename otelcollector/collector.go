package otelcollector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/internal/selfobs"
)

// defaultShutdownTimeout bounds Flush and Close when their context has no
// deadline, as the SDK's periodic reader does.
const defaultShutdownTimeout = 30 * time.Second

var bgCtx = context.Background()

const levelDebug = slog.LevelDebug

// Collector records the orchestrator metrics. Create it with New; all of its
// methods are safe for concurrent use.
//
// It runs two MeterProviders. The recording provider holds the instruments
// the record methods write to; its store reader has delta temporality, so
// the SDK drops its state of a series at each collection and the
// Collector's store (store.go) keeps the cumulative state, which
// ForgetOrchestrator can delete from. The statistics behind AggregatedStats
// read no SDK reader: they read the Collector's own live state of each
// series (stats.go). The export provider
// holds no synchronous instrument: the readers of exporters that implement
// ProducerExporter are registered there and read the store as a Producer,
// beside the observable instruments (gauges, the Collector's own counters,
// atomic-mode counters, runtime metrics) created on both providers with
// the same callbacks. Readers given with WithReader, and exporters that do
// not implement ProducerExporter, are registered on the recording provider
// and read the SDK's own state, as the SDK keeps it.
type Collector struct {
	provider    *sdkmetric.MeterProvider // export provider
	recProvider *sdkmetric.MeterProvider // recording provider
	exporters   []Exporter
	// The readers of exporters on the export provider, and the readers and
	// exporters' readers on the recording provider, each named for Close's
	// errors; claimed is the config whose readers New claimed (share.go).
	exportReaders, recReaders []namedReader
	claimed                   config
	logger                    *slog.Logger
	// errorHandler (WithErrorHandler) or errLog (rate-limited lines on
	// logger) report the errors with no caller (errors.go).
	errorHandler func(error)
	errLog       errorLog
	noLogger     bool          // no WithLogger: logger discards everything
	store        *store        // cumulative state read by the exporters
	stats        *statsSampler // AggregatedStats (stats.go); nil with WithoutAggregatedStats

	// The counters and their series (counters.go).
	sessions, tokens, errorsCtr *counter[labelPair]
	tools, delegations          *counter[labelValues]
	counterList                 []anyCounter

	latency       metric.Float64Histogram
	latencySeries *series[orchKey, *latencyEntry]

	gauges gaugeState
	regs   []metric.Registration // callbacks, unregistered by Close

	rejected selfobs.Rejections

	// genai is nil unless WithGenAIMetrics (genai.go).
	genai *genaiMetrics

	closed    atomic.Bool
	inflight  inflight // records between their closed check and their measurement (gate.go)
	closeOnce sync.Once
	closeErr  error
}

// New creates a Collector: its MeterProviders with the given readers and
// exporters, the eight instruments and the in-process statistics. With no
// exporter New still works; records then reach only the statistics.
//
// New fails if an option is invalid, if ctx is already done, or if an
// instrument cannot be created; it does not contact any backend, so an
// unreachable exporter endpoint does not stop a daemon from starting.
func New(ctx context.Context, opts ...Option) (*Collector, error) {
	cfg, err := newConfig(opts)
	if err == nil {
		if err = ctx.Err(); err != nil {
			err = fmt.Errorf("otelcollector: New: %w", err)
		}
	}
	if err == nil {
		err = claimReaders(&cfg)
	}
	if err != nil {
		// Ownership of the exporters and readers passed to New: release
		// them, except those another Collector uses.
		return nil, errors.Join(err, releaseUnclaimed(cfg))
	}
	c, err := newCollector(ctx, cfg)
	if err != nil {
		unclaimReaders(cfg)
		return nil, errors.Join(err, releaseUnclaimed(cfg))
	}
	return c, nil
}

func newCollector(ctx context.Context, cfg config) (*Collector, error) {

	c := &Collector{
		exporters:    cfg.exporters,
		logger:       cfg.logger,
		errorHandler: cfg.errorHandler,
		noLogger:     cfg.noLogger,
	}
	// The store's reader adds an SDK measurement to every record: it
	// exists only for exporters that read it. The statistics add none:
	// they read the Collector's own live values (stats.go).
	for _, e := range cfg.exporters {
		if _, ok := e.(ProducerExporter); ok {
			c.store = newStore(sdkmetric.NewManualReader(deltaReaderOptions(true, nil)...), cfg.cardinalityLimit, time.Now)
			break
		}
	}

	res := cfg.resource
	if res == nil {
		res = resource.Default()
	}
	// One more than the Collector's own limit: the overflow series' string
	// marker (recordOverflowAttr) is then never the set that reaches the
	// SDK's limit, so every reader sees it in the same form.
	limit := sdkmetric.WithCardinalityLimit(max(cfg.cardinalityLimit, minSDKCardinalityLimit) + 1)
	recOpts := []sdkmetric.Option{sdkmetric.WithResource(res), limit}
	if c.store != nil {
		recOpts = append(recOpts, sdkmetric.WithReader(c.store.rdr))
	}
	if len(cfg.views) > 0 {
		// A view that matches an instrument replaces its default stream:
		// the identity view keeps every instrument's own stream beside the
		// views' (WithNativeLatencyHistogram adds a second latency stream).
		recOpts = append(recOpts, sdkmetric.WithView(append([]sdkmetric.View{identityView}, cfg.views...)...))
	}
	expOpts := []sdkmetric.Option{sdkmetric.WithResource(res), limit}
	userReaders := 0
	for _, r := range cfg.readers {
		recOpts = append(recOpts, sdkmetric.WithReader(r))
		c.recReaders = append(c.recReaders, namedReader{fmt.Sprintf("reader %T", r), r})
		userReaders++
	}
	for _, e := range cfg.exporters {
		if pe, ok := e.(ProducerExporter); ok {
			if err := pe.SetProducer(c.store.producer(pe.Temporality)); err != nil {
				return nil, fmt.Errorf("%w: exporter %T: %w", ErrInvalidOption, e, err)
			}
			c.exportReaders = append(c.exportReaders, namedReader{fmt.Sprintf("exporter %T", e), e.Reader()})
			expOpts = append(expOpts, sdkmetric.WithReader(e.Reader()))
			continue
		}
		recOpts = append(recOpts, sdkmetric.WithReader(e.Reader()))
		c.recReaders = append(c.recReaders, namedReader{fmt.Sprintf("exporter %T", e), e.Reader()})
		userReaders++
	}
	c.recProvider = sdkmetric.NewMeterProvider(recOpts...)
	c.provider = sdkmetric.NewMeterProvider(expOpts...)

	if err := c.createInstruments(cfg, userReaders > 0); err != nil {
		// Release the readers we were handed; the error says what failed.
		return nil, errors.Join(err, c.provider.Shutdown(ctx), c.recProvider.Shutdown(ctx))
	}
	c.claimed = cfg
	if !cfg.noStats {
		c.startStats(cfg)
	}
	return c, nil
}

// identityView matches every instrument and keeps its stream as the SDK
// would make it without views.
var identityView = sdkmetric.NewView(sdkmetric.Instrument{Name: "*"}, sdkmetric.Stream{})

func (c *Collector) createInstruments(cfg config, recReaders bool) error {
	m := c.recProvider.Meter(schema.MeterName)
	var err, e error

	err = errors.Join(err, c.createCounters(m, cfg))
	err = errors.Join(err, c.createGenAI(m, cfg), c.startRuntime(cfg))
	if cfg.runtimeMetrics && recReaders {
		// startRuntime registers on the export provider; the readers on the
		// recording provider get the runtime metrics from a second copy.
		if e := runtime.Start(runtime.WithMeterProvider(c.recProvider)); e != nil {
			err = errors.Join(err, fmt.Errorf("otelcollector: starting runtime metrics: %w", e))
		}
	}
	c.latency, e = m.Float64Histogram(schema.MessageLatency,
		metric.WithUnit(schema.UnitSeconds), metric.WithDescription(schema.DescMessageLatency),
		metric.WithExplicitBucketBoundaries(cfg.latencyBuckets...))
	err = errors.Join(err, e)
	if err != nil {
		return fmt.Errorf("otelcollector: creating instruments: %w", err)
	}

	limit := cfg.cardinalityLimit
	c.latencySeries = newLimitedSeries[orchKey](limit, newLatencyEntry, field{schema.KeyOrchestratorID, "orchestratorID"})
	c.latencySeries.overflow.overflow = true
	c.gauges.init(limit)

	// The observable instruments go on both providers, with the same state.
	// The gauges go on the recording provider only for its own readers:
	// neither the store nor the statistics read them.
	if err := c.createObservables(c.recProvider.Meter(schema.MeterName), recReaders, true); err != nil {
		return err
	}
	return c.createObservables(c.provider.Meter(schema.MeterName), true, false)
}

// createObservables creates the gauges, the Collector's own counters and,
// in atomic mode, the counters' observable instruments on m, and registers
// their callbacks.
func (c *Collector) createObservables(m metric.Meter, gauges, recording bool) error {
	var err, e error
	if gauges {
		load, e := m.Float64ObservableGauge(schema.NodeLoad, metric.WithDescription(schema.DescNodeLoad))
		err = errors.Join(err, e)
		budget, e := m.Float64ObservableGauge(schema.BudgetUtilization,
			metric.WithUnit(schema.UnitPercent), metric.WithDescription(schema.DescBudgetUtilization))
		err = errors.Join(err, e)
		if err != nil {
			return fmt.Errorf("otelcollector: creating instruments: %w", err)
		}
		reg, err := m.RegisterCallback(c.observeGauges(load, budget), load, budget)
		if err != nil {
			return fmt.Errorf("otelcollector: registering gauge callback: %w", err)
		}
		c.regs = append(c.regs, reg)
	}
	rejected, e := m.Int64ObservableCounter(schema.CollectorRejected,
		metric.WithUnit(schema.UnitRecords), metric.WithDescription(schema.DescCollectorRejected))
	err = errors.Join(err, e)
	overflowed, e := m.Int64ObservableCounter(schema.CollectorOverflow,
		metric.WithUnit(schema.UnitRecords), metric.WithDescription(schema.DescCollectorOverflow))
	err = errors.Join(err, e)
	if err != nil {
		return fmt.Errorf("otelcollector: creating instruments: %w", err)
	}
	reg, err := m.RegisterCallback(c.observeSelf(rejected, overflowed), rejected, overflowed)
	if err != nil {
		return fmt.Errorf("otelcollector: registering callback: %w", err)
	}
	c.regs = append(c.regs, reg)
	reg, err = c.registerAtomicCounters(m, recording)
	if err != nil {
		return fmt.Errorf("otelcollector: creating instruments: %w", err)
	}
	if reg != nil {
		c.regs = append(c.regs, reg)
	}
	return nil
}

// Flush makes every reader export what it holds now (ForceFlush). Without a
// deadline on ctx it gives up after 30 s. After Close it returns ErrClosed.
func (c *Collector) Flush(ctx context.Context) error {
	if c == nil {
		return ErrNilHandle
	}
	if c.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	return untilDeadline(ctx, "Flush", c.forceFlush)
}

// closeGrace is the deadline of Close's final export when Close is called
// with a context that is already done, as `defer c.Close(ctx)` with a
// signal context gives.
const closeGrace = 5 * time.Second

// Close flushes every reader, shuts the MeterProviders down and then each
// exporter. Without a deadline on ctx it gives up after 30 s; if ctx is
// already done, the final export gets a deadline of its own of 5 s
// (closeGrace), detached from ctx. Close returns by its deadline even if a
// reader or an exporter hangs, which then finishes in the background. Each
// error names the exporter or reader that failed and wraps the cause.
// Records made after Close return ErrClosed. Close is idempotent: later
// calls return the first call's result.
func (c *Collector) Close(ctx context.Context) error {
	if c == nil {
		return ErrNilHandle
	}
	c.closeOnce.Do(func() {
		var cancel context.CancelFunc
		if ctx.Err() != nil {
			ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), closeGrace)
		} else {
			ctx, cancel = withDefaultTimeout(ctx)
		}
		defer cancel()
		// From here records return ErrClosed; wait for those already past
		// the check so that the final collection has every accepted record.
		c.closed.Store(true)
		err := c.drain(ctx)
		c.stopStats()
		// Shut down before unregistering the callbacks: the readers' final
		// collection must still observe the gauges and atomic counters.
		err = errors.Join(err, c.shutdownProvider(ctx))
		for _, r := range c.regs {
			err = errors.Join(err, r.Unregister())
		}
		err = errors.Join(err, c.shutdownExporters(ctx))
		unclaimReaders(c.claimed)
		c.closeErr = err
	})
	return c.closeErr
}

// shutdownExporters shuts every exporter down at once and waits for each
// until ctx is done.
func (c *Collector) shutdownExporters(ctx context.Context) error {
	errs := make([]error, len(c.exporters))
	var wg sync.WaitGroup
	for i, e := range c.exporters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := untilDeadline(ctx, fmt.Sprintf("Close: exporter %T shutdown", e), e.Shutdown); err != nil {
				errs[i] = fmt.Errorf("otelcollector: Close: exporter %T: %w", e, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Rejected returns how many records the Collector has rejected as invalid
// since New, over all reasons. The same figure, by reason, is exported as
// orchestrator_collector_rejected_total.
func (c *Collector) Rejected() int64 {
	if c == nil {
		return 0
	}
	return c.rejected.Total()
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultShutdownTimeout)
}

// debugEnabled reports whether per-record debug logging is on.
// Without WithLogger the logger discards everything, and the check is one
// load instead of the handler's Enabled through an interface (about 7 % of
// a default-mode RecordTokenUsage in its CPU profile).
func (c *Collector) debugEnabled(ctx context.Context) bool {
	return !c.noLogger && c.logger.Enabled(ctx, levelDebug)
}

// forceFlush flushes the export provider's readers, then the recording
// provider's.
func (c *Collector) forceFlush(ctx context.Context) error {
	return errors.Join(c.provider.ForceFlush(ctx), c.recProvider.ForceFlush(ctx))
}
