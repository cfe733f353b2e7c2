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
	"sync/atomic"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/wundr-io/orchestrator-otel/internal/lateproducer"
)

// Exporter serves the metrics of the reader it supplies to Prometheus
// scrapes. Create it with New and hand it to otelcollector.WithExporter.
type Exporter struct {
	reader   *reader
	inner    promclient.Collector   // the OTel exporter's collector
	registry *promclient.Registry   // what Handler serves
	producer *lateproducer.Producer // the Collector's recorded series (producer.go)
	handler  http.Handler

	// claim is registered on every registerer in claimedOn.
	claim     *claim
	claimedOn []promclient.Registerer
	closed    atomic.Bool
	mu        sync.RWMutex // gather holds it to read, close to write closed
	release   sync.Once

	server   *http.Server
	listener net.Listener
	served   chan struct{}

	shutdownOnce sync.Once
	shutdownErr  error
}

// reader is the SDK reader the Exporter supplies: the OTel Prometheus
// exporter, whose shutdown also closes the Exporter's Handler.
type reader struct {
	*otelprom.Exporter
	e *Exporter
}

// Shutdown shuts the OTel exporter's reader down; from then on Handler
// answers 503 and the collector is unregistered.
func (r *reader) Shutdown(ctx context.Context) error {
	r.e.close()
	if err := r.Exporter.Shutdown(ctx); err != nil {
		return fmt.Errorf("exporters/prometheus: shutdown reader: %w", err)
	}
	return nil
}

// New creates an Exporter registered on a private client_golang registry
// (see WithRegisterer). With WithServer it also listens, before returning,
// so that a bad address fails here rather than later in the background.
//
// New fails with ErrInvalidOption for an invalid option, with
// ErrRegistryConflict when the registry already holds one of the library's
// series names, and with the listener's error when it cannot listen. A
// failed New leaves nothing registered and nothing listening.
func New(opts ...Option) (*Exporter, error) {
	cfg := newConfig(opts)
	if cfg.certFile != "" && !cfg.serve {
		cfg.errs = append(cfg.errs, fmt.Errorf("%w: WithTLS needs WithServer", ErrInvalidOption))
	}
	if cfg.pathSet && !cfg.serve {
		cfg.errs = append(cfg.errs, fmt.Errorf("%w: WithPath needs WithServer (mount Handler on your own mux otherwise)", ErrInvalidOption))
	}
	if err := errors.Join(cfg.errs...); err != nil {
		return nil, err
	}

	// Underscore escaping with suffixes turns the OTel names and units of
	// internal/schema into the exact legacy Prometheus names.
	captured := &capture{}
	producer := &lateproducer.Producer{}
	popts := []otelprom.Option{
		otelprom.WithProducer(producer),
		otelprom.WithRegisterer(captured),
		otelprom.WithTranslationStrategy(strategy),
	}
	if !cfg.scopeInfo {
		popts = append(popts, otelprom.WithoutScopeInfo())
	}
	if !cfg.targetInfo {
		popts = append(popts, otelprom.WithoutTargetInfo())
	}
	inner, err := otelprom.New(popts...)
	if err != nil {
		return nil, fmt.Errorf("exporters/prometheus: creating exporter: %w", err)
	}
	cl, err := newClaim()
	if err != nil {
		return nil, err
	}

	e := &Exporter{inner: captured.c, claim: cl, producer: producer}
	e.reader = &reader{Exporter: inner, e: e}
	if err := e.register(cfg.registerer); err != nil {
		return nil, err
	}
	hopts := promhttp.HandlerOpts{
		ErrorLog:          slogPrinter{cfg.logger},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}
	e.handler = guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Gathered under the read lock that close takes for writing: a
		// scrape either has all the series or answers 503, never a 200
		// cut short by a reader shutting down beneath it. The response is
		// written outside the lock, so a slow client cannot hold up Close.
		g, ok := e.gather()
		if !ok {
			http.Error(w, "exporters/prometheus: exporter is shut down", http.StatusServiceUnavailable)
			return
		}
		promhttp.HandlerFor(g, hopts).ServeHTTP(w, r)
	}), cfg.auth)
	if cfg.serve {
		if err := e.listen(cfg); err != nil {
			e.close()
			return nil, err
		}
	}
	return e, nil
}

// register claims the library's names and registers the forwarder on reg
// (nil: a private registry), and also on a private registry for Handler
// when reg is a Registerer but not a *Registry.
func (e *Exporter) register(reg promclient.Registerer) error {
	targets := []promclient.Registerer{reg}
	switch r := reg.(type) {
	case nil:
		e.registry = promclient.NewRegistry()
		targets = []promclient.Registerer{e.registry}
	case *promclient.Registry:
		e.registry = r
	default:
		e.registry = promclient.NewRegistry()
		targets = append(targets, e.registry)
	}
	for _, t := range targets {
		if err := t.Register(e.claim); err != nil {
			e.close()
			return fmt.Errorf("%w: the registry already serves one of the library's orchestrator_* series "+
				"(another exporter on this registry, or an application metric of that name; "+
				"give each exporter a Registerer with its own constant label, see WithRegisterer): %w", ErrRegistryConflict, err)
		}
		e.claimedOn = append(e.claimedOn, t)
		// An unchecked collector: this never fails.
		if err := t.Register(forwarder{e}); err != nil {
			e.close()
			return fmt.Errorf("%w: %w", ErrRegistryConflict, err)
		}
	}
	return nil
}

// close makes Handler answer 503 and the forwarder go quiet, and releases
// the library's names on every registry, once.
func (e *Exporter) close() {
	e.mu.Lock()
	e.closed.Store(true)
	e.mu.Unlock()
	e.release.Do(func() {
		for _, r := range e.claimedOn {
			r.Unregister(e.claim)
		}
	})
}

// gather gathers the served registry unless the exporter is closed.
func (e *Exporter) gather() (promclient.Gatherer, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return nil, false
	}
	mfs, err := e.registry.Gather()
	return gathered{mfs, err}, true
}

// gathered is the result of one Gather, served as a Gatherer.
type gathered struct {
	mfs []*dto.MetricFamily
	err error
}

func (g gathered) Gather() ([]*dto.MetricFamily, error) { return g.mfs, g.err }

func (e *Exporter) listen(cfg config) error {
	var tlsCfg *tls.Config
	if cfg.certFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
		if err != nil {
			return fmt.Errorf("exporters/prometheus: loading TLS certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// The mux is built before listening: checkPath has made sure Handle
	// cannot panic, and nothing is bound if it could.
	mux := http.NewServeMux()
	mux.Handle(cfg.path, e.handler)
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("exporters/prometheus: listening on %s: %w", cfg.addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
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
// carry the credential (401 Unauthorized otherwise). Once the exporter or
// its reader is shut down (the Collector's Close does both) it answers 503
// Service Unavailable, so that Prometheus marks the target down instead of
// seeing a healthy target without series; stop serving it before Close.
func (e *Exporter) Handler() http.Handler { return e.handler }

// Registry returns the client_golang registry Handler serves: the one given
// to WithRegistry or WithRegisterer, or a private one.
func (e *Exporter) Registry() *promclient.Registry { return e.registry }

// Addr returns the address the built-in server listens on, with the port
// resolved (useful with "127.0.0.1:0"), or "" without WithServer.
func (e *Exporter) Addr() string {
	if e.listener == nil {
		return ""
	}
	return e.listener.Addr().String()
}

// Shutdown makes Handler answer 503, unregisters the exporter's collector
// and stops the built-in server, waiting for scrapes in progress until ctx
// is done and then cutting them. The reader itself is shut down by its
// MeterProvider. An error starts with "exporters/prometheus: shutdown:" and
// wraps the cause (ctx's error when scrapes were still running). Shutdown
// is idempotent: later calls return the first result.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.shutdownOnce.Do(func() {
		e.close()
		if e.server == nil {
			return
		}
		err := e.server.Shutdown(ctx)
		if err != nil {
			err = errors.Join(err, e.server.Close())
		}
		<-e.served
		if err != nil {
			e.shutdownErr = fmt.Errorf("exporters/prometheus: shutdown: %w", err)
		}
	})
	return e.shutdownErr
}

// slogPrinter adapts a slog.Logger to promhttp's Logger.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error(fmt.Sprint(v...)) }
