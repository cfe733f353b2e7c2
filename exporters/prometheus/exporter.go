package prometheus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Exporter serves the metrics of the reader it supplies to Prometheus
// scrapes. Create it with New and hand it to otelcollector.WithExporter.
type Exporter struct {
	reader   *otelprom.Exporter
	registry *promclient.Registry
	handler  http.Handler

	server   *http.Server
	listener net.Listener
	served   chan struct{}

	shutdownOnce sync.Once
	shutdownErr  error
}

// New creates an Exporter registered on a private client_golang registry
// (see WithRegistry). With WithServer it also listens, before returning, so
// that a bad address fails here rather than later in the background.
func New(opts ...Option) (*Exporter, error) {
	cfg := newConfig(opts)
	if cfg.certFile != "" && !cfg.serve {
		cfg.errs = append(cfg.errs, errors.New("prometheus: WithTLS needs WithServer"))
	}
	if err := errors.Join(cfg.errs...); err != nil {
		return nil, err
	}

	// Underscore escaping with suffixes turns the OTel names and units of
	// internal/schema into the exact legacy Prometheus names.
	popts := []otelprom.Option{
		otelprom.WithRegisterer(cfg.registry),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
	}
	if !cfg.scopeInfo {
		popts = append(popts, otelprom.WithoutScopeInfo())
	}
	if !cfg.targetInfo {
		popts = append(popts, otelprom.WithoutTargetInfo())
	}
	reader, err := otelprom.New(popts...)
	if err != nil {
		return nil, fmt.Errorf("prometheus: creating exporter: %w", err)
	}

	e := &Exporter{
		reader:   reader,
		registry: cfg.registry,
		handler: guard(promhttp.HandlerFor(cfg.registry, promhttp.HandlerOpts{
			ErrorLog:          slogPrinter{cfg.logger},
			ErrorHandling:     promhttp.ContinueOnError,
			EnableOpenMetrics: true,
		}), cfg.auth),
	}
	if cfg.serve {
		if err := e.listen(cfg); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *Exporter) listen(cfg config) error {
	var tlsCfg *tls.Config
	if cfg.certFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
		if err != nil {
			return fmt.Errorf("prometheus: loading TLS certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("prometheus: listening on %s: %w", cfg.addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.path, e.handler)
	e.listener = ln
	e.served = make(chan struct{})
	e.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		ReadTimeout:       cfg.readTimeout,
		WriteTimeout:      cfg.writeTimeout,
		IdleTimeout:       cfg.idleTimeout,
		MaxHeaderBytes:    cfg.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.logger.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(e.served)
		if err := e.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.logger.Error("prometheus exporter server stopped", "error", err)
		}
	}()
	return nil
}

// Reader returns the SDK reader to register on a MeterProvider; it
// implements otelcollector's Exporter interface together with Shutdown.
func (e *Exporter) Reader() sdkmetric.Reader { return e.reader }

// Handler returns the http.Handler that serves a scrape. It negotiates the
// OpenMetrics format (which carries exemplars) when the scraper asks for it.
// It answers only GET and HEAD (405 Method Not Allowed with an Allow header
// otherwise) and, with WithBearerToken or WithBasicAuth, only requests that
// carry the credential (401 Unauthorized otherwise).
func (e *Exporter) Handler() http.Handler { return e.handler }

// Registry returns the client_golang registry the exporter registers on.
func (e *Exporter) Registry() *promclient.Registry { return e.registry }

// Addr returns the address the built-in server listens on, with the port
// resolved (useful with "127.0.0.1:0"), or "" without WithServer.
func (e *Exporter) Addr() string {
	if e.listener == nil {
		return ""
	}
	return e.listener.Addr().String()
}

// Shutdown stops the built-in server, waiting for scrapes in progress until
// ctx is done. The reader itself is shut down by its MeterProvider. Shutdown
// is idempotent.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.shutdownOnce.Do(func() {
		if e.server == nil {
			return
		}
		e.shutdownErr = e.server.Shutdown(ctx)
		if e.shutdownErr != nil {
			e.shutdownErr = errors.Join(e.shutdownErr, e.server.Close())
		}
		<-e.served
	})
	return e.shutdownErr
}

// slogPrinter adapts a slog.Logger to promhttp's Logger.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error(fmt.Sprint(v...)) }
