package otelcollector_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// pathRig is one Collector with the three kinds of readers the identity
// test compares: a Prometheus exporter, a cumulative ManualReader (what the
// Collector's own statistics and OTLP's default see) and nothing else.
type pathRig struct {
	c   *otelcollector.Collector
	exp *prometheus.Exporter
	rdr *sdkmetric.ManualReader
}

func newPathRig(t *testing.T, opts ...otelcollector.Option) pathRig {
	t.Helper()
	exp, err := prometheus.New()
	if err != nil {
		t.Fatal(err)
	}
	rdr := sdkmetric.NewManualReader()
	opts = append([]otelcollector.Option{
		otelcollector.WithExporter(exp),
		otelcollector.WithReader(rdr),
		otelcollector.WithResource(resource.Empty()),
	}, opts...)
	c, err := otelcollector.New(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return pathRig{c: c, exp: exp, rdr: rdr}
}

func (r pathRig) scrape(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.exp.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: HTTP %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// collectNormalized collects r's ManualReader and makes the result
// comparable: fixed timestamps, data points sorted by their attributes.
func (r pathRig) collectNormalized(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.rdr.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	fixed := time.Unix(1700000000, 0)
	enc := attribute.DefaultEncoder()
	for i := range rm.ScopeMetrics {
		ms := rm.ScopeMetrics[i].Metrics
		sort.Slice(ms, func(a, b int) bool { return ms[a].Name < ms[b].Name })
		for j := range ms {
			switch d := ms[j].Data.(type) {
			case metricdata.Sum[int64]:
				sort.Slice(d.DataPoints, func(a, b int) bool {
					return d.DataPoints[a].Attributes.Encoded(enc) < d.DataPoints[b].Attributes.Encoded(enc)
				})
				for k := range d.DataPoints {
					d.DataPoints[k].StartTime, d.DataPoints[k].Time = fixed, fixed
				}
			case metricdata.Histogram[float64]:
				sort.Slice(d.DataPoints, func(a, b int) bool {
					return d.DataPoints[a].Attributes.Encoded(enc) < d.DataPoints[b].Attributes.Encoded(enc)
				})
				for k := range d.DataPoints {
					d.DataPoints[k].StartTime, d.DataPoints[k].Time = fixed, fixed
				}
			case metricdata.Gauge[float64]:
				sort.Slice(d.DataPoints, func(a, b int) bool {
					return d.DataPoints[a].Attributes.Encoded(enc) < d.DataPoints[b].Attributes.Encoded(enc)
				})
				for k := range d.DataPoints {
					d.DataPoints[k].StartTime, d.DataPoints[k].Time = fixed, fixed
				}
			}
		}
	}
	return rm
}

// otlpBytes encodes rm with the OTel OTLP/HTTP exporter and returns the
// request body it sends.
func otlpBytes(t *testing.T, rm metricdata.ResourceMetrics) []byte {
	t.Helper()
	var (
		mu   sync.Mutex
		body []byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		mu.Lock()
		body = b
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	ctx := context.Background()
	exp, err := otlpmetrichttp.New(ctx,
		otlpmetrichttp.WithEndpointURL(srv.URL+"/v1/metrics"),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exp.Shutdown(ctx) }()
	if err := exp.Export(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(body) == 0 {
		t.Fatal("OTLP receiver got no body")
	}
	return body
}

// identityWorkload records the same things through both paths: every
// counter through the Collector and through handles, zero tokens, session
// ends (one rejected), invalid input and, with a cardinality limit of 8,
// series past the limit.
func identityWorkload(t *testing.T, c *otelcollector.Collector, round int) {
	t.Helper()
	ctx := context.Background()
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	o, err := c.Orchestrator("orch-1")
	ok(err)
	m, err := o.Model("claude-sonnet")
	ok(err)
	ok(m.Add(ctx, int64(100*round)))
	ok(c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", 5))
	ok(c.RecordTokenUsage(ctx, "orch-2", "claude-haiku", 0))
	ok(o.RecordTokenUsage(ctx, "gpt", 7))
	for i := 0; i < 12; i++ { // past the limit of 8: overflow
		ok(c.RecordTokenUsage(ctx, fmt.Sprintf("orch-x%d", i), "m", int64(i+round)))
	}
	tool, err := o.Tool("search")
	ok(err)
	ok(tool.Inc(ctx, otelcollector.ToolSuccess))
	ok(tool.Inc(ctx, otelcollector.ToolTimeout))
	ok(c.RecordToolInvocation(ctx, "orch-1", "search", otelcollector.ToolSuccess))
	ok(o.RecordToolInvocation(ctx, "bash", otelcollector.ToolError))
	ok(c.RecordDelegation(ctx, "orch-1", "orch-2", otelcollector.DelegationRejected))
	ok(o.RecordDelegation(ctx, "orch-3", otelcollector.DelegationSuccess))
	errs, err := o.ErrorType("timeout")
	ok(err)
	ok(errs.Inc(ctx))
	ok(c.RecordError(ctx, "orch-2", "rate_limit"))
	ok(o.RecordError(ctx, "timeout"))
	s, err := o.SessionType("claude-code")
	ok(err)
	ok(s.Start(ctx))
	ok(s.Start(ctx))
	ok(s.End(ctx))
	ok(c.RecordSessionStart(ctx, "orch-2", "ruflo"))
	ok(c.RecordSessionEnd(ctx, "orch-2", "ruflo"))
	if err := c.RecordSessionEnd(ctx, "orch-2", "ruflo"); !errors.Is(err, otelcollector.ErrInvalidValue) {
		t.Fatalf("end without start: %v", err)
	}
	ok(o.RecordSessionStart(ctx, "ruflo"))
	ok(o.RecordMessageLatency(ctx, 300*time.Millisecond))
	ok(c.RecordMessageLatency(ctx, "orch-2", 2*time.Second))
	ok(c.UpdateNodeLoad("node-a", 0.5))
	ok(c.UpdateBudgetUtilization("orch-1", otelcollector.PeriodDaily, 42))
	if err := c.RecordTokenUsage(ctx, "", "m", 1); err == nil {
		t.Fatal("empty orchestrator accepted")
	}
	if err := m.Add(ctx, -1); err == nil {
		t.Fatal("negative tokens accepted")
	}
}

// TestAtomicCountersIdenticalExport proves that WithAtomicCounters changes
// nothing a cumulative reader exports: the Prometheus scrape, the
// ManualReader data and their OTLP encoding are identical, byte for byte,
// to the default synchronous path, after each of several rounds.
func TestAtomicCountersIdenticalExport(t *testing.T) {
	limit := otelcollector.WithCardinalityLimit(8)
	syncPath := newPathRig(t, limit)
	atomicPath := newPathRig(t, limit, otelcollector.WithAtomicCounters())
	for round := 1; round <= 3; round++ {
		identityWorkload(t, syncPath.c, round)
		identityWorkload(t, atomicPath.c, round)

		want, got := syncPath.scrape(t), atomicPath.scrape(t)
		if want != got {
			t.Fatalf("round %d: Prometheus scrapes differ\nsynchronous:\n%s\natomic:\n%s", round, want, got)
		}
		if !bytes.Contains([]byte(got), []byte(`orchestrator_tokens_used_total{otel_metric_overflow="true"}`)) {
			t.Fatalf("round %d: no overflow series in the scrape:\n%s", round, got)
		}
		wantRM, gotRM := syncPath.collectNormalized(t), atomicPath.collectNormalized(t)
		metricdatatest.AssertEqual(t, wantRM, gotRM)
		if w, g := otlpBytes(t, wantRM), otlpBytes(t, gotRM); !bytes.Equal(w, g) {
			i := 0
			for i < len(w) && w[i] == g[i] {
				i++
			}
			t.Fatalf("round %d: OTLP encodings differ (%d and %d bytes) at %d: %q vs %q", round, len(w), len(g), i, w[max(i-80, 0):min(i+40, len(w))], g[max(i-80, 0):min(i+40, len(g))])
		}
	}
	if s, a := syncPath.c.Rejected(), atomicPath.c.Rejected(); s != a || s == 0 {
		t.Fatalf("rejected: synchronous %d, atomic %d", s, a)
	}
}

// TestAtomicCountersDeltaTemporality pins the documented difference of
// WithAtomicCounters under delta temporality: an idle series reports a 0
// point instead of no point. The sums over time are the same.
func TestAtomicCountersDeltaTemporality(t *testing.T) {
	delta := func(sdkmetric.InstrumentKind) metricdata.Temporality { return metricdata.DeltaTemporality }
	for _, tc := range []struct {
		name      string
		opts      []otelcollector.Option
		wantIdleA bool
	}{
		{"synchronous", nil, false},
		{"atomic", []otelcollector.Option{otelcollector.WithAtomicCounters()}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(delta))
			c, err := otelcollector.New(ctx, append([]otelcollector.Option{otelcollector.WithReader(r)}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close(ctx) }()
			_ = c.RecordTokenUsage(ctx, "o", "a", 10)
			if v, ok := intValue(collect(t, r)["orchestrator.tokens.used"], set("orchestrator_id", "o", "model", "a")); !ok || v != 10 {
				t.Fatalf("first interval: a = %d, %v", v, ok)
			}
			_ = c.RecordTokenUsage(ctx, "o", "b", 3)
			m := collect(t, r)["orchestrator.tokens.used"]
			if v, ok := intValue(m, set("orchestrator_id", "o", "model", "b")); !ok || v != 3 {
				t.Fatalf("second interval: b = %d, %v", v, ok)
			}
			v, ok := intValue(m, set("orchestrator_id", "o", "model", "a"))
			if ok != tc.wantIdleA || v != 0 {
				t.Fatalf("second interval: idle a = %d, present %v; want present %v with 0", v, ok, tc.wantIdleA)
			}
		})
	}
}

// TestAtomicCountersConcurrentSafe records from several goroutines while
// collecting, then checks the totals.
func TestAtomicCountersConcurrentSafe(t *testing.T) {
	ctx := context.Background()
	c, r := newTestCollector(t, otelcollector.WithAtomicCounters())
	const goroutines, perG = 4, 500
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			o, err := c.Orchestrator("o")
			if err != nil {
				t.Error(err)
				return
			}
			m, _ := o.Model("m")
			s, _ := o.SessionType("st")
			for i := 0; i < perG; i++ {
				_ = m.Add(ctx, 1)
				_ = c.RecordTokenUsage(ctx, "o", fmt.Sprint("n", i%20), 1)
				_ = s.Start(ctx)
				_ = s.End(ctx)
			}
		}(g)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			var rm metricdata.ResourceMetrics
			_ = r.Collect(ctx, &rm)
		}
	}()
	wg.Wait()
	<-done
	ms := collect(t, r)
	if v, _ := intValue(ms["orchestrator.tokens.used"], set("orchestrator_id", "o", "model", "m")); v != goroutines*perG {
		t.Fatalf("bound tokens = %d, want %d", v, goroutines*perG)
	}
	var total int64
	for _, dp := range ms["orchestrator.tokens.used"].Data.(metricdata.Sum[int64]).DataPoints {
		total += dp.Value
	}
	if total != 2*goroutines*perG {
		t.Fatalf("total tokens = %d, want %d", total, 2*goroutines*perG)
	}
	if v, ok := intValue(ms["orchestrator.sessions.active"], set("orchestrator_id", "o", "session_type", "st")); !ok || v != 0 {
		t.Fatalf("sessions = %d, %v; want 0", v, ok)
	}
}
