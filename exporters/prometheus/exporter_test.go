package prometheus_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// legacyNames are the Prometheus names existing dashboards query, plus the
// collector's own rejection counter.
var legacyNames = []string{
	"orchestrator_sessions_active",
	"orchestrator_tokens_used_total",
	"orchestrator_message_latency_seconds_bucket",
	"orchestrator_message_latency_seconds_sum",
	"orchestrator_message_latency_seconds_count",
	"orchestrator_tool_invocations_total",
	"orchestrator_federation_delegations_total",
	"orchestrator_node_load",
	"orchestrator_errors_total",
	"orchestrator_budget_utilization_percent",
	"orchestrator_collector_rejected_total",
}

// recordKnownValues records one known value or more for each of the eight
// metrics, plus one rejected record.
func recordKnownValues(t testing.TB, c *otelcollector.Collector) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.RecordSessionStart(ctx, "orch-1", "claude-code"))
	must(c.RecordSessionStart(ctx, "orch-1", "claude-code"))
	must(c.RecordSessionEnd(ctx, "orch-1", "claude-code"))
	must(c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", 1000))
	must(c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", 500))
	must(c.RecordMessageLatency(ctx, "orch-1", 250*time.Millisecond))
	must(c.RecordMessageLatency(ctx, "orch-1", 1500*time.Millisecond))
	must(c.RecordMessageLatency(ctx, "orch-1", 2*time.Second))
	must(c.RecordToolInvocation(ctx, "orch-1", "bash", otelcollector.ToolSuccess))
	must(c.RecordToolInvocation(ctx, "orch-1", "bash", otelcollector.ToolSuccess))
	must(c.RecordToolInvocation(ctx, "orch-1", "bash", otelcollector.ToolTimeout))
	must(c.RecordDelegation(ctx, "orch-1", "orch-2", otelcollector.DelegationSuccess))
	must(c.RecordError(ctx, "orch-1", "rate_limit"))
	must(c.RecordError(ctx, "orch-1", "rate_limit"))
	must(c.UpdateNodeLoad("node-a", 0.75))
	must(c.UpdateBudgetUtilization("orch-1", otelcollector.PeriodMonthly, 42.5))
	if err := c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", -1); !errors.Is(err, otelcollector.ErrInvalidValue) {
		t.Fatalf("negative tokens: %v, want ErrInvalidValue", err)
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func newCollector(t *testing.T, opts ...prometheus.Option) (*otelcollector.Collector, *prometheus.Exporter) {
	t.Helper()
	exp, err := prometheus.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c, exp
}

// TestScrapeGolden compares a whole scrape with testdata/scrape.golden: the
// exact legacy names, labels, HELP and TYPE lines, and nothing else.
func TestScrapeGolden(t *testing.T) {
	c, exp := newCollector(t)
	recordKnownValues(t, c)
	got := scrape(t, exp.Handler())
	golden := filepath.Join("testdata", "scrape.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("scrape differs from %s (run with -update to accept):\n%s", golden, got)
	}
}

func TestOptions(t *testing.T) {
	testCases := []struct {
		name    string
		opts    []prometheus.Option
		want    []string
		notWant []string
	}{
		{
			name:    "default has no scope labels and no target_info",
			notWant: []string{"otel_scope_name", "target_info"},
			want:    []string{`orchestrator_tokens_used_total{model="claude-sonnet",orchestrator_id="orch-1"} 1500`},
		},
		{
			name: "scope info adds labels",
			opts: []prometheus.Option{prometheus.WithScopeInfo()},
			want: []string{`otel_scope_name="github.com/wundr-io/orchestrator-otel"`},
		},
		{
			name:    "target info adds a separate series",
			opts:    []prometheus.Option{prometheus.WithTargetInfo()},
			want:    []string{"# TYPE target_info gauge", `orchestrator_tokens_used_total{model="claude-sonnet",orchestrator_id="orch-1"} 1500`},
			notWant: []string{"otel_scope_name"},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			c, exp := newCollector(t, tc.opts...)
			recordKnownValues(t, c)
			body := scrape(t, exp.Handler())
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("scrape lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("scrape has %q:\n%s", w, body)
				}
			}
		})
	}
}

func TestWithPathRejectsRelativePath(t *testing.T) {
	if _, err := prometheus.New(prometheus.WithPath("metrics")); err == nil {
		t.Fatal("New accepted a path without a leading /")
	}
}

func TestServerAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := prometheus.New(prometheus.WithServer(ln.Addr().String())); err == nil {
		t.Fatal("New succeeded on an address in use")
	}
}

func TestServerServesPathAndShutsDown(t *testing.T) {
	c, exp := newCollector(t, prometheus.WithServer("127.0.0.1:0"), prometheus.WithPath("/custom"))
	recordKnownValues(t, c)
	if !strings.HasPrefix(exp.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr = %q, want loopback", exp.Addr())
	}
	resp, err := http.Get("http://" + exp.Addr() + "/custom")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "orchestrator_node_load") {
		t.Fatalf("no metrics at /custom: %s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := http.Get("http://" + exp.Addr() + "/custom"); err == nil {
		t.Fatal("server still answers after Close")
	}
}

func TestDefaultAddressIsLoopback(t *testing.T) {
	if !strings.HasPrefix(prometheus.DefaultAddress, "127.0.0.1:") {
		t.Fatalf("DefaultAddress = %q", prometheus.DefaultAddress)
	}
}

// TestWithRegistry serves the orchestrator series beside the application's
// own client_golang metrics on one registry.
func TestWithRegistry(t *testing.T) {
	reg := promclient.NewRegistry()
	appCounter := promclient.NewCounter(promclient.CounterOpts{Name: "app_requests_total", Help: "Requests."})
	reg.MustRegister(appCounter)
	appCounter.Add(3)
	c, exp := newCollector(t, prometheus.WithRegistry(reg))
	recordKnownValues(t, c)
	if exp.Registry() != reg {
		t.Fatal("Registry() is not the registry given")
	}
	body := scrape(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	for _, want := range []string{"app_requests_total 3", `orchestrator_tokens_used_total{model="claude-sonnet",orchestrator_id="orch-1"} 1500`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, "go_goroutines") {
		t.Error("a private registry must not carry the global go_* collectors")
	}
}
