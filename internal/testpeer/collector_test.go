package testpeer

import (
	"context"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

const waitTimeout = 15 * time.Second

// newProvider returns a MeterProvider that exports through exp only when
// flushed, and shuts it down when the test ends.
func newProvider(t *testing.T, exp sdkmetric.Exporter) *sdkmetric.MeterProvider {
	t.Helper()
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "testpeer-test"))),
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The last export may be refused (bad token) or find the
		// Collector stopped; only the goroutines must go.
		_ = mp.Shutdown(ctx)
	})
	return mp
}

func grpcProvider(t *testing.T, endpoint string, opts ...otlpmetricgrpc.Option) *sdkmetric.MeterProvider {
	t.Helper()
	opts = append([]otlpmetricgrpc.Option{
		otlpmetricgrpc.WithEndpoint(endpoint),
		otlpmetricgrpc.WithInsecure(),
		otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}),
	}, opts...)
	exp, err := otlpmetricgrpc.New(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return newProvider(t, exp)
}

func httpProvider(t *testing.T, endpoint string, opts ...otlpmetrichttp.Option) *sdkmetric.MeterProvider {
	t.Helper()
	opts = append([]otlpmetrichttp.Option{
		otlpmetrichttp.WithEndpoint(endpoint),
		otlpmetrichttp.WithInsecure(),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
	}, opts...)
	exp, err := otlpmetrichttp.New(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return newProvider(t, exp)
}

// addInt adds n to the counter name with attrs and exports it at once.
func addInt(t *testing.T, mp *sdkmetric.MeterProvider, name string, n int64, attrs ...attribute.KeyValue) error {
	t.Helper()
	ctr, err := mp.Meter("testpeer").Int64Counter(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ctr.Add(ctx, n, metric.WithAttributes(attrs...))
	return mp.ForceFlush(ctx)
}

func wantInt(t *testing.T, p Point, want int64) {
	t.Helper()
	if p.Number == nil || p.Number.AsInt == nil {
		t.Fatalf("point %+v: want an integer number point", p)
	}
	if got := *p.Number.AsInt; got != want {
		t.Errorf("asInt = %d, want %d", got, want)
	}
}

func TestCollectorReceivesOTLPGRPC(t *testing.T) {
	c := StartCollector(t, CollectorOptions{})
	mp := grpcProvider(t, c.GRPCEndpoint())
	if err := addInt(t, mp, "testpeer.grpc.requests", 42, attribute.String("orchestrator_id", "o-1")); err != nil {
		t.Fatalf("export: %v", err)
	}

	p := c.WaitForPoint(waitTimeout, "testpeer.grpc.requests", map[string]string{"orchestrator_id": "o-1"}, nil)
	wantInt(t, p, 42)
	if p.Metric.Sum == nil || !p.Metric.Sum.IsMonotonic || p.Metric.Sum.AggregationTemporality != TemporalityCumulative {
		t.Errorf("metric %+v: want a monotonic cumulative sum", p.Metric)
	}
	if got := Attrs(p.Resource.Attributes)["service.name"]; got != "testpeer-test" {
		t.Errorf("resource service.name = %q, want testpeer-test", got)
	}
	if p.Scope.Name != "testpeer" {
		t.Errorf("scope name = %q, want testpeer", p.Scope.Name)
	}
	if p.Number.TimeUnixNano == 0 || p.Number.StartTimeUnixNano == 0 {
		t.Errorf("timestamps not decoded: %+v", p.Number)
	}

	// The attribute set must match exactly.
	if _, ok := c.LastPoint("testpeer.grpc.requests", nil); ok {
		t.Error("LastPoint with no attributes found a point that has one")
	}
	if _, ok := c.LastPoint("testpeer.grpc.requests", map[string]string{"orchestrator_id": "o-1", "x": "y"}); ok {
		t.Error("LastPoint with an extra attribute found a point")
	}
}

func TestCollectorReceivesOTLPHTTP(t *testing.T) {
	c := StartCollector(t, CollectorOptions{})
	mp := httpProvider(t, c.HTTPEndpoint())
	meter := mp.Meter("testpeer")
	ctx := context.Background()

	hist, err := meter.Float64Histogram("testpeer.http.latency", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(1, 5))
	if err != nil {
		t.Fatal(err)
	}
	gauge, err := meter.Float64Gauge("testpeer.http.load")
	if err != nil {
		t.Fatal(err)
	}
	attrs := metric.WithAttributes(attribute.String("node_id", "n-1"))
	hist.Record(ctx, 0.5, attrs)
	hist.Record(ctx, 2, attrs)
	gauge.Record(ctx, 0.75, attrs)
	if err := mp.ForceFlush(ctx); err != nil {
		t.Fatalf("export: %v", err)
	}

	want := map[string]string{"node_id": "n-1"}
	p := c.WaitForPoint(waitTimeout, "testpeer.http.latency", want, nil)
	h := p.Histogram
	if h == nil {
		t.Fatalf("point %+v: want a histogram point", p)
	}
	if p.Metric.Unit != "s" || p.Metric.Histogram.AggregationTemporality != TemporalityCumulative {
		t.Errorf("metric unit %q temporality %v, want s cumulative", p.Metric.Unit, p.Metric.Histogram.AggregationTemporality)
	}
	if h.Count != 2 || h.Sum == nil || *h.Sum != 2.5 {
		t.Errorf("count %d sum %v, want 2 and 2.5", h.Count, h.Sum)
	}
	if !slices.Equal(h.BucketCounts, []uint64{1, 1, 0}) || !slices.Equal(h.ExplicitBounds, []float64{1, 5}) {
		t.Errorf("buckets %v bounds %v, want [1 1 0] and [1 5]", h.BucketCounts, h.ExplicitBounds)
	}
	if h.Min == nil || *h.Min != 0.5 || h.Max == nil || *h.Max != 2 {
		t.Errorf("min %v max %v, want 0.5 and 2", h.Min, h.Max)
	}

	g := c.WaitForPoint(waitTimeout, "testpeer.http.load", want, nil)
	if g.Metric.Gauge == nil || g.Number == nil || g.Number.AsDouble == nil || *g.Number.AsDouble != 0.75 {
		t.Errorf("gauge point %+v: want asDouble 0.75", g.Number)
	}
}

func TestCollectorPrometheusExporter(t *testing.T) {
	c := StartCollector(t, CollectorOptions{})
	mp := grpcProvider(t, c.GRPCEndpoint())
	if err := addInt(t, mp, "testpeer.prom.requests", 7, attribute.String("orchestrator_id", "o-2")); err != nil {
		t.Fatalf("export: %v", err)
	}

	line := regexp.MustCompile(`(?m)^testpeer_prom_requests_total\{([^}]*)\} 7$`)
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	var body string
	WaitFor(t, waitTimeout, func() bool {
		resp, err := client.Get(c.PrometheusURL())
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return false
		}
		body = string(b)
		return line.MatchString(body)
	})
	labels := line.FindStringSubmatch(body)[1]
	if !strings.Contains(labels, `orchestrator_id="o-2"`) {
		t.Errorf("labels %s: want orchestrator_id=\"o-2\"", labels)
	}
	if strings.Contains(labels, "otel_scope_") {
		t.Errorf("labels %s: without_scope_info should drop scope labels", labels)
	}
}

func TestCollectorBearerToken(t *testing.T) {
	// A "$" checks that the token reaches the Collector unexpanded.
	const token = "s3cret-$tok"
	c := StartCollector(t, CollectorOptions{BearerToken: token})
	attr := attribute.String("orchestrator_id", "o-3")
	want := map[string]string{"orchestrator_id": "o-3"}

	t.Run("grpc", func(t *testing.T) {
		if err := addInt(t, grpcProvider(t, c.GRPCEndpoint()), "testpeer.auth.grpc", 1, attr); err == nil {
			t.Error("export without a token succeeded")
		}
		bad := otlpmetricgrpc.WithHeaders(map[string]string{"Authorization": "Bearer wrong"})
		if err := addInt(t, grpcProvider(t, c.GRPCEndpoint(), bad), "testpeer.auth.grpc", 2, attr); err == nil {
			t.Error("export with a wrong token succeeded")
		}
		good := otlpmetricgrpc.WithHeaders(map[string]string{"Authorization": "Bearer " + token})
		if err := addInt(t, grpcProvider(t, c.GRPCEndpoint(), good), "testpeer.auth.grpc", 3, attr); err != nil {
			t.Fatalf("export with the token: %v", err)
		}
		wantInt(t, c.WaitForPoint(waitTimeout, "testpeer.auth.grpc", want, nil), 3)
	})

	t.Run("http", func(t *testing.T) {
		if err := addInt(t, httpProvider(t, c.HTTPEndpoint()), "testpeer.auth.http", 1, attr); err == nil {
			t.Error("export without a token succeeded")
		}
		good := otlpmetrichttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token})
		if err := addInt(t, httpProvider(t, c.HTTPEndpoint(), good), "testpeer.auth.http", 4, attr); err != nil {
			t.Fatalf("export with the token: %v", err)
		}
		wantInt(t, c.WaitForPoint(waitTimeout, "testpeer.auth.http", want, nil), 4)
	})
}

func TestCollectorRestartKeepsPortsAndFile(t *testing.T) {
	c := StartCollector(t, CollectorOptions{})
	endpoint := c.GRPCEndpoint()
	attr := attribute.String("orchestrator_id", "o-4")
	want := map[string]string{"orchestrator_id": "o-4"}

	if err := addInt(t, grpcProvider(t, endpoint), "testpeer.restart", 1, attr); err != nil {
		t.Fatalf("export before stop: %v", err)
	}
	wantInt(t, c.WaitForPoint(waitTimeout, "testpeer.restart", want, nil), 1)

	c.Stop()
	if err := addInt(t, grpcProvider(t, endpoint), "testpeer.restart", 2, attr); err == nil {
		t.Error("export to a stopped collector succeeded")
	}
	c.Restart()
	if c.GRPCEndpoint() != endpoint {
		t.Fatalf("endpoint changed: %s, then %s", endpoint, c.GRPCEndpoint())
	}
	// A new provider: the old one's connection went with the process.
	if err := addInt(t, grpcProvider(t, endpoint), "testpeer.restart", 5, attr); err != nil {
		t.Fatalf("export after restart: %v", err)
	}
	wantInt(t, c.WaitForPoint(waitTimeout, "testpeer.restart", want, nil), 5)

	// The point from before the restart is still in the file.
	rms, err := c.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	var values []int64
	for _, rm := range rms {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == "testpeer.restart" && m.Sum != nil {
					for _, dp := range m.Sum.DataPoints {
						values = append(values, *dp.AsInt)
					}
				}
			}
		}
	}
	if !slices.Equal(values, []int64{1, 5}) {
		t.Errorf("values in file = %v, want [1 5]", values)
	}
}

// sampleLines is hand-written OTLP JSON in the forms the file exporter
// writes, plus the spellings the decoders also accept (bare numbers, enum
// names), and a last line cut short.
const sampleLines = `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeMetrics":[{"scope":{"name":"m","version":"1"},"metrics":[` +
	`{"name":"c","unit":"{token}","sum":{"dataPoints":[{"attributes":[{"key":"model","value":{"stringValue":"a"}}],"startTimeUnixNano":"100","timeUnixNano":"200","asInt":"9007199254740993"}],"aggregationTemporality":2,"isMonotonic":true}},` +
	`{"name":"h","histogram":{"dataPoints":[{"timeUnixNano":"200","count":"3","sum":"NaN","bucketCounts":["1","2"],"explicitBounds":[0.5],"min":"-Infinity","max":2}],"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA"}}` +
	`]}]}]}
{"resourceMetrics":[{"scopeMetrics":[{"metrics":[` +
	`{"name":"c","sum":{"dataPoints":[{"attributes":[{"key":"model","value":{"stringValue":"a"}}],"timeUnixNano":"300","asInt":"5"},{"attributes":[{"key":"model","value":{"stringValue":"b"}}],"timeUnixNano":"900","asInt":6}],"aggregationTemporality":2}},` +
	`{"name":"c","sum":{"dataPoints":[{"attributes":[{"key":"model","value":{"stringValue":"a"}}],"timeUnixNano":"250","asInt":"4"}]}},` +
	`{"name":"g","gauge":{"dataPoints":[{"attributes":[{"key":"n","value":{"intValue":"12"}},{"key":"ok","value":{"boolValue":true}},{"key":"d","value":{"doubleValue":1.5}}],"timeUnixNano":"1","asDouble":"Infinity"}]}}` +
	`]}]}]}
{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"c","sum":{"dataPoints":[{"timeUnixNano":"999`

func TestParseMetricsLinesAndLastPoint(t *testing.T) {
	rms, err := parseMetricsLines([]byte(sampleLines))
	if err != nil {
		t.Fatal(err)
	}
	if len(rms) != 2 {
		t.Fatalf("got %d resource metrics, want 2 (the cut line is left out)", len(rms))
	}

	testCases := []struct {
		name   string
		metric string
		attrs  map[string]string
		found  bool
		check  func(t *testing.T, p Point)
	}{
		{
			name: "latest by time, not by file order", metric: "c", attrs: map[string]string{"model": "a"}, found: true,
			check: func(t *testing.T, p Point) { wantInt(t, p, 5) },
		},
		{
			name: "bare number int", metric: "c", attrs: map[string]string{"model": "b"}, found: true,
			check: func(t *testing.T, p Point) { wantInt(t, p, 6) },
		},
		{
			name: "int64 beyond float precision", metric: "c", attrs: map[string]string{"model": "a"}, found: true,
			check: func(t *testing.T, _ Point) {
				first := rms[0].ScopeMetrics[0].Metrics[0]
				if got := *first.Sum.DataPoints[0].AsInt; got != 9007199254740993 {
					t.Errorf("asInt = %d, want 9007199254740993", got)
				}
				if first.Unit != "{token}" || first.Sum.DataPoints[0].StartTimeUnixNano != 100 {
					t.Errorf("unit %q start %d", first.Unit, first.Sum.DataPoints[0].StartTimeUnixNano)
				}
			},
		},
		{
			name: "histogram with special doubles and enum name", metric: "h", attrs: nil, found: true,
			check: func(t *testing.T, p Point) {
				h := p.Histogram
				if h == nil || h.Count != 3 || !math.IsNaN(*h.Sum) || !math.IsInf(*h.Min, -1) || *h.Max != 2 {
					t.Fatalf("histogram point %+v", h)
				}
				if !slices.Equal(h.BucketCounts, []uint64{1, 2}) || !slices.Equal(h.ExplicitBounds, []float64{0.5}) {
					t.Errorf("buckets %v bounds %v", h.BucketCounts, h.ExplicitBounds)
				}
				if p.Metric.Histogram.AggregationTemporality != TemporalityDelta {
					t.Errorf("temporality %v, want delta", p.Metric.Histogram.AggregationTemporality)
				}
				if got := Attrs(p.Resource.Attributes)["service.name"]; got != "svc" {
					t.Errorf("service.name = %q", got)
				}
			},
		},
		{
			name: "non-string attributes compare by string form", metric: "g",
			attrs: map[string]string{"n": "12", "ok": "true", "d": "1.5"}, found: true,
			check: func(t *testing.T, p Point) {
				if p.Number == nil || p.Number.AsDouble == nil || !math.IsInf(*p.Number.AsDouble, 1) {
					t.Errorf("gauge point %+v, want asDouble +Inf", p.Number)
				}
			},
		},
		{name: "subset of attributes does not match", metric: "g", attrs: map[string]string{"n": "12"}},
		{name: "wrong value does not match", metric: "c", attrs: map[string]string{"model": "z"}},
		{name: "unknown metric", metric: "nope", attrs: nil},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := lastPoint(rms, tc.metric, tc.attrs)
			if ok != tc.found {
				t.Fatalf("found = %v, want %v", ok, tc.found)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestParseMetricsLinesRejectsBadLine(t *testing.T) {
	if _, err := parseMetricsLines([]byte("{\"resourceMetrics\":[}\n")); err == nil {
		t.Error("want an error for a malformed complete line")
	}
	if rms, err := parseMetricsLines(nil); err != nil || rms != nil {
		t.Errorf("empty input: %v, %v", rms, err)
	}
}
