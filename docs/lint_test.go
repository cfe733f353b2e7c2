package docs_test

import "testing"

// TestLintPromQL: the static checks the e2e test applies to every query
// catch what Prometheus accepts silently.
func TestLintPromQL(t *testing.T) {
	testCases := []struct {
		q  string
		ok bool
	}{
		{`sum by (model) (rate(orchestrator_tokens_used_total[5m]))`, true},
		{`histogram_quantile(0.95, sum by (le, orchestrator_id) (rate(orchestrator_message_latency_seconds_bucket[5m])))`, true},
		{`histogram_quantile(0.5, sum by (orchestrator_id, le) (rate(orchestrator_message_latency_seconds_bucket[5m])))`, true},
		{`rate(orchestrator_message_latency_seconds_count[5m])`, true},
		{`rate(orchestrator_sessions_active[5m])`, false},
		{`increase(orchestrator_node_load[1h])`, false},
		{`histogram_quantile(0.95, sum by (orchestrator_id) (rate(orchestrator_message_latency_seconds_bucket[5m])))`, false},
		{`histogram_quantile(0.95, rate(orchestrator_message_latency_seconds_bucket[5m]))`, false},
	}
	for _, tc := range testCases {
		if err := lintPromQL(tc.q); (err == nil) != tc.ok {
			t.Errorf("lintPromQL(%s) = %v, want ok=%v", tc.q, err, tc.ok)
		}
	}
}
