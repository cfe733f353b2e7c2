package otelcollector_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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
				"# TYPE go_goroutines gauge",
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
			lintSuffixes(t, got)
		})
	}
}

// lintSuffixes applies promtool check metrics' suffix lint to a scrape: a
// family that is neither a histogram nor a summary must not end in _count,
// _sum or _bucket, and only counters end in _total. Before go.goroutine.count
// was renamed by a View, the runtime metrics failed it with
// go_goroutine_count.
func lintSuffixes(t *testing.T, scrape string) {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(scrape))
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	for name, mf := range families {
		switch mf.GetType().String() {
		case "HISTOGRAM", "SUMMARY", "GAUGE_HISTOGRAM":
			continue
		}
		for _, suffix := range []string{"_count", "_sum", "_bucket"} {
			if strings.HasSuffix(name, suffix) {
				t.Errorf("%s (%s) ends in %s, which promtool check metrics reports", name, mf.GetType(), suffix)
			}
		}
		if strings.HasSuffix(name, "_total") && mf.GetType().String() != "COUNTER" {
			t.Errorf("%s (%s) ends in _total but is not a counter", name, mf.GetType())
		}
	}
}
