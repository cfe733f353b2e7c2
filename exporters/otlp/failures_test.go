package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestFailureKind pins failureKind on errors and transport outcomes built
// here; TestFailureKindsFromRealReceivers pins it on what the OTel
// exporters really return.
func TestFailureKind(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "http://127.0.0.1:1/v1/metrics", Err: &net.OpError{
		Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	httpStatus := func(code int32) *outcome {
		o := &outcome{}
		o.httpStatus.Store(code)
		o.answered.Store(code >= 200 && code <= 299)
		return o
	}
	answered := &outcome{}
	answered.answered.Store(true)
	// The text of an error never decides: these messages look like other
	// kinds.
	misleading := errors.New("failed to send metrics: 401 Unauthorized (body: timeout) partial success retry-able")
	testCases := []struct {
		name string
		err  error
		o    *outcome
		want string
	}{
		{"grpc unavailable", fmt.Errorf("failed to upload metrics: %w", status.Error(codes.Unavailable, "connection refused")), nil, "unavailable"},
		{"grpc unauthenticated after timeout cause", fmt.Errorf("%w: %w", errors.New("exporter export timeout"), status.Error(codes.Unauthenticated, "bad token")), nil, "unauthenticated"},
		{"grpc deadline", status.Error(codes.DeadlineExceeded, "late"), nil, "deadline_exceeded"},
		{"grpc permission denied", status.Error(codes.PermissionDenied, "no"), nil, "permission_denied"},
		{"grpc answered, partial success", misleading, answered, "partial_success"},
		{"connection refused", fmt.Errorf("failed to upload metrics: %w", refused), nil, "unreachable"},
		{"http 401", misleading, httpStatus(401), "http_401"},
		{"http 503 after retries", fmt.Errorf("max retry time elapsed: %w", misleading), httpStatus(503), "http_503"},
		{"http 2xx, partial success", misleading, httpStatus(200), "partial_success"},
		{"context deadline", fmt.Errorf("upload: %w", context.DeadlineExceeded), &outcome{}, "timeout"},
		{"net timeout", &url.Error{Op: "Post", URL: "http://x", Err: timeoutError{}}, &outcome{}, "timeout"},
		{"canceled", fmt.Errorf("upload: %w", context.Canceled), nil, "canceled"},
		{"text only", misleading, &outcome{}, "other"},
		{"other", errors.New("something else"), nil, "other"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := failureKind(tc.err, tc.o); got != tc.want {
				t.Errorf("failureKind(%q) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestFailureLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := newFailureLog(config{
		logger:   slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime})),
		protocol: ProtocolGRPC,
		logEvery: time.Minute,
		now:      clock.now,
	})
	errA, errB := errors.New("a failed"), errors.New("b failed")

	var total int64
	fail := func(kind string, err error) {
		total++
		l.failure(kind, err, total)
	}
	fail("unavailable", errA) // logged: first of its kind
	fail("unavailable", errA) // within the minute: counted only
	fail("unavailable", errA)
	fail("unauthenticated", errB) // another kind: logged
	clock.advance(time.Minute)
	fail("unavailable", errA) // logged, standing for 3
	l.success()               // recovered after 5
	l.success()               // nothing to say
	fail("unavailable", errA) // within the minute of the last line: counted only
	l.success()               // recovered again, but rate-limited

	want := strings.Join([]string{
		`level=WARN msg="OTLP metric export failed" protocol=grpc kind=unavailable failures=1 failed_total=1 error="a failed"`,
		`level=WARN msg="OTLP metric export failed" protocol=grpc kind=unauthenticated failures=1 failed_total=4 error="b failed"`,
		`level=WARN msg="OTLP metric export failed" protocol=grpc kind=unavailable failures=3 failed_total=5 error="a failed"`,
		`level=INFO msg="OTLP metric export recovered" protocol=grpc failed_before=5`,
	}, "\n") + "\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// stubExporter is an sdkmetric.Exporter with a fixed temporality whose
// exports fail while fail is set.
type stubExporter struct {
	temporality metricdata.Temporality
	fail        bool
}

func (s *stubExporter) Temporality(sdkmetric.InstrumentKind) metricdata.Temporality {
	return s.temporality
}

func (*stubExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

func (s *stubExporter) Export(context.Context, *metricdata.ResourceMetrics) error {
	if s.fail {
		return status.Error(codes.Unavailable, "down")
	}
	return nil
}

func (*stubExporter) ForceFlush(context.Context) error { return nil }
func (*stubExporter) Shutdown(context.Context) error   { return nil }

func TestFailedProducer(t *testing.T) {
	for _, tc := range []struct {
		temporality metricdata.Temporality
		want        []int64
	}{
		{metricdata.CumulativeTemporality, []int64{2, 2, 3}},
		{metricdata.DeltaTemporality, []int64{2, 0, 1}},
	} {
		t.Run(tc.temporality.String(), func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1000, 0)}
			stub := &stubExporter{temporality: tc.temporality}
			ce := &countingExporter{Exporter: stub, log: newFailureLog(config{
				logger: slog.New(slog.DiscardHandler), logEvery: time.Minute, now: clock.now})}
			p := newFailedProducer(ce, clock.now)
			ctx := context.Background()
			var got []int64
			produce := func() {
				clock.advance(time.Second)
				sm, err := p.Produce(ctx)
				if err != nil {
					t.Fatal(err)
				}
				sum := sm[0].Metrics[0].Data.(metricdata.Sum[int64])
				if sum.Temporality != tc.temporality || !sum.IsMonotonic {
					t.Errorf("sum temporality %v monotonic %v", sum.Temporality, sum.IsMonotonic)
				}
				got = append(got, sum.DataPoints[0].Value)
			}
			stub.fail = true
			_ = ce.Export(ctx, &metricdata.ResourceMetrics{})
			_ = ce.Export(ctx, &metricdata.ResourceMetrics{})
			produce()
			produce()
			_ = ce.Export(ctx, &metricdata.ResourceMetrics{})
			stub.fail = false
			_ = ce.Export(ctx, &metricdata.ResourceMetrics{})
			produce()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("produced %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCanceledExportNotCounted: an export whose context the caller canceled
// (the reader's Shutdown interrupting a periodic export) is not a failure.
func TestCanceledExportNotCounted(t *testing.T) {
	var buf bytes.Buffer
	ce := &countingExporter{Exporter: &stubExporter{fail: true}, log: newFailureLog(config{
		logger: slog.New(slog.NewTextHandler(&buf, nil)), logEvery: time.Minute, now: time.Now})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ce.Export(ctx, &metricdata.ResourceMetrics{}); err == nil {
		t.Fatal("Export returned nil, want the exporter's error")
	}
	if got := ce.failed.Load(); got != 0 {
		t.Errorf("failed = %d after a canceled export, want 0", got)
	}
	if buf.Len() != 0 {
		t.Errorf("logged at Info or above: %s", buf.String())
	}
	if err := ce.Export(context.Background(), &metricdata.ResourceMetrics{}); err == nil {
		t.Fatal("Export returned nil, want the exporter's error")
	}
	if got := ce.failed.Load(); got != 1 {
		t.Errorf("failed = %d, want 1", got)
	}
}

func TestConfigEnvironment(t *testing.T) {
	cfg, err := newConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.protocol != ProtocolGRPC || cfg.interval != DefaultInterval {
		t.Errorf("defaults: protocol %q interval %v, want grpc and %v", cfg.protocol, cfg.interval, DefaultInterval)
	}

	// The interval variable is read here, as the SDK would read it: the
	// exporter runs the periodic loop itself.
	t.Setenv(envInterval, "2500")
	t.Setenv(envProtocol, "grpc")
	t.Setenv(envMetricsProtocol, "http/protobuf") // the metrics variable wins
	cfg, err = newConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.protocol != ProtocolHTTP || cfg.interval != 2500*time.Millisecond {
		t.Errorf("from env: protocol %q interval %v, want http/protobuf and 2.5s", cfg.protocol, cfg.interval)
	}
	for _, bad := range []string{"0", "-5", "ten", "1.5"} {
		t.Setenv(envInterval, bad)
		if cfg, err = newConfig(nil); err != nil || cfg.interval != DefaultInterval {
			t.Errorf("%s=%q: interval %v, %v; want %v (ignored, as the SDK does)", envInterval, bad, cfg.interval, err, DefaultInterval)
		}
	}
	t.Setenv(envInterval, "2500")

	cfg, err = newConfig([]Option{WithProtocol(ProtocolGRPC), WithInterval(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.protocol != ProtocolGRPC || cfg.interval != time.Second {
		t.Errorf("options over env: protocol %q interval %v", cfg.protocol, cfg.interval)
	}
}

func TestWithHeadersCopies(t *testing.T) {
	h := map[string]string{"authorization": "Bearer a"}
	opt := WithHeaders(h)
	h["authorization"] = "Bearer changed"
	cfg, err := newConfig([]Option{opt, WithHeaders(map[string]string{"x-tenant": "t1"})})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.headers["authorization"] != "Bearer a" || cfg.headers["x-tenant"] != "t1" {
		t.Errorf("headers = %v", cfg.headers)
	}
}

// FuzzCheckEndpoint: an endpoint checkEndpoint accepts is exactly the host
// of the URL the OTel exporters build from it ("http://" + endpoint), with
// no path, query or user, and a numeric port from 1 to 65535.
func FuzzCheckEndpoint(f *testing.F) {
	for _, s := range []string{"127.0.0.1:4317", "[::1]:4318", "localhost:4317", "http://h:1", "h:1/v1", "h", ":1", "h:0",
		"h:65536", "u@h:1", "h:1?x", "h:1#x", "[::1", "h: 1", "h:+1", "h:01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ep string) {
		if checkEndpoint(ep) != nil {
			return
		}
		u, err := url.Parse("http://" + ep)
		if err != nil {
			t.Fatalf("checkEndpoint accepted %q, but it is no URL host: %v", ep, err)
		}
		if u.Host != ep || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			t.Fatalf("checkEndpoint accepted %q, but the URL reads host %q path %q query %q", ep, u.Host, u.Path, u.RawQuery)
		}
		port, err := strconv.Atoi(u.Port())
		if err != nil || port < 1 || port > 65535 {
			t.Fatalf("checkEndpoint accepted %q with port %q", ep, u.Port())
		}
	})
}
