package otelcollector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

// Exporter is what WithExporter accepts: something that supplies an SDK
// reader and has resources of its own to release. The exporters in this
// module's exporters/ directory implement it; otelcollector does not import
// them, so a program links only the exporters it uses.
type Exporter interface {
	// Reader returns the reader to register on the Collector's
	// MeterProvider. It is called once, by New.
	Reader() sdkmetric.Reader
	// Shutdown releases what the exporter owns besides its reader (an HTTP
	// server, a connection). It is called by Close after the MeterProvider,
	// and with it every reader, has been shut down.
	Shutdown(ctx context.Context) error
}

// ProducerExporter is an Exporter whose reader takes the Collector's
// recorded series from a Producer the Collector hands it, instead of from
// the SDK's own instruments. Only such readers stop exporting what
// ForgetOrchestrator forgets; the exporters in this module's exporters/
// directory implement it. New calls Temporality to learn which temporality
// the reader asks for (the Producer then converts the cumulative state),
// and SetProducer once, before any collection; SetProducer fails if the
// exporter already has a producer, that is if another Collector uses it.
type ProducerExporter interface {
	Exporter
	Temporality(sdkmetric.InstrumentKind) metricdata.Temporality
	SetProducer(sdkmetric.Producer) error
}

// DefaultCardinalityLimit is the number of distinct attribute sets each
// instrument keeps before further sets are folded into the SDK's overflow
// series (attribute otel.metric.overflow=true).
const DefaultCardinalityLimit = 2000

type config struct {
	exporters        []Exporter
	readers          []sdkmetric.Reader
	resource         *resource.Resource
	logger           *slog.Logger
	latencyBuckets   []float64
	cardinalityLimit int
	atomicCounters   bool
	sessionCounters  bool // WithSessionCounters
	genaiMetrics     bool // WithGenAIMetrics (genai.go)
	runtimeMetrics   bool // WithRuntimeMetrics (runtime.go)
	errs             []error
	errorHandler     func(error)      // WithErrorHandler; nil: the logger
	noStats          bool             // WithoutAggregatedStats
	noLogger         bool             // no WithLogger: the logger discards
	shared           sdkmetric.Reader // a reader another Collector uses (share.go)
	// views are added to the recording MeterProvider, which holds the
	// synchronous instruments, for options that change their streams.
	views []sdkmetric.View

	// Aggregated stats (stats.go). now and statsTick are test hooks: the
	// clock of the samples and, if set, the channel that drives the sampler
	// instead of a ticker.
	statsResolution time.Duration
	statsRetention  time.Duration
	statsWindowSet  bool        // WithStatsResolution or WithStatsRetention given
	statsTiers      []StatsTier // WithStatsTiers (stats_config.go)
	statsTiersSet   bool
	now             func() time.Time
	statsTick       <-chan time.Time
}

// Option configures a Collector.
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

func newConfig(opts []Option) (config, error) {
	c := config{
		latencyBuckets:   schema.DefaultLatencyBuckets(),
		cardinalityLimit: DefaultCardinalityLimit,
		statsResolution:  DefaultStatsResolution,
		statsRetention:   DefaultStatsRetention,
	}
	for _, o := range opts {
		if o != nil {
			c = o.apply(c)
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
		c.noLogger = true
	}
	c.errs = append(c.errs, checkStatsWindow(c))
	return c, errors.Join(c.errs...)
}

// WithExporter adds an exporter; its reader joins the Collector's one
// MeterProvider. It may be given several times, for example a Prometheus
// exporter and an OTLP exporter at once. A nil exporter makes New fail.
// By default there is no exporter and records reach only the in-memory
// reader behind the Collector's statistics.
func WithExporter(e Exporter) Option {
	return optionFunc(func(c config) config {
		if isNil(e) {
			c.errs = append(c.errs, fmt.Errorf("%w: WithExporter(%T(nil)); did the exporter's New fail?", ErrInvalidOption, e))
			return c
		}
		if isNil(e.Reader()) {
			c.errs = append(c.errs, fmt.Errorf("%w: WithExporter(%T) supplies a nil reader", ErrInvalidOption, e))
			return c
		}
		c.exporters = append(c.exporters, e)
		return c
	})
}

// WithReader adds any SDK reader, for example an sdkmetric.ManualReader in
// tests. It may be given several times. The Collector shuts the reader down
// on Close, or when New fails. A nil or typed-nil reader, or one that
// another Collector uses, makes New fail with ErrInvalidOption.
//
// The reader is registered on the MeterProvider the instruments record to
// and reads the SDK's own state: ForgetOrchestrator does not remove series
// from it (the SDK cannot delete a series of a synchronous instrument), and
// each such reader adds an SDK measurement to every record. It sees the
// overflow series of the synchronous instruments with the attribute
// otel.metric.overflow as the string "true" rather than the SDK's boolean
// (the same otel_metric_overflow="true" in Prometheus text; see
// recordOverflowAttr for why). Exporters that implement ProducerExporter
// read the Collector's store instead, with the boolean.
func WithReader(r sdkmetric.Reader) Option {
	return optionFunc(func(c config) config {
		if isNil(r) {
			c.errs = append(c.errs, fmt.Errorf("%w: WithReader(%T(nil))", ErrInvalidOption, r))
			return c
		}
		c.readers = append(c.readers, r)
		return c
	})
}

// WithResource sets the resource (service.name, host, ...) that describes
// the process. By default the SDK's resource.Default() is used, which reads
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES. nil keeps the default.
func WithResource(r *resource.Resource) Option {
	return optionFunc(func(c config) config {
		c.resource = r
		return c
	})
}

// WithLogger sets the logger. Each record is logged at Debug level only when
// the logger is enabled for Debug, so an Info logger costs one Enabled call
// per record. By default nothing is logged; nil keeps that default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c config) config {
		c.logger = l
		return c
	})
}

// WithErrorHandler sends the errors that have no caller (WithMetrics,
// httpmetrics, the statistics sampler) to f, every one of them, instead of
// to the Collector's logger. By default they are logged at Warn level
// through WithLogger's logger, at most one line per source every 10 s with
// the number suppressed in between; the process-global otel.Handle is not
// used unless given here (WithErrorHandler(otel.Handle)). nil keeps the
// default.
func WithErrorHandler(f func(error)) Option {
	return optionFunc(func(c config) config {
		c.errorHandler = f
		return c
	})
}

// WithoutAggregatedStats turns the in-process statistics off, for daemons
// that never call AggregatedStats: the Collector then keeps no history nor
// per-orchestrator latency histogram and runs no sampler goroutine, so a
// record pays only for the readers of its exporters, and AggregatedStats
// returns an error wrapping ErrStatsDisabled. WithStatsResolution and WithStatsRetention are
// then ignored. By default the statistics are on.
func WithoutAggregatedStats() Option {
	return optionFunc(func(c config) config {
		c.noStats = true
		return c
	})
}

// WithLatencyBuckets sets the upper bounds, in seconds, of the buckets of
// orchestrator_message_latency_seconds. The default is 0.1, 0.5, 1, 2, 5 and
// 10 s. Bounds must be finite, non-negative and strictly increasing, and at
// least one must be given; otherwise New fails. The slice is copied.
func WithLatencyBuckets(bounds ...float64) Option {
	b := append([]float64(nil), bounds...)
	return optionFunc(func(c config) config {
		if err := checkBuckets(b); err != nil {
			c.errs = append(c.errs, err)
			return c
		}
		c.latencyBuckets = b
		return c
	})
}

// WithCardinalityLimit sets how many distinct attribute sets each instrument
// keeps: n-1 label sets of its own plus one overflow series labelled
// otel_metric_overflow="true" that sums every further record, as the SDK
// does; a gauge keeps n-1 series and rejects updates that would start
// another with ErrCardinalityLimit. Both are counted in
// orchestrator_collector_overflow_total{metric} (see the package
// documentation, Cardinality). The default is DefaultCardinalityLimit. A
// limit below 1 makes New fail: an unbounded instrument lets a label
// explosion take the process's memory.
func WithCardinalityLimit(n int) Option {
	return optionFunc(func(c config) config {
		if n < 1 {
			c.errs = append(c.errs, fmt.Errorf("%w: cardinality limit %d, want >= 1", ErrInvalidOption, n))
			return c
		}
		c.cardinalityLimit = n
		return c
	})
}

// WithAtomicCounters makes the counters (sessions, tokens, tool
// invocations, delegations, errors) accumulate in the Collector's own atomic
// values, reported through observable instruments of the same name, unit and
// description when a reader collects. A record then costs a cache lookup and
// an atomic add instead of an SDK measurement per reader; see
// docs/benchmarks.md. The latency histogram is unchanged.
//
// With cumulative temporality (Prometheus, and OTLP's default) the exported
// data are identical to the default mode. Two things differ: counters carry
// no exemplars, and a reader with delta temporality receives a 0 point for
// every idle series instead of no point. A handle bound with Orchestrator
// holds its series' slot from binding on, so the cardinality limit is
// reached by bound series even before they record. Off by default.
func WithAtomicCounters() Option {
	return optionFunc(func(c config) config {
		c.atomicCounters = true
		return c
	})
}

// WithSessionCounters makes the Collector also export two counters beside
// the orchestrator_sessions_active gauge: orchestrator_sessions_started_total
// and orchestrator_sessions_ended_total (OTel names
// orchestrator.sessions.started and orchestrator.sessions.ended, unit
// {session}), labelled orchestrator_id and session_type like the gauge. They
// count what RecordSessionStart and RecordSessionEnd (and SessionCounter's
// Start and End) accept, in the same series as the gauge: the same
// cardinality limit and overflow series (a record past the limit is counted
// once in orchestrator_collector_overflow_total, under the gauge's metric),
// ForgetOrchestrator forgets them, and with WithAtomicCounters they are
// observable counters as the other counters are. A rejected end (no active
// session) counts nothing.
//
// The fleet client reads them for its SessionsStarted and SessionsEnded,
// which stay 0 without them: a gauge cannot tell how many sessions started
// and ended between two scrapes. With WithAtomicCounters the in-process
// AggregatedStats' SessionsStarted and SessionsEnded are then exact too
// (they are lower bounds without this option). It costs one more SDK
// measurement per session start and end, or in atomic mode one atomic add.
// Default: off, and the scrape is then unchanged.
func WithSessionCounters() Option {
	return optionFunc(func(c config) config {
		c.sessionCounters = true
		return c
	})
}

// WithGenAIMetrics makes the Collector also emit the OpenTelemetry GenAI
// client metrics (semantic conventions v1.41.0), beside and never instead of
// the orchestrator metrics, which stay exactly as they are:
//
//	gen_ai.client.token.usage         histogram, {token}  gen_ai.operation.name, gen_ai.request.model,
//	                                                      gen_ai.provider.name (when known), gen_ai.token.type
//	gen_ai.client.operation.duration  histogram, s        gen_ai.operation.name, gen_ai.request.model,
//	                                                      gen_ai.provider.name (when known)
//
// with the bucket bounds the conventions recommend (tokens 1, 4, 16, ...,
// 67108864; seconds 0.01, 0.02, ..., 81.92). Through exporters/prometheus
// they scrape as gen_ai_client_token_usage and
// gen_ai_client_operation_duration_seconds. They are fed by
// RecordTokenUsageDetailed, the only record call that knows the
// input/output split, the provider and a model call's duration; the other
// record methods, RecordTokenUsage included, do not feed them. Off by
// default.
func WithGenAIMetrics() Option {
	return optionFunc(func(c config) config {
		c.genaiMetrics = true
		return c
	})
}

// WithRuntimeMetrics makes the Collector's MeterProvider also report the Go
// runtime metrics of go.opentelemetry.io/contrib/instrumentation/runtime
// (go.memory.used, go.memory.allocated, go.goroutine.count,
// go.processor.limit, go.config.gogc, ...; scraped as go_memory_used_bytes,
// go_goroutines, ...), read from runtime/metrics at each collection.
// They go to every reader and exporter of the Collector and stop with Close.
// Off by default.
//
// One instrument is renamed: go.goroutine.count is reported as
// go.goroutines (scraped as go_goroutines, client_golang's name for it),
// because the exporter would make it go_goroutine_count, a gauge whose
// _count suffix fails `promtool check metrics`. With it on, a whole scrape
// passes promtool's lint.
func WithRuntimeMetrics() Option {
	return optionFunc(func(c config) config {
		c.runtimeMetrics = true
		return c
	})
}

func checkBuckets(b []float64) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: no latency buckets", ErrInvalidOption)
	}
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("%w: latency bucket %v is not a finite non-negative number", ErrInvalidOption, v)
		}
		if i > 0 && v <= b[i-1] {
			return fmt.Errorf("%w: latency buckets not strictly increasing at %v", ErrInvalidOption, v)
		}
	}
	return nil
}

// Defaults of WithStatsResolution and WithStatsRetention.
const (
	DefaultStatsResolution = 10 * time.Second
	DefaultStatsRetention  = time.Hour
)

// Bounds of the aggregated-stats options. MinStatsResolution is derived
// from the cost of one sampler step: a step reads only the series recorded
// since the previous collection, but even with nothing recorded it costs
// about 0.14 ms of CPU at 1,000 orchestrators (BenchmarkStatsSampleCPU in
// docs/benchmarks.md), so a 1 ms step already keeps one core about 14 %
// busy and a finer one would keep the sampler running almost without pause.
// More than MaxStatsSteps samples per retention would make the history large
// for little benefit.
const (
	MinStatsResolution = time.Millisecond
	MaxStatsSteps      = 1_000_000
)

// WithStatsResolution sets how often the Collector samples its in-memory
// reader for AggregatedStats. A window's bounds fall on samples (its start
// on the sample at or before the asked start, its end on the sample at or
// before the asked end, unless it ends now), so the resolution is the
// precision of a window. Each sample reads the series recorded since the
// previous collection; see docs/stats.md for its cost. The default is DefaultStatsResolution (10 s).
// With it, or WithStatsRetention, the history has that single tier instead
// of DefaultStatsTiers (see WithStatsTiers); without either, the finest
// default tier samples every 10 s.
// A resolution below MinStatsResolution makes New fail with
// ErrInvalidOption, as does a retention shorter than the resolution.
func WithStatsResolution(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d < MinStatsResolution {
			c.errs = append(c.errs, fmt.Errorf("%w: stats resolution %v, want >= %v", ErrInvalidOption, d, MinStatsResolution))
			return c
		}
		c.statsResolution, c.statsWindowSet = d, true
		return c
	})
}

// WithStatsRetention sets how long samples are kept for AggregatedStats: a
// window starting earlier is answered from the oldest sample kept and marked
// Truncated. Memory grows with the retention (see docs/stats.md). With it,
// or WithStatsResolution, the history has that single tier instead of
// DefaultStatsTiers; the retention of that tier defaults to
// DefaultStatsRetention (1 h). A retention shorter than the
// resolution, or longer than MaxStatsSteps resolution steps, makes New fail
// with ErrInvalidOption.
func WithStatsRetention(d time.Duration) Option {
	return optionFunc(func(c config) config {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: stats retention %v, want > 0", ErrInvalidOption, d))
			return c
		}
		c.statsRetention, c.statsWindowSet = d, true
		return c
	})
}
