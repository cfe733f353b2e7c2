package otlp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/wundr-io/orchestrator-otel/internal/lateproducer"
)

// Exporter pushes the metrics of the reader it supplies to an OTLP receiver
// at a fixed interval. Create it with New and hand it to
// otelcollector.WithExporter.
type Exporter struct {
	reader   *reader
	exporter *countingExporter
	protocol Protocol
	producer *lateproducer.Producer // the Collector's recorded series (producer.go)

	// closeIdle closes the idle connections of the HTTP client.
	closeIdle func()

	// The periodic loop: see run.
	interval time.Duration
	stopLoop chan struct{}
	abandon  chan struct{}
	loopDone chan struct{}
	stopOnce sync.Once

	shutdownOnce sync.Once
	shutdownErr  error
}

// reader is the SDK reader the Exporter supplies: the SDK's PeriodicReader,
// whose own timer is never due (see run), with errors that name the
// exporter.
type reader struct {
	*sdkmetric.PeriodicReader
	e *Exporter
}

// ForceFlush exports what the reader holds now.
func (r *reader) ForceFlush(ctx context.Context) error {
	if err := r.PeriodicReader.ForceFlush(ctx); err != nil {
		return fmt.Errorf("exporters/otlp: flush: %w", err)
	}
	return nil
}

// Shutdown stops the periodic loop, then shuts the PeriodicReader down: a
// last export, then the connection is closed.
func (r *reader) Shutdown(ctx context.Context) error {
	r.e.stop(ctx)
	err := r.PeriodicReader.Shutdown(ctx)
	r.e.closeIdle()
	if err != nil {
		return fmt.Errorf("exporters/otlp: shutdown: %w", err)
	}
	return nil
}

// neverInterval is the PeriodicReader's own interval: about 292 years, so
// that its timer, which hands a failed export to otel.Handle, never fires.
const neverInterval = time.Duration(math.MaxInt64)

// New creates an Exporter: the OTel OTLP exporter for the chosen protocol
// inside the SDK's PeriodicReader. It does not contact the receiver (gRPC
// connects lazily, HTTP per export), so New succeeds while the receiver is
// down; the exports fail, are counted and logged, and the next one that
// gets through carries the cumulative totals.
//
// New fails if an option is invalid, a TLS file cannot be loaded, or ctx is
// already done.
func New(ctx context.Context, opts ...Option) (*Exporter, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("exporters/otlp: New: %w", err)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.buildTLS()
	if err != nil {
		return nil, err
	}

	var inner sdkmetric.Exporter
	closeIdle := func() {}
	switch cfg.protocol {
	case ProtocolHTTP:
		client, err := httpClient(cfg, tlsCfg)
		if err != nil {
			return nil, err
		}
		closeIdle = client.CloseIdleConnections
		exp, err := otlpmetrichttp.New(ctx, append(httpOptions(cfg, tlsCfg), otlpmetrichttp.WithHTTPClient(client))...)
		if err != nil {
			if exp != nil {
				err = errors.Join(err, exp.Shutdown(ctx))
			}
			return nil, fmt.Errorf("exporters/otlp: creating OTLP/HTTP exporter: %w", err)
		}
		inner = exp
	default:
		exp, err := otlpmetricgrpc.New(ctx, grpcOptions(cfg, tlsCfg)...)
		if err != nil {
			if exp != nil {
				err = errors.Join(err, exp.Shutdown(ctx))
			}
			return nil, fmt.Errorf("exporters/otlp: creating OTLP/gRPC exporter: %w", err)
		}
		inner = exp
	}

	ce := &countingExporter{Exporter: inner, log: newFailureLog(cfg)}
	producer := &lateproducer.Producer{}
	ropts := []sdkmetric.PeriodicReaderOption{
		sdkmetric.WithProducer(producer),
		sdkmetric.WithProducer(newFailedProducer(ce, cfg.now)),
		sdkmetric.WithInterval(neverInterval),
	}
	if cfg.exportTimeout > 0 {
		ropts = append(ropts, sdkmetric.WithTimeout(cfg.exportTimeout))
	}
	e := &Exporter{
		exporter:  ce,
		protocol:  cfg.protocol,
		producer:  producer,
		interval:  cfg.interval,
		closeIdle: closeIdle,
		stopLoop:  make(chan struct{}),
		abandon:   make(chan struct{}),
		loopDone:  make(chan struct{}),
	}
	e.reader = &reader{PeriodicReader: sdkmetric.NewPeriodicReader(ce, ropts...), e: e}
	go e.run()
	return e, nil
}

// run is the periodic export loop. The SDK's PeriodicReader passes every
// error of its own periodic exports to otel.Handle, the process-global
// handler, which prints to stderr by default, on top of this package's
// logging; so its timer is never due and this loop exports through
// ForceFlush instead, whose errors come back here. Export failures have
// been counted and logged by countingExporter already; any other error (a
// collection that failed before exporting) is logged here, rate-limited the
// same way. The loop ends when Shutdown stops it or the reader is shut
// down.
func (e *Exporter) run() {
	defer close(e.loopDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Shutdown's context ended before the export in progress did.
		select {
		case <-e.abandon:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(e.interval)
	defer tick.Stop()
	for {
		select {
		case <-e.stopLoop:
			return
		case <-tick.C:
		}
		select {
		case <-e.stopLoop:
			return
		default:
		}
		err := e.reader.PeriodicReader.ForceFlush(ctx)
		var exportErr *exportError
		switch {
		case err == nil, errors.As(err, &exportErr):
		case errors.Is(err, sdkmetric.ErrReaderShutdown), ctx.Err() != nil:
			return
		default:
			e.exporter.log.collectFailure(err)
		}
	}
}

// stop ends the periodic loop, letting an export in progress finish unless
// ctx ends first.
func (e *Exporter) stop(ctx context.Context) {
	e.stopOnce.Do(func() {
		close(e.stopLoop)
		select {
		case <-e.loopDone:
		case <-ctx.Done():
			close(e.abandon)
			<-e.loopDone
		}
	})
}

// grpcOptions translates what the options set, and only that, so that the
// OTel exporter's environment variables apply to everything else.
func grpcOptions(cfg config, tlsCfg *tls.Config) []otlpmetricgrpc.Option {
	o := []otlpmetricgrpc.Option{otlpmetricgrpc.WithDialOption(grpc.WithChainUnaryInterceptor(recordAnswer))}
	if cfg.endpoint != "" {
		o = append(o, otlpmetricgrpc.WithEndpoint(cfg.endpoint))
	}
	if cfg.endpointURL != "" {
		o = append(o, otlpmetricgrpc.WithEndpointURL(cfg.endpointURL))
	}
	if cfg.insecure {
		o = append(o, otlpmetricgrpc.WithInsecure())
	}
	if tlsCfg != nil {
		o = append(o, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
	}
	if cfg.headers != nil {
		o = append(o, otlpmetricgrpc.WithHeaders(cfg.headers))
	}
	if cfg.gzip {
		o = append(o, otlpmetricgrpc.WithCompressor("gzip"))
	}
	if cfg.timeout > 0 {
		o = append(o, otlpmetricgrpc.WithTimeout(cfg.timeout))
	}
	if cfg.retry != nil && !*cfg.retry {
		o = append(o, otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}))
	}
	if sel := temporalitySelector(cfg.temporality); sel != nil {
		o = append(o, otlpmetricgrpc.WithTemporalitySelector(sel))
	}
	return o
}

// httpOptions is grpcOptions for OTLP/HTTP.
func httpOptions(cfg config, tlsCfg *tls.Config) []otlpmetrichttp.Option {
	var o []otlpmetrichttp.Option
	if cfg.endpoint != "" {
		o = append(o, otlpmetrichttp.WithEndpoint(cfg.endpoint))
	}
	if cfg.endpointURL != "" {
		o = append(o, otlpmetrichttp.WithEndpointURL(cfg.endpointURL))
	}
	if cfg.insecure {
		o = append(o, otlpmetrichttp.WithInsecure())
	}
	if tlsCfg != nil {
		o = append(o, otlpmetrichttp.WithTLSClientConfig(tlsCfg))
	}
	if cfg.headers != nil {
		o = append(o, otlpmetrichttp.WithHeaders(cfg.headers))
	}
	if cfg.gzip {
		o = append(o, otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
	}
	if cfg.timeout > 0 {
		o = append(o, otlpmetrichttp.WithTimeout(cfg.timeout))
	}
	if cfg.retry != nil && !*cfg.retry {
		o = append(o, otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}))
	}
	if sel := temporalitySelector(cfg.temporality); sel != nil {
		o = append(o, otlpmetrichttp.WithTemporalitySelector(sel))
	}
	return o
}

// temporalitySelector returns nil when no option chose a temporality, which
// leaves OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE in charge.
func temporalitySelector(t Temporality) sdkmetric.TemporalitySelector {
	switch t {
	case Cumulative:
		return sdkmetric.DefaultTemporalitySelector
	case Delta:
		return deltaSelector
	default:
		return nil
	}
}

// Reader returns the periodic reader to register on a MeterProvider; it
// implements otelcollector's Exporter interface together with Shutdown.
func (e *Exporter) Reader() sdkmetric.Reader { return e.reader }

// Protocol returns the transport in use, after options and environment.
func (e *Exporter) Protocol() Protocol { return e.protocol }

// FailedExports returns how many periodic, flush or shutdown exports have
// failed since New. An export canceled by its caller is not counted (the
// reader's Shutdown cancels a periodic export in flight and exports once
// more itself). The same count is pushed with the data as
// orchestrator_collector_otlp_failed_exports_total.
func (e *Exporter) FailedExports() int64 { return e.exporter.failed.Load() }

// Shutdown shuts the reader down: the periodic loop stops (an export in
// progress finishes unless ctx ends first), a last export of what the
// reader holds, then the connection is closed. When a Collector owns the
// reader, its Close has already done this and Shutdown has nothing left to
// do; called first, Shutdown does it and the Collector's Close later
// reports the reader as already shut down. Without a deadline on ctx the
// reader's export timeout bounds it. An error starts with
// "exporters/otlp: shutdown:" and wraps the cause. Shutdown is idempotent:
// later calls return the first result.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.shutdownOnce.Do(func() {
		err := e.reader.Shutdown(ctx)
		if errors.Is(err, sdkmetric.ErrReaderShutdown) {
			err = nil
		}
		e.shutdownErr = err
	})
	return e.shutdownErr
}

// deltaSelector is the OTLP "delta" temporality preference: delta for
// counters and histograms, cumulative for up-down counters.
func deltaSelector(k sdkmetric.InstrumentKind) metricdata.Temporality {
	switch k {
	case sdkmetric.InstrumentKindUpDownCounter, sdkmetric.InstrumentKindObservableUpDownCounter:
		return metricdata.CumulativeTemporality
	default:
		return metricdata.DeltaTemporality
	}
}
