package otlp_test

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wundr-io/orchestrator-otel/exporters/otlp"
)

// answerFunc is how a test receiver answers one export.
type answerFunc func(ctx context.Context) (*colmetricpb.ExportMetricsServiceResponse, error)

type answerService struct {
	colmetricpb.UnimplementedMetricsServiceServer
	answer answerFunc
}

func (s answerService) Export(ctx context.Context, _ *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	return s.answer(ctx)
}

// startAnsweringGRPC serves OTLP/gRPC answering every export with answer.
func startAnsweringGRPC(t *testing.T, answer answerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	colmetricpb.RegisterMetricsServiceServer(srv, answerService{answer: answer})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return ln.Addr().String()
}

// startAnsweringHTTP serves OTLP/HTTP on /v1/metrics with handler.
func startAnsweringHTTP(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String()
}

func partialSuccess() *colmetricpb.ExportMetricsServiceResponse {
	return &colmetricpb.ExportMetricsServiceResponse{PartialSuccess: &colmetricpb.ExportMetricsPartialSuccess{
		RejectedDataPoints: 2, ErrorMessage: "two points rejected by the test receiver"}}
}

func httpStatus(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "answered by the test receiver", code)
	}
}

// TestFailureKindsFromRealReceivers pins every failure kind on what the
// OTel exporters really return, against real receivers answering each way
// (and a closed port), read back from the kind the exporter logs. The
// classification uses the errors' types, gRPC status codes and the status
// the exporter's own HTTP transport saw, never the errors' text; an OTel
// upgrade that changes the text or the types shows here.
func TestFailureKindsFromRealReceivers(t *testing.T) {
	hang := func(ctx context.Context) (*colmetricpb.ExportMetricsServiceResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	code := func(c codes.Code) answerFunc {
		return func(context.Context) (*colmetricpb.ExportMetricsServiceResponse, error) {
			return nil, status.Error(c, "answered by the test receiver")
		}
	}
	testCases := []struct {
		name     string
		protocol otlp.Protocol
		endpoint func(t *testing.T) string
		want     string
	}{
		{"grpc unauthenticated", otlp.ProtocolGRPC, func(t *testing.T) string { return startAnsweringGRPC(t, code(codes.Unauthenticated)) }, "unauthenticated"},
		{"grpc permission denied", otlp.ProtocolGRPC, func(t *testing.T) string { return startAnsweringGRPC(t, code(codes.PermissionDenied)) }, "permission_denied"},
		{"grpc unavailable", otlp.ProtocolGRPC, func(t *testing.T) string { return startAnsweringGRPC(t, code(codes.Unavailable)) }, "unavailable"},
		{"grpc resource exhausted", otlp.ProtocolGRPC, func(t *testing.T) string { return startAnsweringGRPC(t, code(codes.ResourceExhausted)) }, "resource_exhausted"},
		{"grpc invalid argument", otlp.ProtocolGRPC, func(t *testing.T) string { return startAnsweringGRPC(t, code(codes.InvalidArgument)) }, "invalid_argument"},
		{"grpc partial success", otlp.ProtocolGRPC, func(t *testing.T) string {
			return startAnsweringGRPC(t, func(context.Context) (*colmetricpb.ExportMetricsServiceResponse, error) { return partialSuccess(), nil })
		}, "partial_success"},
		{"grpc closed port", otlp.ProtocolGRPC, closedPort, "unavailable"},
		{"grpc no answer", otlp.ProtocolGRPC, func(t *testing.T) string { return startAnsweringGRPC(t, hang) }, "deadline_exceeded"},
		{"http 400", otlp.ProtocolHTTP, func(t *testing.T) string { return startAnsweringHTTP(t, httpStatus(http.StatusBadRequest)) }, "http_400"},
		{"http 401", otlp.ProtocolHTTP, func(t *testing.T) string { return startAnsweringHTTP(t, httpStatus(http.StatusUnauthorized)) }, "http_401"},
		{"http 404", otlp.ProtocolHTTP, func(t *testing.T) string { return startAnsweringHTTP(t, httpStatus(http.StatusNotFound)) }, "http_404"},
		{"http 429", otlp.ProtocolHTTP, func(t *testing.T) string { return startAnsweringHTTP(t, httpStatus(http.StatusTooManyRequests)) }, "http_429"},
		{"http 503", otlp.ProtocolHTTP, func(t *testing.T) string { return startAnsweringHTTP(t, httpStatus(http.StatusServiceUnavailable)) }, "http_503"},
		{"http partial success", otlp.ProtocolHTTP, func(t *testing.T) string {
			return startAnsweringHTTP(t, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				body, _ := proto.Marshal(partialSuccess())
				w.Header().Set("Content-Type", "application/x-protobuf")
				_, _ = w.Write(body)
			})
		}, "partial_success"},
		{"http closed port", otlp.ProtocolHTTP, closedPort, "unreachable"},
		{"http no answer", otlp.ProtocolHTTP, func(t *testing.T) string {
			return startAnsweringHTTP(t, func(_ http.ResponseWriter, r *http.Request) {
				// Once the body is read, the server notices the client
				// going away and cancels the request's context.
				_, _ = io.Copy(io.Discard, r.Body)
				<-r.Context().Done()
			})
		}, "timeout"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			p := newPipeline(t, otlp.WithProtocol(tc.protocol), otlp.WithEndpoint(tc.endpoint(t)), otlp.WithInsecure(),
				otlp.WithInterval(time.Hour), otlp.WithRetry(false), otlp.WithTimeout(500*time.Millisecond),
				otlp.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			p.counter.Add(context.Background(), 1)
			err := p.flush(t)
			if err == nil {
				t.Fatal("flush succeeded")
			}
			if !strings.HasPrefix(err.Error(), "exporters/otlp: flush: ") {
				t.Errorf("flush error %q does not name the exporter", err)
			}
			if got := p.exp.FailedExports(); got != 1 {
				t.Errorf("FailedExports = %d, want 1", got)
			}
			if !strings.Contains(logs.String(), "kind="+tc.want+" ") {
				t.Errorf("log does not name kind %q:\n%s", tc.want, logs.String())
			}
		})
	}
}

// TestHTTPTLSFromEnvironment: the exporter builds the OTLP/HTTP client
// itself (to see each response's status), so it reads the TLS and timeout
// variables the OTel HTTP exporter would: mutual TLS from
// OTEL_EXPORTER_OTLP_METRICS_* (winning over the general ones) works, and a
// certificate file that cannot be read makes New fail.
func TestHTTPTLSFromEnvironment(t *testing.T) {
	pki := newTestPKI(t)
	r := startHTTPReceiver(t, pki.Server)
	t.Setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", pki.CAFile)
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", pki.ClientCert)
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", pki.ClientKey)
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2000")
	p := newPipeline(t, otlp.WithProtocol(otlp.ProtocolHTTP), otlp.WithEndpoint(r.Addr), otlp.WithInterval(time.Hour))
	p.counter.Add(context.Background(), 5)
	if err := p.flush(t); err != nil {
		t.Fatalf("flush with mutual TLS from the environment: %v", err)
	}
	if got := r.Sums("test.counter"); !equal(got, []int64{5}) {
		t.Errorf("test.counter points = %v, want [5]", got)
	}

	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/nonexistent/ca.pem")
	exp, err := otlp.New(context.Background(), otlp.WithProtocol(otlp.ProtocolHTTP), otlp.WithEndpoint(r.Addr))
	if err == nil {
		_ = exp.Shutdown(context.Background())
		t.Fatal("New succeeded with an unreadable OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE")
	}
}
