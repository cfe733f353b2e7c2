package otelcollector_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// TestRuntimeMetrics: with WithRuntimeMetrics a scrape shows the Go runtime
// series of contrib/instrumentation/runtime beside the orchestrator ones;
// without it, none. Close stops them (goleak in TestMain checks that no
// goroutine is left).
func TestRuntimeMetrics(t *testing.T) {
	testCases := []struct {
		name string
		opts []otelcollector.Option
		want bool
	}{
		{"default", nil, false},
		{"WithRuntimeMetrics", []otelcollector.Option{otelcollector.WithRuntimeMetrics()}, true},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			exp, err := prometheus.New()
			if err != nil {
				t.Fatal(err)
			}
			c, err := otelcollector.New(context.Background(), append(tc.opts, otelcollector.WithExporter(exp))...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			if err := c.RecordTokenUsage(context.Background(), "orch-1", "m", 1); err != nil {
				t.Fatal(err)
			}
			got := scrapeText(t, exp.Handler(), "")
			for _, name := range []string{
				"# TYPE go_goroutine_count gauge",
				`go_memory_used_bytes{go_memory_type="stack"}`,
				"# TYPE go_memory_allocated_bytes_total counter",
				"go_processor_limit ",
				"go_config_gogc_percent ",
			} {
				if strings.Contains(got, name) != tc.want {
					t.Errorf("scrape contains %q: %v, want %v", name, !tc.want, tc.want)
				}
			}
			if !strings.Contains(got, `orchestrator_tokens_used_total{model="m",orchestrator_id="orch-1"} 1`) {
				t.Errorf("orchestrator series missing:\n%s", got)
			}
		})
	}
}
