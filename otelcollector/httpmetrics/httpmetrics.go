// Package httpmetrics is net/http middleware that records each request as an
// orchestrator message through an otelcollector.Collector: its latency in
// orchestrator_message_latency_seconds and, when it fails, an error in
// orchestrator_errors_total, both for the orchestrator ID that a function of
// the caller's takes from the request.
//
//	m, err := httpmetrics.New(c, func(r *http.Request) string { return r.Header.Get("X-Orchestrator-ID") })
//	mux.Handle("/v1/messages", m.Handler(messages))
//
// It lives beside otelcollector and imports only otelcollector and the
// standard library, so that a program gets it without linking anything
// more.
//
// # Metrics emitted
//
// Per request with a non-empty orchestrator ID:
//
//	orchestrator_message_latency_seconds{orchestrator_id}  time from the call of the handler to its return
//	orchestrator_errors_total{orchestrator_id,error_type}  when the response status is 5xx (error_type "http_500" ... "http_599",
//	                                                       see WithErrorType) or the handler panics ("http_panic")
//
// The request's context is passed to the Collector, so that a sampled span
// set by tracing middleware in front of this one becomes an exemplar of the
// latency histogram.
//
// # Errors
//
// A record the Collector rejects (an ID that is not a valid label value, a
// closed Collector) does not change the response; the error goes to the
// handler of WithErrorHandler, by default the Collector's own
// (Collector.HandleError: its logger, rate-limited, or the handler of
// otelcollector.WithErrorHandler).
//
// # Concurrency
//
// A Middleware and the handlers it returns are safe for concurrent use.
package httpmetrics

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// ErrorTypePanic is the error_type recorded when the handler panics.
const ErrorTypePanic = "http_panic"

// Middleware records requests through a Collector. Create it with New.
type Middleware struct {
	c         *otelcollector.Collector
	id        func(*http.Request) string
	errorType func(status int) string
	handle    func(error)
}

// Option configures a Middleware.
type Option interface {
	apply(config) config
}

type config struct {
	errorType func(status int) string
	handle    func(error)
	errs      []error
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

// WithErrorType sets which responses count as errors, and their error_type:
// f gets the status code and returns the error_type, or "" for a success.
// The default, ServerErrorType, counts every 5xx as "http_<code>". A nil f
// makes New fail.
func WithErrorType(f func(status int) string) Option {
	return optionFunc(func(c config) config {
		if f == nil {
			c.errs = append(c.errs, errors.New("httpmetrics: WithErrorType(nil)"))
			return c
		}
		c.errorType = f
		return c
	})
}

// WithErrorHandler sets where the errors of rejected records go. The
// default is the Collector's HandleError. A nil f makes New fail.
func WithErrorHandler(f func(error)) Option {
	return optionFunc(func(c config) config {
		if f == nil {
			c.errs = append(c.errs, errors.New("httpmetrics: WithErrorHandler(nil)"))
			return c
		}
		c.handle = f
		return c
	})
}

// serverErrorTypes are the error types of 500..599, built once so that
// recording an error allocates no string.
var serverErrorTypes = func() (t [100]string) {
	for i := range t {
		t[i] = "http_" + strconv.Itoa(500+i)
	}
	return t
}()

// ServerErrorType is the default of WithErrorType: "http_<code>" for a 5xx
// status, "" (a success) for any other.
func ServerErrorType(status int) string {
	if status >= 500 && status <= 599 {
		return serverErrorTypes[status-500]
	}
	return ""
}

// New returns a Middleware that records through c for the orchestrator ID
// that orchestratorID returns for each request. A request for which it
// returns "" is not recorded (for example a health check that belongs to no
// orchestrator). A nil c or orchestratorID, or an invalid option, makes New
// fail.
func New(c *otelcollector.Collector, orchestratorID func(*http.Request) string, opts ...Option) (*Middleware, error) {
	cfg := config{errorType: ServerErrorType, handle: c.HandleError}
	for _, o := range opts {
		if o != nil {
			cfg = o.apply(cfg)
		}
	}
	if c == nil {
		cfg.errs = append(cfg.errs, errors.New("httpmetrics: nil Collector"))
	}
	if orchestratorID == nil {
		cfg.errs = append(cfg.errs, errors.New("httpmetrics: nil orchestratorID func"))
	}
	if err := errors.Join(cfg.errs...); err != nil {
		return nil, err
	}
	return &Middleware{c: c, id: orchestratorID, errorType: cfg.errorType, handle: cfg.handle}, nil
}

// Handler returns next wrapped: each request is timed and recorded. If next
// panics, the request is recorded with error type ErrorTypePanic and the
// panic continues, so that net/http handles it as usual.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := m.id(r)
		if id == "" {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		t := m.c.StartTimer()
		panicked := true
		defer func() {
			errType := ErrorTypePanic
			if !panicked {
				errType = m.errorType(sw.statusCode())
			}
			m.record(r, id, t, errType)
		}()
		next.ServeHTTP(sw, r)
		panicked = false
	})
}

func (m *Middleware) record(r *http.Request, id string, t otelcollector.Timer, errType string) {
	ctx := r.Context()
	if err := m.c.RecordMessageLatency(ctx, id, t.Stop()); err != nil {
		m.handle(err)
		return // the same ID would be rejected again
	}
	if errType != "" {
		if err := m.c.RecordError(ctx, id, errType); err != nil {
			m.handle(err)
		}
	}
}

// statusWriter remembers the final status code written through it. Unwrap
// lets http.ResponseController reach the writer underneath for deadlines
// and the like; Flush and Hijack are forwarded for handlers that assert
// those interfaces directly.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx responses are informational; the final status comes later.
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// statusCode is the status the client received: 200 if the handler wrote
// nothing, as net/http then sends.
func (w *statusWriter) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

var (
	_ http.Flusher  = (*statusWriter)(nil)
	_ http.Hijacker = (*statusWriter)(nil)
)
