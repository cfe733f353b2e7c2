package otlp

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// outcome is what the transport saw of one export: the status of the last
// HTTP response, or whether the last gRPC call returned without error. The
// OTel exporters return no typed error for either (an HTTP refusal is only
// text), so failureKind classifies from this instead of parsing messages.
// countingExporter puts a fresh one in the context of every export; the
// HTTP transport and the gRPC interceptor below fill it in.
type outcome struct {
	httpStatus atomic.Int32
	answered   atomic.Bool // the receiver answered: HTTP 2xx, or a gRPC call without error
}

type outcomeKey struct{}

func withOutcome(ctx context.Context) (context.Context, *outcome) {
	o := &outcome{}
	return context.WithValue(ctx, outcomeKey{}, o), o
}

func outcomeFrom(ctx context.Context) *outcome {
	o, _ := ctx.Value(outcomeKey{}).(*outcome)
	return o
}

// statusTransport records the status of each HTTP response.
type statusTransport struct{ next http.RoundTripper }

func (s statusTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	o := outcomeFrom(r.Context())
	if o != nil {
		// Each attempt of a retried export starts afresh.
		o.httpStatus.Store(0)
		o.answered.Store(false)
	}
	resp, err := s.next.RoundTrip(r)
	if o != nil && err == nil {
		o.httpStatus.Store(int32(resp.StatusCode))
		o.answered.Store(resp.StatusCode >= 200 && resp.StatusCode <= 299)
	}
	return resp, err
}

// recordAnswer is a gRPC unary client interceptor recording whether the
// call returned without error.
func recordAnswer(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if o := outcomeFrom(ctx); o != nil {
		o.answered.Store(err == nil)
	}
	return err
}

// Environment variables of the OTel HTTP exporter that it no longer reads
// itself once it is given an HTTP client (otlpmetrichttp.WithHTTPClient):
// this package reads them the same way, the metrics variant first.
const (
	envTimeout        = "OTEL_EXPORTER_OTLP_TIMEOUT"
	envMetricsTimeout = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"
	envCA             = "OTEL_EXPORTER_OTLP_CERTIFICATE"
	envMetricsCA      = "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE"
	envCert           = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
	envMetricsCert    = "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE"
	envKey            = "OTEL_EXPORTER_OTLP_CLIENT_KEY"
	envMetricsKey     = "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY"
)

// defaultHTTPTimeout is the OTel HTTP exporter's own default.
const defaultHTTPTimeout = 10 * time.Second

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// httpClient builds the client the OTel HTTP exporter would build (the
// same transport settings, proxy from the environment included), with
// statusTransport around the transport.
func httpClient(cfg config, tlsCfg *tls.Config) (*http.Client, error) {
	timeout := cfg.timeout
	if timeout == 0 {
		timeout = defaultHTTPTimeout
		if v := firstEnv(envMetricsTimeout, envTimeout); v != "" {
			// Milliseconds; an invalid value is ignored, as OTel does.
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
				timeout = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if tlsCfg == nil && !cfg.insecure {
		env := cfg
		env.caFile = firstEnv(envMetricsCA, envCA)
		env.certFile = firstEnv(envMetricsCert, envCert)
		env.keyFile = firstEnv(envMetricsKey, envKey)
		if env.certFile != "" && env.keyFile == "" || env.certFile == "" && env.keyFile != "" {
			env.certFile, env.keyFile = "", ""
		}
		var err error
		if tlsCfg, err = env.buildTLS(); err != nil {
			return nil, err
		}
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg
	}
	return &http.Client{Transport: statusTransport{next: tr}, Timeout: timeout}, nil
}
