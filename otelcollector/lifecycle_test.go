package otelcollector_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// captureExporter is an sdkmetric.Exporter that keeps, from each export,
// the sum of every int counter and the count of every histogram, by metric
// name. Registered on a PeriodicReader, it receives the reader's final
// collection when the Collector closes: what a push exporter would send.
type captureExporter struct {
	mu      sync.Mutex
	last    map[string]int64
	exports int
	// block, if set, makes Export wait for ctx to be done (honour) or for
	// release to be closed (ignoring ctx).
	block         bool
	ignoreCtx     bool
	release       chan struct{}
	exportEntered chan struct{}
	enterOnce     sync.Once
}

func newCaptureExporter() *captureExporter {
	return &captureExporter{release: make(chan struct{}), exportEntered: make(chan struct{})}
}

func (e *captureExporter) Temporality(sdkmetric.InstrumentKind) metricdata.Temporality {
	return metricdata.CumulativeTemporality
}

func (e *captureExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

func (e *captureExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if e.block {
		e.enterOnce.Do(func() { close(e.exportEntered) })
		if e.ignoreCtx {
			<-e.release
		} else {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-e.release:
			}
		}
	}
	totals := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					totals[m.Name] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					totals[m.Name] += int64(dp.Count)
				}
			}
		}
	}
	e.mu.Lock()
	e.last = totals
	e.exports++
	e.mu.Unlock()
	return nil
}

func (e *captureExporter) ForceFlush(context.Context) error { return nil }
func (e *captureExporter) Shutdown(context.Context) error   { return nil }

func (e *captureExporter) totals() (map[string]int64, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last, e.exports
}

// eachCounterMode runs f for each of counterModes (handles_test.go).
func eachCounterMode(t *testing.T, f func(t *testing.T, opts ...otelcollector.Option)) {
	for _, m := range counterModes {
		t.Run(m.name, func(t *testing.T) { f(t, m.opts...) })
	}
}

// TestCloseLosesNoRecordConcurrentSafe closes the Collector while writers
// record as fast as they can. Every record must either return nil and be in
// the final export of a PeriodicReader (read by its exporter on Shutdown) or
// return ErrClosed and be in no export. Several rounds make the race window
// likely to be hit.
func TestCloseLosesNoRecordConcurrentSafe(t *testing.T) {
	eachCounterMode(t, func(t *testing.T, opts ...otelcollector.Option) {
		const writers, rounds = 8, 20
		var lost, extra int64
		for round := range rounds {
			exp := newCaptureExporter()
			reader := sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))
			c, err := otelcollector.New(context.Background(), append(opts, otelcollector.WithReader(reader))...)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var accepted [4]atomic.Int64 // tokens, tools, latency, errors
			var wg sync.WaitGroup
			var started sync.WaitGroup
			started.Add(writers)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					started.Done()
					for i := 0; ; i++ {
						var err error
						k := (w + i) % 4
						switch k {
						case 0:
							err = c.RecordTokenUsage(ctx, "o", "m", 1)
						case 1:
							err = c.RecordToolInvocation(ctx, "o", "t", otelcollector.ToolSuccess)
						case 2:
							err = c.RecordMessageLatency(ctx, "o", time.Millisecond)
						case 3:
							err = c.RecordError(ctx, "o", "e")
						}
						if errors.Is(err, otelcollector.ErrClosed) {
							return
						}
						if err != nil {
							t.Error(err)
							return
						}
						accepted[k].Add(1)
					}
				}()
			}
			started.Wait()
			time.Sleep(time.Duration(1+round%5) * time.Millisecond)
			if err := c.Close(ctx); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			got, exports := exp.totals()
			if exports != 1 {
				t.Fatalf("round %d: %d exports, want the final one", round, exports)
			}
			for k, name := range []string{"orchestrator.tokens.used", "orchestrator.tool.invocations",
				"orchestrator.message.latency", "orchestrator.errors"} {
				want := accepted[k].Load()
				if d := want - got[name]; d > 0 {
					lost += d
					t.Errorf("round %d: %s: %d records returned nil, final export has %d: %d lost", round, name, want, got[name], d)
				} else if d < 0 {
					extra -= d
					t.Errorf("round %d: %s: final export has %d, only %d records returned nil", round, name, got[name], want)
				}
			}
		}
		t.Logf("%d rounds x %d writers closed mid-stream: lost %d, extra %d", rounds, writers, lost, extra)
	})
}

// TestCloseTwiceAndUseAfterClose: the second Close returns the first one's
// result; Flush, records and binds after Close return ErrClosed and are
// counted as rejected with reason closed.
func TestCloseTwiceAndFlushAfterClose(t *testing.T) {
	ctx := context.Background()
	c, err := otelcollector.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("second Close: %v, want nil (the first call's result)", err)
	}
	if err := c.Flush(ctx); !errors.Is(err, otelcollector.ErrClosed) {
		t.Fatalf("Flush after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Orchestrator("o"); !errors.Is(err, otelcollector.ErrClosed) {
		t.Fatalf("Orchestrator after Close: %v, want ErrClosed", err)
	}
	c.ForgetNode("n") // no-op, must not panic
	c.ForgetBudget("o", otelcollector.PeriodDaily)
}

// TestCloseWithExpiringContextWhileExportHangs closes a Collector whose
// PeriodicReader's exporter hangs in Export. Close must return by the
// deadline of its context with an error wrapping context.DeadlineExceeded,
// and no goroutine may be left behind once the exporter returns.
func TestCloseWithExpiringContextWhileExportHangs(t *testing.T) {
	testCases := []struct {
		name      string
		ignoreCtx bool
	}{
		{"exporter honours ctx", false},
		{"exporter ignores ctx", true},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			exp := newCaptureExporter()
			exp.block, exp.ignoreCtx = true, tc.ignoreCtx
			reader := sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))
			c, err := otelcollector.New(context.Background(), otelcollector.WithReader(reader))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.RecordTokenUsage(context.Background(), "o", "m", 1); err != nil {
				t.Fatal(err)
			}
			const deadline = 200 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err = c.Close(ctx)
			took := time.Since(start)
			t.Logf("Close returned after %v: %v", took, err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Close: %v, want an error wrapping context.DeadlineExceeded", err)
			}
			if took > deadline+300*time.Millisecond {
				t.Errorf("Close took %v with a %v deadline", took, deadline)
			}
			if err2 := c.Close(context.Background()); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("second Close: %v, want the first call's %v", err2, err)
			}
			if err := c.RecordTokenUsage(context.Background(), "o", "m", 1); !errors.Is(err, otelcollector.ErrClosed) {
				t.Errorf("record after a failed Close: %v, want ErrClosed", err)
			}
			// Let a hung exporter return; then nothing may be left running.
			close(exp.release)
		})
	}
}

// TestFlushWithExpiringContextWhileExportHangs: Flush, like Close, returns
// by its context's deadline even when an exporter ignores ctx and hangs.
func TestFlushWithExpiringContextWhileExportHangs(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	exp := newCaptureExporter()
	exp.block, exp.ignoreCtx = true, true
	reader := sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))
	c, err := otelcollector.New(context.Background(), otelcollector.WithReader(reader))
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err = c.Flush(ctx)
	took := time.Since(start)
	t.Logf("Flush returned after %v: %v", took, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush: %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if took > deadline+300*time.Millisecond {
		t.Errorf("Flush took %v with a %v deadline", took, deadline)
	}
	close(exp.release) // the hung export returns; Close then succeeds
	if err := c.Close(context.Background()); err != nil {
		t.Errorf("Close after the hung Flush: %v", err)
	}
}

// TestWithMetricsPanicRecordsAndRepanics: a panicking fn is recorded
// (latency and a function_execution_error) and the panic reaches the
// caller with its original value (a struct, a string, a runtime error);
// the Collector stays usable.
func TestWithMetricsPanicRecordsAndRepanics(t *testing.T) {
	c, r := newTestCollector(t)
	ctx := context.Background()
	type boom struct{ msg string }
	func() {
		defer func() {
			v := recover()
			if b, ok := v.(boom); !ok || b.msg != "fn blew up" {
				t.Fatalf("recovered %#v, want the original panic value", v)
			}
		}()
		_, _ = otelcollector.WithMetrics(ctx, c, "o", func(context.Context) (int, error) {
			panic(boom{"fn blew up"})
		})
		t.Fatal("WithMetrics returned instead of panicking")
	}()
	// A plain string panic value comes back unchanged too.
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Fatalf("recovered %v, want the original panic value", p)
			}
		}()
		_, _ = otelcollector.WithMetrics(ctx, c, "o", func(context.Context) (struct{}, error) {
			panic("kaboom")
		})
	}()
	// A runtime error panic too (nil map write), with a goexit-free stack.
	func() {
		defer func() {
			if _, ok := recover().(runtime.Error); !ok {
				t.Fatal("runtime error not re-panicked")
			}
		}()
		_, _ = otelcollector.WithMetrics(ctx, c, "o", func(context.Context) (int, error) {
			var m map[string]int
			//lint:ignore SA5000 the nil map write is the runtime panic under test
			m["x"] = 1
			return 0, nil
		})
	}()
	if v, err := otelcollector.WithMetrics(ctx, c, "o", func(context.Context) (string, error) { return "ok", nil }); v != "ok" || err != nil {
		t.Fatalf("after panics: %q %v", v, err)
	}
	ms := collect(t, r)
	if v, _ := intValue(ms["orchestrator.errors"], set("orchestrator_id", "o", "error_type", otelcollector.ErrorTypeFunctionExecution)); v != 3 {
		t.Errorf("function_execution_error = %d, want 3 (one per panic)", v)
	}
	if p := latencyPoint(t, ms["orchestrator.message.latency"]); p.Count != 4 {
		t.Errorf("latency count = %d, want 4", p.Count)
	}
}

// TestWithMetricsRecordFailureGoesToErrorHandler: a record that fails
// inside WithMetrics (here: the Collector is closed) does not change fn's
// result; it is reported to the handler of WithErrorHandler.
func TestWithMetricsRecordFailureGoesToErrorHandler(t *testing.T) {
	var mu sync.Mutex
	var handled []error
	c, _ := newTestCollector(t, otelcollector.WithErrorHandler(func(err error) {
		mu.Lock()
		handled = append(handled, err)
		mu.Unlock()
	}))
	_ = c.Close(context.Background())
	v, err := otelcollector.WithMetrics(context.Background(), c, "o", func(context.Context) (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Fatalf("WithMetrics = %d, %v; want fn's 7, nil", v, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != 1 || !errors.Is(handled[0], otelcollector.ErrClosed) {
		t.Fatalf("error handler got %v, want one ErrClosed", handled)
	}
}

// TestNewWithCancelledContextLeavesNothing: New fails on a cancelled
// context, naming New, and starts nothing (goleak checks).
func TestNewWithCancelledContextLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, err := otelcollector.New(ctx, otelcollector.WithReader(sdkmetric.NewManualReader()))
	if c != nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "New") {
		t.Fatalf("New = %v, %v; want nil and an error wrapping context.Canceled", c, err)
	}
}
