package prometheus_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// scrapeRegistry serves reg with promhttp on a real loopback server and
// scrapes it once, returning the status and the body.
func scrapeRegistry(t *testing.T, reg promclient.Gatherer) (int, string) {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestSharedRegistryConflicts registers two exporters, and application
// metrics with the library's names, on one client_golang registry. On the
// old code the second exporter's New succeeded and the scrape then failed
// with HTTP 500 (duplicate orchestrator_collector_rejected_total), and the
// application's Register of orchestrator_tokens_used_total returned nil
// while the library's series were silently dropped.
func TestSharedRegistryConflicts(t *testing.T) {
	t.Run("second exporter on the registry", func(t *testing.T) {
		reg := promclient.NewRegistry()
		c, _ := newCollector(t, prometheus.WithRegistry(reg))
		recordKnownValues(t, c)
		exp2, err := prometheus.New(prometheus.WithRegistry(reg))
		if err == nil {
			c2, cerr := otelcollector.New(context.Background(), otelcollector.WithExporter(exp2))
			if cerr == nil {
				recordKnownValues(t, c2)
				code, _ := scrapeRegistry(t, reg)
				_ = c2.Close(context.Background())
				t.Fatalf("second exporter on one registry: New succeeded (scrape then answered %d)", code)
			}
			t.Fatal("second exporter on one registry: New succeeded")
		}
		if !errors.Is(err, prometheus.ErrRegistryConflict) {
			t.Fatalf("second exporter: %v, want ErrRegistryConflict", err)
		}
		// The first exporter's series are intact.
		code, body := scrapeRegistry(t, reg)
		if code != http.StatusOK || !strings.Contains(body, `orchestrator_tokens_used_total{model="claude-sonnet",orchestrator_id="orch-1"} 1500`) {
			t.Fatalf("scrape after the rejected exporter: %d\n%s", code, body)
		}
	})

	t.Run("application registers a library name after New", func(t *testing.T) {
		reg := promclient.NewRegistry()
		c, _ := newCollector(t, prometheus.WithRegistry(reg))
		recordKnownValues(t, c)
		for _, coll := range []promclient.Collector{
			promclient.NewCounterVec(promclient.CounterOpts{Name: "orchestrator_tokens_used_total", Help: "App's own."}, []string{"model", "orchestrator_id"}),
			promclient.NewCounter(promclient.CounterOpts{Name: "orchestrator_tokens_used_total", Help: "App's own."}),
			promclient.NewGauge(promclient.GaugeOpts{Name: "orchestrator_node_load", Help: "App's own."}),
			promclient.NewHistogram(promclient.HistogramOpts{Name: "orchestrator_message_latency_seconds", Help: "App's own."}),
		} {
			if err := reg.Register(coll); err == nil {
				t.Errorf("application Register of a library name returned nil")
			}
		}
		code, body := scrapeRegistry(t, reg)
		if code != http.StatusOK || !strings.Contains(body, `orchestrator_tokens_used_total{model="claude-sonnet",orchestrator_id="orch-1"} 1500`) {
			t.Fatalf("scrape: %d\n%s", code, body)
		}
	})

	t.Run("application registered a library name before New", func(t *testing.T) {
		reg := promclient.NewRegistry()
		reg.MustRegister(promclient.NewCounterVec(promclient.CounterOpts{Name: "orchestrator_errors_total", Help: "App's own."}, []string{"error_type"}))
		exp, err := prometheus.New(prometheus.WithRegistry(reg))
		if err == nil {
			_ = exp.Shutdown(context.Background())
			t.Fatal("New succeeded on a registry that has orchestrator_errors_total")
		}
		if !errors.Is(err, prometheus.ErrRegistryConflict) {
			t.Fatalf("New: %v, want ErrRegistryConflict", err)
		}
		// The failed New left nothing behind: the application's metric is
		// the only thing scraped.
		code, body := scrapeRegistry(t, reg)
		if code != http.StatusOK || strings.Contains(body, "orchestrator_collector_rejected_total") {
			t.Fatalf("scrape after the failed New: %d\n%s", code, body)
		}
	})

	t.Run("a closed exporter's place can be taken", func(t *testing.T) {
		reg := promclient.NewRegistry()
		exp1, err := prometheus.New(prometheus.WithRegistry(reg))
		if err != nil {
			t.Fatal(err)
		}
		c1, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp1))
		if err != nil {
			t.Fatal(err)
		}
		if err := c1.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		c2, _ := newCollector(t, prometheus.WithRegistry(reg))
		recordKnownValues(t, c2)
		code, body := scrapeRegistry(t, reg)
		if code != http.StatusOK || !strings.Contains(body, `orchestrator_tokens_used_total{model="claude-sonnet",orchestrator_id="orch-1"} 1500`) {
			t.Fatalf("scrape of the successor: %d\n%s", code, body)
		}
	})
}

// TestCoServeWithRegisterer is the supported way to serve two Collectors on
// one registry: each gets a Registerer adding its own constant label. The
// real scrape answers 200 with both sets of series, each exact.
func TestCoServeWithRegisterer(t *testing.T) {
	reg := promclient.NewRegistry()
	app := promclient.NewCounter(promclient.CounterOpts{Name: "app_requests_total", Help: "Requests."})
	reg.MustRegister(app)
	app.Add(7)
	ctx := context.Background()
	for i, name := range []string{"a", "b"} {
		_, exp := func() (*otelcollector.Collector, *prometheus.Exporter) {
			c, exp := newCollector(t, prometheus.WithRegisterer(promclient.WrapRegistererWith(promclient.Labels{"collector": name}, reg)))
			if err := c.RecordTokenUsage(ctx, "orch-1", "m", int64(100*(i+1))); err != nil {
				t.Fatal(err)
			}
			return c, exp
		}()
		// Handler serves the exporter's own series, without the label the
		// wrapping Registerer adds.
		if body := scrape(t, exp.Handler()); !strings.Contains(body, `orchestrator_tokens_used_total{model="m",orchestrator_id="orch-1"} `) || strings.Contains(body, "app_requests_total") {
			t.Fatalf("Handler of %s:\n%s", name, body)
		}
	}
	code, body := scrapeRegistry(t, reg)
	if code != http.StatusOK {
		t.Fatalf("co-served scrape: %d\n%s", code, body)
	}
	families := parseScrape(t, body)
	got := map[string]float64{}
	for _, m := range families["orchestrator_tokens_used_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "collector" {
				got[l.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if got["a"] != 100 || got["b"] != 200 || len(got) != 2 {
		t.Fatalf("tokens by collector = %v, want a=100 b=200", got)
	}
	if families["app_requests_total"].GetMetric()[0].GetCounter().GetValue() != 7 {
		t.Fatalf("application counter lost:\n%s", body)
	}
	// An unlabelled application metric of a library name still collides.
	if err := reg.Register(promclient.NewCounter(promclient.CounterOpts{Name: "orchestrator_tokens_used_total", Help: "x"})); err == nil {
		t.Fatal("application Register of orchestrator_tokens_used_total returned nil beside labelled exporters")
	}
}

// TestPedanticRegistry checks that a pedantic registry (the kind
// client_golang's testutil uses) still gathers the library's series.
func TestPedanticRegistry(t *testing.T) {
	reg := promclient.NewPedanticRegistry()
	c, _ := newCollector(t, prometheus.WithRegistry(reg))
	recordKnownValues(t, c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("pedantic Gather: %v", err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "orchestrator_tokens_used_total") {
		t.Fatalf("pedantic Gather lacks the series: %v", names)
	}
}
