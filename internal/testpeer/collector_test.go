package testpeer

import (
	"context"
	"fmt"
	"io"
	"net"
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
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
)

const waitTimeout = 15 * time.Second

// newProvider returns a MeterProvider that exports over OTLP (gRPC, or
// HTTP when useHTTP) to endpoint only when flushed, without retries, and
// shuts it down when the test ends.
func newProvider(t *testing.T, useHTTP bool, endpoint string) *sdkmetric.MeterProvider {
	t.Helper()
	ctx := context.Background()
	var (
		exp sdkmetric.Exporter
		err error
	)
	if useHTTP {
		exp, err = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(endpoint), otlpmetrichttp.WithInsecure(),
			otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}))
	} else {
		exp, err = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(endpoint), otlpmetricgrpc.WithInsecure(),
			otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}))
	}
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "testpeer-test"))),
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The last export may find the Collector stopped; only the
		// goroutines must go.
		_ = mp.Shutdown(ctx)
	})
	return mp
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
	got, ok := p.Int()
	if !ok {
		t.Fatalf("point %v: want an integer number point", p.Number)
	}
	if got != want {
		t.Errorf("asInt = %d, want %d", got, want)
	}
}

// TestCollector runs one Collector through everything this package does
// with it: a start retried because its gRPC port was taken, data over OTLP
// gRPC and HTTP decoded from the file, the Prometheus exporter, and a
// restart that keeps the ports and the file. The Collector's own features
// (bearer authentication, say) are tested where this library uses them, in
// exporters/otlp.
func TestCollector(t *testing.T) {
	// The gRPC port is held until the first start has failed on it.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	retried := 0
	onStartRetry = func() {
		retried++
		_ = held.Close()
	}
	t.Cleanup(func() { onStartRetry = nil })
	c := StartCollector(t, CollectorOptions{GRPCAddr: held.Addr().String()})
	if retried == 0 || c.GRPCEndpoint() != held.Addr().String() {
		t.Errorf("retried %d times, endpoint %s: want a retry on %s", retried, c.GRPCEndpoint(), held.Addr())
	}
	if strings.HasSuffix(c.HTTPEndpoint(), ":0") || c.HTTPEndpoint() == "" {
		t.Errorf("HTTP endpoint %q: want the port the receiver bound", c.HTTPEndpoint())
	}
	grpcMP := newProvider(t, false, c.GRPCEndpoint())
	grpcWant := map[string]string{"orchestrator_id": "o-1"}

	t.Run("grpc", func(t *testing.T) {
		if err := addInt(t, grpcMP, "testpeer.grpc.requests", 42, attribute.String("orchestrator_id", "o-1")); err != nil {
			t.Fatalf("export: %v", err)
		}
		p := c.WaitForPoint(waitTimeout, "testpeer.grpc.requests", grpcWant, nil)
		wantInt(t, p, 42)
		if sum := p.Metric.GetSum(); !sum.GetIsMonotonic() || sum.GetAggregationTemporality() != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
			t.Errorf("metric %v: want a monotonic cumulative sum", p.Metric)
		}
		if got := p.ResourceAttr("service.name"); got != "testpeer-test" {
			t.Errorf("resource service.name = %q, want testpeer-test", got)
		}
		if p.Scope.GetName() != "testpeer" {
			t.Errorf("scope name = %q, want testpeer", p.Scope.GetName())
		}
		if p.Number.GetTimeUnixNano() == 0 || p.Number.GetStartTimeUnixNano() == 0 {
			t.Errorf("timestamps not decoded: %v", p.Number)
		}
		// The attribute set must match exactly.
		if _, ok := c.LastPoint("testpeer.grpc.requests", nil); ok {
			t.Error("LastPoint with no attributes found a point that has one")
		}
		if _, ok := c.LastPoint("testpeer.grpc.requests", map[string]string{"orchestrator_id": "o-1", "x": "y"}); ok {
			t.Error("LastPoint with an extra attribute found a point")
		}
	})

	t.Run("http", func(t *testing.T) {
		mp := newProvider(t, true, c.HTTPEndpoint())
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
			t.Fatalf("point %v: want a histogram point", p.Number)
		}
		if p.Metric.GetUnit() != "s" || p.Metric.GetHistogram().GetAggregationTemporality() != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
			t.Errorf("metric unit %q temporality %v, want s cumulative", p.Metric.GetUnit(), p.Metric.GetHistogram().GetAggregationTemporality())
		}
		if h.GetCount() != 2 || h.Sum == nil || h.GetSum() != 2.5 {
			t.Errorf("count %d sum %v, want 2 and 2.5", h.GetCount(), h.Sum)
		}
		if !slices.Equal(h.GetBucketCounts(), []uint64{1, 1, 0}) || !slices.Equal(h.GetExplicitBounds(), []float64{1, 5}) {
			t.Errorf("buckets %v bounds %v, want [1 1 0] and [1 5]", h.GetBucketCounts(), h.GetExplicitBounds())
		}
		if h.Min == nil || h.GetMin() != 0.5 || h.Max == nil || h.GetMax() != 2 {
			t.Errorf("min %v max %v, want 0.5 and 2", h.Min, h.Max)
		}
		g := c.WaitForPoint(waitTimeout, "testpeer.http.load", want, nil)
		if v, ok := g.Double(); g.Metric.GetGauge() == nil || !ok || v != 0.75 {
			t.Errorf("gauge point %v: want asDouble 0.75", g.Number)
		}
	})

	t.Run("prometheus exporter", func(t *testing.T) {
		line := regexp.MustCompile(`(?m)^testpeer_grpc_requests_total\{([^}]*)\} 42$`)
		client := &http.Client{Timeout: 5 * time.Second}
		defer client.CloseIdleConnections()
		var labels string
		Eventually(t, waitTimeout, func() error {
			resp, err := client.Get(c.PrometheusURL())
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			m := line.FindSubmatch(b)
			if m == nil {
				return fmt.Errorf("%s: %s, no line matching %s", c.PrometheusURL(), resp.Status, line)
			}
			labels = string(m[1])
			return nil
		})
		if !strings.Contains(labels, `orchestrator_id="o-1"`) {
			t.Errorf("labels %s: want orchestrator_id=\"o-1\"", labels)
		}
		if strings.Contains(labels, "otel_scope_") {
			t.Errorf("labels %s: without_scope_info should drop scope labels", labels)
		}
	})

	t.Run("restart keeps ports and file", func(t *testing.T) {
		endpoint := c.GRPCEndpoint()
		c.Stop()
		if err := addInt(t, newProvider(t, false, endpoint), "testpeer.grpc.requests", 2, attribute.String("orchestrator_id", "o-1")); err == nil {
			t.Error("export to a stopped collector succeeded")
		}
		c.Restart()
		if c.GRPCEndpoint() != endpoint {
			t.Fatalf("endpoint changed: %s, then %s", endpoint, c.GRPCEndpoint())
		}
		// A new provider: the old one's connection went with the process.
		if err := addInt(t, newProvider(t, false, endpoint), "testpeer.grpc.requests", 5, attribute.String("orchestrator_id", "o-1")); err != nil {
			t.Fatalf("export after restart: %v", err)
		}
		wantInt(t, c.WaitForPoint(waitTimeout, "testpeer.grpc.requests", grpcWant, func(p Point) bool {
			v, _ := p.Int()
			return v == 5
		}), 5)
		// The point from before the restart is still in the file.
		var values []int64
		for _, p := range c.Points("testpeer.grpc.requests", grpcWant) {
			v, _ := p.Int()
			values = append(values, v)
		}
		if !slices.Equal(values, []int64{42, 5}) {
			t.Errorf("values in file = %v, want [42 5]", values)
		}
	})
}

// TestCollectorConfig: the bearer token reaches both receivers, with a "$"
// escaped so that the Collector does not expand it.
func TestCollectorConfig(t *testing.T) {
	c := &Collector{opts: CollectorOptions{BearerToken: "s3cret-$tok"}, file: newMetricsFile("m.jsonl")}
	cfg := c.config()
	for _, want := range []string{"token: \"s3cret-$$tok\"\n", "extensions: [bearertokenauth]\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	if n := strings.Count(cfg, "authenticator: bearertokenauth"); n != 2 {
		t.Errorf("%d receivers authenticate, want 2:\n%s", n, cfg)
	}
	if cfg := (&Collector{file: newMetricsFile("m.jsonl")}).config(); strings.Contains(cfg, "bearertokenauth") {
		t.Errorf("config without a token uses bearertokenauth:\n%s", cfg)
	}
}
