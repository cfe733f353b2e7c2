package otlp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"go.uber.org/goleak"

	"github.com/wundr-io/orchestrator-otel/exporters/otlp"
	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

var _ otelcollector.Exporter = (*otlp.Exporter)(nil)

func TestMain(m *testing.M) {
	// The exporter itself never writes to otel.Handle
	// (TestLibraryErrorsNeverReachOtelHandle); the test receivers and the
	// OTel exporters' environment parsing might, and the default handler
	// would print to stderr.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	goleak.VerifyTestMain(m)
}

// pipeline is an exporter on a MeterProvider of its own with one counter,
// one up-down counter and one histogram.
type pipeline struct {
	exp      *otlp.Exporter
	provider *sdkmetric.MeterProvider
	counter  metric.Int64Counter
	updown   metric.Int64UpDownCounter
	hist     metric.Float64Histogram
}

func newPipeline(t *testing.T, opts ...otlp.Option) *pipeline {
	t.Helper()
	exp, err := otlp.New(context.Background(), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p := &pipeline{exp: exp, provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp.Reader()))}
	m := p.provider.Meter("test")
	p.counter, _ = m.Int64Counter("test.counter")
	p.updown, _ = m.Int64UpDownCounter("test.updown")
	p.hist, _ = m.Float64Histogram("test.hist")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.provider.Shutdown(ctx)
		if err := exp.Shutdown(ctx); err != nil {
			t.Errorf("exporter Shutdown after provider Shutdown: %v", err)
		}
	})
	return p
}

func (p *pipeline) flush(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.provider.ForceFlush(ctx)
}

func TestNewInvalidOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	testCases := []struct {
		name string
		opts []otlp.Option
		env  map[string]string
		want string
	}{
		{name: "empty endpoint", opts: []otlp.Option{otlp.WithEndpoint("")}, want: "WithEndpoint"},
		{name: "endpoint URL without scheme", opts: []otlp.Option{otlp.WithEndpointURL("127.0.0.1:4317")}, want: "endpoint URL"},
		{name: "endpoint URL bad scheme", opts: []otlp.Option{otlp.WithEndpointURL("ftp://127.0.0.1:4317")}, want: "endpoint URL"},
		{name: "unknown protocol", opts: []otlp.Option{otlp.WithProtocol("http/json")}, want: "not supported"},
		{name: "unknown protocol in env", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, want: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "zero timeout", opts: []otlp.Option{otlp.WithTimeout(0)}, want: "timeout"},
		{name: "negative interval", opts: []otlp.Option{otlp.WithInterval(-time.Second)}, want: "interval"},
		{name: "zero export timeout", opts: []otlp.Option{otlp.WithExportTimeout(0)}, want: "export timeout"},
		{name: "unknown temporality", opts: []otlp.Option{otlp.WithTemporality(7)}, want: "temporality"},
		{name: "insecure with CA", opts: []otlp.Option{otlp.WithInsecure(), otlp.WithCAFile(notPEM)}, want: "conflicts"},
		{name: "TLS config with CA", opts: []otlp.Option{otlp.WithTLSConfig(&tls.Config{}), otlp.WithCAFile(notPEM)}, want: "conflicts"},
		{name: "missing CA file", opts: []otlp.Option{otlp.WithCAFile(filepath.Join(dir, "absent.pem"))}, want: "reading CA file"},
		{name: "CA file without PEM", opts: []otlp.Option{otlp.WithCAFile(notPEM)}, want: "no PEM certificate"},
		{name: "client certificate without key", opts: []otlp.Option{otlp.WithClientCertificate(notPEM, "")}, want: "key file"},
		{name: "client certificate not loadable", opts: []otlp.Option{otlp.WithClientCertificate(notPEM, notPEM)}, want: "client certificate"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			exp, err := otlp.New(context.Background(), tc.opts...)
			if err == nil {
				_ = exp.Shutdown(context.Background())
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestNewCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := otlp.New(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("New with a canceled context: %v, want context.Canceled", err)
	}
}

func TestExport(t *testing.T) {
	testCases := []struct {
		name     string
		protocol otlp.Protocol
		gzip     bool
	}{
		{"grpc", otlp.ProtocolGRPC, false},
		{"grpc gzip", otlp.ProtocolGRPC, true},
		{"http", otlp.ProtocolHTTP, false},
		{"http gzip", otlp.ProtocolHTTP, true},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			var r *receiver
			if tc.protocol == otlp.ProtocolHTTP {
				r = startHTTPReceiver(t, nil)
			} else {
				r = startGRPCReceiver(t, nil)
			}
			opts := []otlp.Option{
				otlp.WithProtocol(tc.protocol), otlp.WithEndpoint(r.Addr), otlp.WithInsecure(),
				otlp.WithHeaders(map[string]string{"authorization": "Bearer s3cret"}),
				otlp.WithInterval(time.Hour),
			}
			if tc.gzip {
				opts = append(opts, otlp.WithGzip())
			}
			p := newPipeline(t, opts...)
			if got := p.exp.Protocol(); got != tc.protocol {
				t.Errorf("Protocol() = %q, want %q", got, tc.protocol)
			}
			p.counter.Add(context.Background(), 42)
			if err := p.flush(t); err != nil {
				t.Fatalf("ForceFlush: %v", err)
			}
			if got := r.Sums("test.counter"); len(got) != 1 || got[0] != 42 {
				t.Errorf("test.counter points = %v, want [42]", got)
			}
			if got := r.Auth(); len(got) != 1 || got[0] != "Bearer s3cret" {
				t.Errorf("authorization headers = %q, want [Bearer s3cret]", got)
			}
			if got := r.Gzipped(); len(got) != 1 || got[0] != tc.gzip {
				t.Errorf("gzipped = %v, want [%v]", got, tc.gzip)
			}
			if got := p.exp.FailedExports(); got != 0 {
				t.Errorf("FailedExports = %d, want 0", got)
			}
		})
	}
}

func TestTemporality(t *testing.T) {
	testCases := []struct {
		name        string
		opts        []otlp.Option
		env         string
		wantCounter []int64
		wantTemp    metricpb.AggregationTemporality
	}{
		{"default cumulative", nil, "", []int64{5, 8}, metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE},
		{"delta", []otlp.Option{otlp.WithTemporality(otlp.Delta)}, "", []int64{5, 3}, metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA},
		{"delta from env", nil, "delta", []int64{5, 3}, metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA},
		{"option wins over env", []otlp.Option{otlp.WithTemporality(otlp.Cumulative)}, "delta", []int64{5, 8}, metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", tc.env)
			}
			r := startGRPCReceiver(t, nil)
			opts := append([]otlp.Option{otlp.WithEndpoint(r.Addr), otlp.WithInsecure(), otlp.WithInterval(time.Hour)}, tc.opts...)
			p := newPipeline(t, opts...)
			ctx := context.Background()
			p.counter.Add(ctx, 5)
			p.updown.Add(ctx, 2)
			if err := p.flush(t); err != nil {
				t.Fatal(err)
			}
			p.counter.Add(ctx, 3)
			p.updown.Add(ctx, -1)
			if err := p.flush(t); err != nil {
				t.Fatal(err)
			}
			if got := r.Sums("test.counter"); !equal(got, tc.wantCounter) {
				t.Errorf("test.counter points = %v, want %v", got, tc.wantCounter)
			}
			if got := r.Metric("test.counter").GetSum().GetAggregationTemporality(); got != tc.wantTemp {
				t.Errorf("test.counter temporality = %v, want %v", got, tc.wantTemp)
			}
			// Up-down counters stay cumulative under delta.
			if got := r.Sums("test.updown"); !equal(got, []int64{2, 1}) {
				t.Errorf("test.updown points = %v, want [2 1]", got)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	for _, protocol := range []otlp.Protocol{otlp.ProtocolGRPC, otlp.ProtocolHTTP} {
		t.Run(string(protocol), func(t *testing.T) {
			var r *receiver
			if protocol == otlp.ProtocolHTTP {
				r = startHTTPReceiver(t, pki.Server)
			} else {
				r = startGRPCReceiver(t, pki.Server)
			}
			base := []otlp.Option{otlp.WithProtocol(protocol), otlp.WithEndpoint(r.Addr),
				otlp.WithInterval(time.Hour), otlp.WithRetry(false), otlp.WithTimeout(2 * time.Second)}

			good := newPipeline(t, append(base, otlp.WithCAFile(pki.CAFile), otlp.WithClientCertificate(pki.ClientCert, pki.ClientKey))...)
			good.counter.Add(context.Background(), 7)
			if err := good.flush(t); err != nil {
				t.Fatalf("ForceFlush with CA and client certificate: %v", err)
			}
			if got := r.Sums("test.counter"); !equal(got, []int64{7}) {
				t.Errorf("test.counter points = %v, want [7]", got)
			}

			// Without the client certificate the server refuses the handshake.
			noCert := newPipeline(t, append(base, otlp.WithCAFile(pki.CAFile))...)
			noCert.counter.Add(context.Background(), 1)
			if err := noCert.flush(t); err == nil {
				t.Error("ForceFlush without a client certificate succeeded, want an error")
			}
			if got := noCert.exp.FailedExports(); got != 1 {
				t.Errorf("FailedExports = %d, want 1", got)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	r := startHTTPReceiver(t, nil)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+r.Addr)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20from-env")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "100") // ms

	// No option at all: protocol, endpoint, security, headers and interval
	// all come from the environment. No flush: the periodic export must
	// happen on its own, well before the 10 s default.
	p := newPipeline(t)
	if got := p.exp.Protocol(); got != otlp.ProtocolHTTP {
		t.Fatalf("Protocol() = %q, want %q", got, otlp.ProtocolHTTP)
	}
	p.counter.Add(context.Background(), 3)
	deadline := time.Now().Add(5 * time.Second)
	for r.Requests() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if r.Requests() == 0 {
		t.Fatal("no periodic export within 5 s with OTEL_METRIC_EXPORT_INTERVAL=100")
	}
	if got := r.Auth()[0]; got != "Bearer from-env" {
		t.Errorf("authorization = %q, want %q", got, "Bearer from-env")
	}

	// An option wins over its variable.
	other := startGRPCReceiver(t, nil)
	q := newPipeline(t, otlp.WithProtocol(otlp.ProtocolGRPC), otlp.WithEndpoint(other.Addr),
		otlp.WithInsecure(), otlp.WithHeaders(map[string]string{"authorization": "Bearer from-option"}),
		otlp.WithInterval(time.Hour))
	q.counter.Add(context.Background(), 1)
	if err := q.flush(t); err != nil {
		t.Fatal(err)
	}
	if got := other.Auth(); len(got) != 1 || got[0] != "Bearer from-option" {
		t.Errorf("authorization = %q, want [Bearer from-option]", got)
	}
}

// TestFailuresCountedAndLogged: refused exports are counted, logged once
// per kind however many there are, never with the header values, and the
// count reaches the receiver as a metric once exports succeed again.
func TestFailuresCountedAndLogged(t *testing.T) {
	for _, tc := range []struct {
		protocol otlp.Protocol
		kind     string
	}{{otlp.ProtocolGRPC, "unauthenticated"}, {otlp.ProtocolHTTP, "http_401"}} {
		t.Run(string(tc.protocol), func(t *testing.T) {
			var r *receiver
			if tc.protocol == otlp.ProtocolHTTP {
				r = startHTTPReceiver(t, nil)
			} else {
				r = startGRPCReceiver(t, nil)
			}
			r.refuse.Store(true)
			var logs syncBuffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			p := newPipeline(t, otlp.WithProtocol(tc.protocol), otlp.WithEndpoint(r.Addr), otlp.WithInsecure(),
				otlp.WithHeaders(map[string]string{"authorization": "Bearer never-log-me"}),
				otlp.WithInterval(time.Hour), otlp.WithLogger(logger))

			const failures = 5
			for i := range failures {
				p.counter.Add(context.Background(), 1)
				if err := p.flush(t); err == nil {
					t.Fatalf("flush %d succeeded against a refusing receiver", i)
				}
			}
			if got := p.exp.FailedExports(); got != failures {
				t.Errorf("FailedExports = %d, want %d", got, failures)
			}
			out := logs.String()
			if n := strings.Count(out, "OTLP metric export failed"); n != 1 {
				t.Errorf("%d failure lines for %d failures of one kind, want 1:\n%s", n, failures, out)
			}
			if !strings.Contains(out, "kind="+tc.kind) {
				t.Errorf("log does not name kind %q:\n%s", tc.kind, out)
			}

			r.refuse.Store(false)
			if err := p.flush(t); err != nil {
				t.Fatalf("flush after the receiver accepts again: %v", err)
			}
			if got := r.Sums(schema.OTLPFailedExports); !equal(got, []int64{failures}) {
				t.Errorf("%s points = %v, want [%d]", schema.OTLPFailedExports, got, failures)
			}
			if got := r.Sums("test.counter"); !equal(got, []int64{failures}) {
				t.Errorf("test.counter points = %v, want [%d] (cumulative recovers the failed exports)", got, failures)
			}
			out = logs.String()
			if !strings.Contains(out, "OTLP metric export recovered") || !strings.Contains(out, "failed_before=5") {
				t.Errorf("no recovery line with failed_before=5:\n%s", out)
			}
			if strings.Contains(out, "never-log-me") {
				t.Errorf("log contains the header value:\n%s", out)
			}
		})
	}
}

func TestUnreachableAtStart(t *testing.T) {
	addr := closedPort(t)
	for _, tc := range []struct {
		protocol otlp.Protocol
		kind     string
	}{{otlp.ProtocolGRPC, "unavailable"}, {otlp.ProtocolHTTP, "unreachable"}} {
		t.Run(string(tc.protocol), func(t *testing.T) {
			var logs syncBuffer
			p := newPipeline(t, otlp.WithProtocol(tc.protocol), otlp.WithEndpoint(addr), otlp.WithInsecure(),
				otlp.WithInterval(time.Hour), otlp.WithRetry(false), otlp.WithTimeout(2*time.Second),
				otlp.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			p.counter.Add(context.Background(), 1)
			if err := p.flush(t); err == nil {
				t.Fatal("flush to a closed port succeeded")
			}
			if got := p.exp.FailedExports(); got != 1 {
				t.Errorf("FailedExports = %d, want 1", got)
			}
			if !strings.Contains(logs.String(), "kind="+tc.kind) {
				t.Errorf("log does not name kind %q:\n%s", tc.kind, logs.String())
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	r := startGRPCReceiver(t, nil)
	ctx := context.Background()

	// Alone (no provider): Shutdown releases the exporter, twice is fine.
	exp, err := otlp.New(ctx, otlp.WithEndpoint(r.Addr), otlp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Errorf("first Shutdown: %v", err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}

	// Owned by a Collector: Close shuts the reader down and then calls
	// Shutdown, which has nothing left to do; a later Shutdown is a no-op.
	exp, err = otlp.New(ctx, otlp.WithEndpoint(r.Addr), otlp.WithInsecure(), otlp.WithInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RecordTokenUsage(ctx, "orch-1", "model-a", 10); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown after Close: %v", err)
	}
	if got := r.Sums(schema.TokensUsed); !equal(got, []int64{10}) {
		t.Errorf("%s points = %v, want [10] (pushed by Close)", schema.TokensUsed, got)
	}

	// Shut down first: the exporter pushes and stops; the Collector's
	// Close then finds the reader already shut down and says so.
	exp, err = otlp.New(ctx, otlp.WithEndpoint(r.Addr), otlp.WithInsecure(), otlp.WithInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, err = otelcollector.New(ctx, otelcollector.WithExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RecordTokenUsage(ctx, "orch-2", "model-a", 20); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown before Close: %v", err)
	}
	if got := r.Sums(schema.TokensUsed); !equal(got, []int64{10, 20}) {
		t.Errorf("%s points = %v, want [10 20] (pushed by Shutdown)", schema.TokensUsed, got)
	}
	if err := c.Close(ctx); !errors.Is(err, sdkmetric.ErrReaderShutdown) {
		t.Errorf("Close after the exporter's Shutdown: %v, want ErrReaderShutdown", err)
	}
}

func TestShutdownConcurrentSafe(t *testing.T) {
	exp, err := otlp.New(context.Background(), otlp.WithEndpoint(closedPort(t)), otlp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_ = exp.FailedExports()
			errs <- exp.Shutdown(context.Background())
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
