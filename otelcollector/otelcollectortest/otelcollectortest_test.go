package otelcollectortest_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/otelcollectortest"
)

// record makes the same records into any Collector.
func record(t *testing.T, c *otelcollector.Collector) {
	t.Helper()
	ctx := context.Background()
	if err := errors.Join(
		c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", 1200),
		c.RecordTokenUsage(ctx, "orch-1", "gpt-4o", 300),
		c.RecordMessageLatency(ctx, "orch-1", 700*time.Millisecond),
		c.RecordMessageLatency(ctx, "orch-1", 3*time.Second),
		c.RecordToolInvocation(ctx, "orch-1", "bash", otelcollector.ToolError),
		c.RecordSessionStart(ctx, "orch-1", "claude-code"),
		c.UpdateNodeLoad("node-a", 0.25),
		c.UpdateBudgetUtilization("orch-1", otelcollector.PeriodDaily, 12.5),
	); err != nil {
		t.Fatal(err)
	}
	if err := c.RecordTokenUsage(ctx, "", "claude-sonnet", 1); err == nil {
		t.Fatal("an empty orchestrator ID was accepted")
	}
}

// TestScrapeMatchesRealScrape: what the helper shows is, byte for byte,
// what exporters/prometheus serves for the same records.
func TestScrapeMatchesRealScrape(t *testing.T) {
	c := otelcollectortest.New(t)
	record(t, c.Collector)

	exp, err := prometheus.New()
	if err != nil {
		t.Fatal(err)
	}
	real, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close(context.Background())
	record(t, real)
	rec := httptest.NewRecorder()
	exp.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	want, _ := io.ReadAll(rec.Body)

	got, err := c.Scrape()
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("helper scrape differs from the real scrape\nhelper:\n%s\nreal:\n%s", got, want)
	}
	if !strings.Contains(got, `orchestrator_collector_rejected_total{reason="empty_label"} 1`) {
		t.Errorf("the library's own counters are missing:\n%s", got)
	}
}

func TestValue(t *testing.T) {
	c := otelcollectortest.New(t)
	record(t, c.Collector)
	testCases := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"orchestrator_tokens_used_total", map[string]string{"orchestrator_id": "orch-1", "model": "claude-sonnet"}, 1200},
		{"orchestrator_sessions_active", map[string]string{"orchestrator_id": "orch-1", "session_type": "claude-code"}, 1},
		{"orchestrator_node_load", map[string]string{"node_id": "node-a"}, 0.25},
		{"orchestrator_budget_utilization_percent", map[string]string{"orchestrator_id": "orch-1", "period": "daily"}, 12.5},
		{"orchestrator_message_latency_seconds_count", map[string]string{"orchestrator_id": "orch-1"}, 2},
		{"orchestrator_message_latency_seconds_sum", map[string]string{"orchestrator_id": "orch-1"}, 3.7},
		// le as OpenMetrics (and Prometheus) spells it, and as the text
		// format does.
		{"orchestrator_message_latency_seconds_bucket", map[string]string{"orchestrator_id": "orch-1", "le": "1.0"}, 1},
		{"orchestrator_message_latency_seconds_bucket", map[string]string{"orchestrator_id": "orch-1", "le": "1"}, 1},
		{"orchestrator_message_latency_seconds_bucket", map[string]string{"orchestrator_id": "orch-1", "le": "5.0"}, 2},
		{"orchestrator_message_latency_seconds_bucket", map[string]string{"orchestrator_id": "orch-1", "le": "+Inf"}, 2},
		{"orchestrator_collector_rejected_total", map[string]string{"reason": "empty_label"}, 1},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Value(tc.name, tc.labels)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Value(%s, %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
			}
		})
	}
}

// TestValueErrors: a missing series is ErrNoSeries, and the error lists
// what the family has; labels must match exactly, not as a subset.
func TestValueErrors(t *testing.T) {
	c := otelcollectortest.New(t)
	record(t, c.Collector)
	testCases := []struct {
		name    string
		labels  map[string]string
		wantErr error
		mention string
	}{
		{"orchestrator_tokens_used_total", map[string]string{"orchestrator_id": "orch-2", "model": "claude-sonnet"}, otelcollectortest.ErrNoSeries, `{model="gpt-4o",orchestrator_id="orch-1"}`},
		{"orchestrator_tokens_used_total", map[string]string{"orchestrator_id": "orch-1"}, otelcollectortest.ErrNoSeries, `{model="claude-sonnet",orchestrator_id="orch-1"}`},
		{"orchestrator_no_such_total", nil, otelcollectortest.ErrNoSeries, "no family orchestrator_no_such_total"},
		{"orchestrator_message_latency_seconds_bucket", map[string]string{"orchestrator_id": "orch-1", "le": "3"}, otelcollectortest.ErrNoSeries, `le="2"`},
		{"orchestrator_message_latency_seconds_bucket", map[string]string{"orchestrator_id": "orch-1"}, nil, "needs an le label"},
		{"orchestrator_message_latency_seconds", map[string]string{"orchestrator_id": "orch-1"}, nil, "read its _count, _sum or _bucket"},
	}
	for _, tc := range testCases {
		_, err := c.Value(tc.name, tc.labels)
		if err == nil {
			t.Errorf("Value(%s, %v): no error", tc.name, tc.labels)
			continue
		}
		if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("Value(%s, %v) = %v, want %v", tc.name, tc.labels, err, tc.wantErr)
		}
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("Value(%s, %v) = %q, want it to mention %s", tc.name, tc.labels, err, tc.mention)
		}
	}
}

// TestCompareDiff: a mismatch fails with a diff that shows the expected and
// the scraped line; a match passes; names restrict the comparison.
func TestCompareDiff(t *testing.T) {
	c := otelcollectortest.New(t)
	record(t, c.Collector)
	const right = `
# HELP orchestrator_node_load Last reported load of a node, from 0 (idle) to 1 (saturated).
# TYPE orchestrator_node_load gauge
orchestrator_node_load{node_id="node-a"} 0.25
`
	if err := c.Compare(strings.NewReader(right), "orchestrator_node_load"); err != nil {
		t.Fatalf("Compare of the right text: %v", err)
	}
	wrong := strings.Replace(right, "0.25", "0.5", 1)
	err := c.Compare(strings.NewReader(wrong), "orchestrator_node_load")
	if err == nil {
		t.Fatal("Compare of a wrong value passed")
	}
	for _, want := range []string{"scrape (-) differs from expected (+)", `-orchestrator_node_load{node_id="node-a"} 0.25`, `+orchestrator_node_load{node_id="node-a"} 0.5`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the diff lacks %q:\n%v", want, err)
		}
	}
	// Without names every family takes part: the node load alone is not
	// the whole scrape.
	if err := c.Compare(strings.NewReader(right)); err == nil {
		t.Error("Compare of one family against the whole scrape passed")
	}
}

// TestForgetRemovesSeries: the helper reads the Collector's producer, as
// the real exporters do, so that ForgetOrchestrator removes series here.
func TestForgetRemovesSeries(t *testing.T) {
	c := otelcollectortest.New(t)
	record(t, c.Collector)
	if err := c.ForgetOrchestrator("orch-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Value("orchestrator_tokens_used_total", map[string]string{"orchestrator_id": "orch-1", "model": "claude-sonnet"}); !errors.Is(err, otelcollectortest.ErrNoSeries) {
		t.Errorf("after ForgetOrchestrator: %v, want ErrNoSeries", err)
	}
}
