package otlp_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/wundr-io/orchestrator-otel/exporters/otlp"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// captureOtelHandle replaces the process-global OTel error handler for the
// test and returns what reaches it.
func captureOtelHandle(t *testing.T) func() []error {
	t.Helper()
	var (
		mu  sync.Mutex
		got []error
	)
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
	}))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	return func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), got...)
	}
}

// TestLibraryErrorsNeverReachOtelHandle: the exporter reports its own
// errors to its logger only. A clean Close while periodic exports run
// (every 5 ms, against the real test Collector) puts nothing on
// otel.Handle; neither do failed exports to a closed port, which reach the
// logger once per kind. On the old code the SDK's periodic reader passed
// every failed periodic export, and the one Close cancels, to otel.Handle
// as well, which prints to stderr by default.
func TestLibraryErrorsNeverReachOtelHandle(t *testing.T) {
	protocols := []otlp.Protocol{otlp.ProtocolGRPC, otlp.ProtocolHTTP}

	t.Run("clean close", func(t *testing.T) {
		handled := captureOtelHandle(t)
		peer := testpeer.StartCollector(t, testpeer.CollectorOptions{})
		for _, protocol := range protocols {
			ep := peer.GRPCEndpoint()
			if protocol == otlp.ProtocolHTTP {
				ep = peer.HTTPEndpoint()
			}
			const rounds = 4
			for round := range rounds {
				var logs syncBuffer
				exp, err := otlp.New(context.Background(), otlp.WithProtocol(protocol), otlp.WithEndpoint(ep), otlp.WithInsecure(),
					otlp.WithInterval(5*time.Millisecond), otlp.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
				if err != nil {
					t.Fatal(err)
				}
				c, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp))
				if err != nil {
					t.Fatal(err)
				}
				// Record for a while (about ten export intervals), so that
				// Close meets the exporter in its periodic loop.
				for range 50 {
					if err := c.RecordTokenUsage(context.Background(), "orch-clean", "m", 1); err != nil {
						t.Fatal(err)
					}
					time.Sleep(time.Millisecond)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err = c.Close(ctx)
				cancel()
				if err != nil {
					t.Errorf("%s round %d: Close: %v", protocol, round, err)
				}
				if exp.FailedExports() != 0 {
					t.Errorf("%s round %d: %d failed exports against the running Collector:\n%s", protocol, round, exp.FailedExports(), logs.String())
				}
			}
		}
		if got := handled(); len(got) != 0 {
			t.Errorf("%d errors reached otel.Handle on clean Close, first: %v", len(got), got[0])
		}
	})

	t.Run("export failures", func(t *testing.T) {
		handled := captureOtelHandle(t)
		addr := closedPort(t)
		for _, protocol := range protocols {
			var logs syncBuffer
			exp, err := otlp.New(context.Background(), otlp.WithProtocol(protocol), otlp.WithEndpoint(addr), otlp.WithInsecure(),
				otlp.WithInterval(5*time.Millisecond), otlp.WithRetry(false), otlp.WithTimeout(time.Second),
				otlp.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			if err != nil {
				t.Fatal(err)
			}
			c, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.RecordTokenUsage(context.Background(), "orch-fail", "m", 1); err != nil {
				t.Fatal(err)
			}
			// A bound on the test, not an assertion on time.
			for deadline := time.Now().Add(30 * time.Second); exp.FailedExports() < 3 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			if n := exp.FailedExports(); n < 3 {
				t.Fatalf("%s: %d failed periodic exports to a closed port, want >= 3", protocol, n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = c.Close(ctx)
			cancel()
			if err == nil {
				t.Errorf("%s: Close with a closed port returned nil; the final export cannot have arrived", protocol)
			} else if !strings.Contains(err.Error(), "exporters/otlp: shutdown: ") {
				t.Errorf("%s: Close error %q does not name the exporter", protocol, err)
			}
			if n := strings.Count(logs.String(), "OTLP metric export failed"); n != 1 {
				t.Errorf("%s: %d failure lines in the log for failures of one kind, want 1:\n%s", protocol, n, logs.String())
			}
		}
		if got := handled(); len(got) != 0 {
			t.Errorf("%d errors reached otel.Handle for failed exports, first: %v", len(got), got[0])
		}
	})
}

// TestShutdownErrorNamesExporter: the exporter's own Shutdown, called
// before the Collector's Close, fails its final export to a closed port
// with an error that names the exporter and wraps the cause; the Collector's
// Close then reports the reader as already shut down. On the old code the
// error was the OTel exporter's bare "failed to upload metrics: ...".
func TestShutdownErrorNamesExporter(t *testing.T) {
	for _, protocol := range []otlp.Protocol{otlp.ProtocolGRPC, otlp.ProtocolHTTP} {
		t.Run(string(protocol), func(t *testing.T) {
			exp, err := otlp.New(context.Background(), otlp.WithProtocol(protocol), otlp.WithEndpoint(closedPort(t)),
				otlp.WithInsecure(), otlp.WithRetry(false), otlp.WithTimeout(time.Second), otlp.WithInterval(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			c, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.RecordTokenUsage(context.Background(), "orch-1", "m", 1); err != nil {
				t.Fatal(err)
			}
			err = exp.Shutdown(context.Background())
			if err == nil || !strings.HasPrefix(err.Error(), "exporters/otlp: shutdown: ") || !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("Shutdown: %v, want it to start with %q and carry the cause", err, "exporters/otlp: shutdown: ")
			}
			if again := exp.Shutdown(context.Background()); again == nil || again.Error() != err.Error() {
				t.Errorf("second Shutdown: %v, want the first result", again)
			}
			if err := c.Close(context.Background()); !errors.Is(err, sdkmetric.ErrReaderShutdown) || !strings.Contains(err.Error(), "exporters/otlp: shutdown: ") {
				t.Errorf("Close after Shutdown: %v, want a named ErrReaderShutdown", err)
			}
		})
	}
}
