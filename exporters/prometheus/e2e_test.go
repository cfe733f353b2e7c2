package prometheus_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// TestPrometheusServerScrapesLegacySeries runs a real Prometheus server
// against the exporter's own server and checks, through the query API, that
// each of the eight legacy series has the exact value and labels recorded.
func TestPrometheusServerScrapesLegacySeries(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with a real Prometheus server")
	}
	ctx := context.Background()
	exp, err := prometheus.New(prometheus.WithServer("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	recordKnownValues(t, c)

	prom := testpeer.StartPrometheus(t, testpeer.PrometheusOptions{Targets: []string{exp.Addr()}})

	testCases := []struct {
		query  string
		labels map[string]string
		want   float64
	}{
		{`orchestrator_sessions_active`, map[string]string{"orchestrator_id": "orch-1", "session_type": "claude-code"}, 1},
		{`orchestrator_tokens_used_total`, map[string]string{"orchestrator_id": "orch-1", "model": "claude-sonnet"}, 1500},
		{`orchestrator_message_latency_seconds_count`, map[string]string{"orchestrator_id": "orch-1"}, 3},
		{`orchestrator_message_latency_seconds_sum`, map[string]string{"orchestrator_id": "orch-1"}, 3.75},
		{`orchestrator_message_latency_seconds_bucket{le="0.5"}`, map[string]string{"orchestrator_id": "orch-1", "le": "0.5"}, 1},
		// Prometheus scrapes OpenMetrics, whose canonical le values for
		// whole numbers carry ".0", as with client_golang.
		{`orchestrator_message_latency_seconds_bucket{le="1.0"}`, map[string]string{"orchestrator_id": "orch-1", "le": "1.0"}, 1},
		{`orchestrator_message_latency_seconds_bucket{le="5.0"}`, map[string]string{"orchestrator_id": "orch-1", "le": "5.0"}, 3},
		{`orchestrator_tool_invocations_total{status="success"}`, map[string]string{"orchestrator_id": "orch-1", "tool_name": "bash", "status": "success"}, 2},
		{`orchestrator_tool_invocations_total{status="timeout"}`, map[string]string{"orchestrator_id": "orch-1", "tool_name": "bash", "status": "timeout"}, 1},
		{`orchestrator_federation_delegations_total`, map[string]string{"from_orchestrator": "orch-1", "to_orchestrator": "orch-2", "status": "success"}, 1},
		{`orchestrator_node_load`, map[string]string{"node_id": "node-a"}, 0.75},
		{`orchestrator_errors_total`, map[string]string{"orchestrator_id": "orch-1", "error_type": "rate_limit"}, 2},
		{`orchestrator_budget_utilization_percent`, map[string]string{"orchestrator_id": "orch-1", "period": "monthly"}, 42.5},
		{`orchestrator_collector_rejected_total{reason="negative_value"}`, map[string]string{"reason": "negative_value"}, 1},
	}
	for _, tc := range testCases {
		t.Run(tc.query, func(t *testing.T) {
			// A scraped sample becomes queryable a few seconds after start.
			testpeer.Eventually(t, 30*time.Second, func() error {
				got, err := prom.Query(tc.query)
				if err != nil {
					return err
				}
				if len(got) != 1 {
					return fmt.Errorf("%d series, want 1: %v", len(got), got)
				}
				want := map[string]string{"job": "orchestrator", "instance": exp.Addr()}
				for k, v := range tc.labels {
					want[k] = v
				}
				want["__name__"] = metricName(tc.query)
				if !equalLabels(got[0].Labels, want) {
					return fmt.Errorf("labels %v, want %v", got[0].Labels, want)
				}
				if got[0].Value != tc.want {
					return fmt.Errorf("value %v, want %v", got[0].Value, tc.want)
				}
				return nil
			})
		})
	}

	// Every series Prometheus stored is one of ours: no unit or _ratio
	// suffixes, no scope labels, no target_info.
	names, err := prom.Query(`count by (__name__) ({job="orchestrator", __name__=~"orchestrator_.*"})`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range names {
		got[s.Labels["__name__"]] = true
	}
	// The overflow counter is exported at 0 per metric from the start.
	want := append(slices.Clone(legacyNames), "orchestrator_collector_overflow_total")
	for _, n := range want {
		if !got[n] {
			t.Errorf("Prometheus has no %s; has %v", n, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Prometheus has %d orchestrator_* names, want %d: %v", len(got), len(want), got)
	}
}

// TestPromtoolCheckMetrics runs promtool's linter on a real scrape.
func TestPromtoolCheckMetrics(t *testing.T) {
	ctx := context.Background()
	exp, err := prometheus.New(prometheus.WithServer("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	recordKnownValues(t, c)

	resp, err := http.Get("http://" + exp.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, err := testpeer.Promtool(t, body, "check", "metrics")
	if err != nil || len(out) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func metricName(query string) string {
	for i, r := range query {
		if r == '{' {
			return query[:i]
		}
	}
	return query
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestPrometheusSeesClosedTargetDown mounts Handler in the application's
// own server, scraped by a real Prometheus every second: up is 1 while the
// Collector runs and turns 0 once it is closed (the handler answers 503).
// On the old code the closed handler answered 200 with an empty body, so
// up stayed 1 while every series went stale.
func TestPrometheusSeesClosedTargetDown(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with a real Prometheus server")
	}
	c, exp := newCollector(t)
	recordKnownValues(t, c)
	mux := http.NewServeMux()
	mux.Handle("/metrics", exp.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	target := strings.TrimPrefix(srv.URL, "http://")
	prom := testpeer.StartPrometheus(t, testpeer.PrometheusOptions{Targets: []string{target}})

	up := func(want float64) func() error {
		return func() error {
			got, err := prom.Query(`up{job="orchestrator"}`)
			if err != nil {
				return err
			}
			if len(got) != 1 || got[0].Value != want {
				return fmt.Errorf("up = %v, want %v", got, want)
			}
			return nil
		}
	}
	testpeer.Eventually(t, 30*time.Second, up(1))
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 30*time.Second, up(0))
}
