package otlp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/credentials"
)

// Exporter pushes the metrics of the reader it supplies to an OTLP receiver
// at a fixed interval. Create it with New and hand it to
// otelcollector.WithExporter.
type Exporter struct {
	reader   *sdkmetric.PeriodicReader
	exporter *countingExporter
	protocol Protocol
	producer *lateProducer // the Collector's recorded series (producer.go)

	shutdownOnce sync.Once
	shutdownErr  error
}

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
		return nil, fmt.Errorf("otlp: New: %w", err)
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
	switch cfg.protocol {
	case ProtocolHTTP:
		exp, err := otlpmetrichttp.New(ctx, httpOptions(cfg, tlsCfg)...)
		if err != nil {
			if exp != nil {
				err = errors.Join(err, exp.Shutdown(ctx))
			}
			return nil, fmt.Errorf("otlp: creating OTLP/HTTP exporter: %w", err)
		}
		inner = exp
	default:
		exp, err := otlpmetricgrpc.New(ctx, grpcOptions(cfg, tlsCfg)...)
		if err != nil {
			if exp != nil {
				err = errors.Join(err, exp.Shutdown(ctx))
			}
			return nil, fmt.Errorf("otlp: creating OTLP/gRPC exporter: %w", err)
		}
		inner = exp
	}

	ce := &countingExporter{Exporter: inner, log: newFailureLog(cfg)}
	producer := &lateProducer{}
	ropts := []sdkmetric.PeriodicReaderOption{
		sdkmetric.WithProducer(producer),
		sdkmetric.WithProducer(newFailedProducer(ce, cfg.now)),
	}
	if cfg.interval > 0 {
		ropts = append(ropts, sdkmetric.WithInterval(cfg.interval))
	}
	if cfg.exportTimeout > 0 {
		ropts = append(ropts, sdkmetric.WithTimeout(cfg.exportTimeout))
	}
	return &Exporter{
		reader:   sdkmetric.NewPeriodicReader(ce, ropts...),
		exporter: ce,
		protocol: cfg.protocol,
		producer: producer,
	}, nil
}

// grpcOptions translates what the options set, and only that, so that the
// OTel exporter's environment variables apply to everything else.
func grpcOptions(cfg config, tlsCfg *tls.Config) []otlpmetricgrpc.Option {
	var o []otlpmetricgrpc.Option
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

// Shutdown shuts the reader down: a last export of what it holds, then the
// connection is closed. When a Collector owns the reader, its Close has
// already done this and Shutdown has nothing left to do; called first,
// Shutdown does it and the Collector's Close later reports the reader as
// already shut down. Without a deadline on ctx the reader's export timeout
// bounds it. Shutdown is idempotent: later calls return the first result.
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
