package testpeer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Prometheus is a prometheus server started for one test.
type Prometheus struct {
	URL string // base URL of its HTTP API, http://127.0.0.1:port
}

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	// Targets are host:port addresses to scrape at /metrics every second.
	Targets []string
	// RuleFiles are loaded as rule_files (paths).
	RuleFiles []string
	// MetricsPath overrides /metrics.
	MetricsPath string
	// Alertmanagers are host:port addresses Prometheus sends its alerts to.
	Alertmanagers []string
}

// StartPrometheus starts prometheus on 127.0.0.1, port 0 (it logs the port
// it got), with a generated config scraping opts.Targets every second, and
// waits until it is ready. It is stopped when the test ends, and its log
// tail is printed if the test failed.
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	bin := LookBinary(t, "PROMETHEUS_BIN", "prometheus", "install the prometheus package")
	dir := t.TempDir()
	path := opts.MetricsPath
	if path == "" {
		path = "/metrics"
	}
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	if len(opts.RuleFiles) > 0 {
		cfg.WriteString("rule_files:\n")
		for _, f := range opts.RuleFiles {
			fmt.Fprintf(&cfg, "  - %q\n", f)
		}
	}
	if len(opts.Alertmanagers) > 0 {
		fmt.Fprintf(&cfg, "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: %s\n", quotedList(opts.Alertmanagers))
	}
	fmt.Fprintf(&cfg, "scrape_configs:\n  - job_name: orchestrator\n    metrics_path: %q\n    static_configs:\n      - targets: %s\n",
		path, quotedList(opts.Targets))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	addr := startToolkitPeer(t, "prometheus", bin, []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
	}, filepath.Join(dir, "prometheus.log"))
	return &Prometheus{URL: "http://" + addr}
}

// quotedList returns items as a YAML flow sequence of quoted strings.
func quotedList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Sample is one series of an instant query result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant PromQL query and returns its vector result.
func (p *Prometheus) Query(expr string) ([]Sample, error) {
	resp, err := http.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: decoding: %w", expr, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, body.Error)
	}
	var out []Sample
	switch body.Data.ResultType {
	case "vector":
		for _, r := range body.Data.Result {
			s, _ := r.Value[1].(string)
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("query %q: value %q: %w", expr, s, err)
			}
			out = append(out, Sample{Labels: r.Metric, Value: v})
		}
	default:
		return nil, fmt.Errorf("query %q: result type %q, want vector", expr, body.Data.ResultType)
	}
	return out, nil
}

// Promtool runs `promtool args...` with stdin and returns its combined
// output and error.
func Promtool(t testing.TB, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	bin := LookBinary(t, "PROMTOOL_BIN", "promtool", "install the prometheus package")
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd.CombinedOutput()
}
