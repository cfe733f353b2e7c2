// Package testpeer starts real peers (a Prometheus server, an OpenTelemetry
// Collector) on loopback for end-to-end tests, and reads back what they
// received. It is test support: every function takes a testing.TB.
package testpeer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Prometheus is a prometheus server started for one test.
type Prometheus struct {
	URL string // base URL of its HTTP API, http://127.0.0.1:port
	log string
}

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	// Targets are host:port addresses to scrape at /metrics every second.
	Targets []string
	// RuleFiles are loaded as rule_files (paths).
	RuleFiles []string
	// MetricsPath overrides /metrics.
	MetricsPath string
}

// LookBinary finds a peer binary: the env variable envVar, else name on
// PATH. When it is missing the test fails if CI=true (a missing peer must
// not pass silently in CI) and is skipped otherwise.
func LookBinary(t testing.TB, envVar, name, hint string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found (set %s or install it: %s)", name, envVar, hint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// StartPrometheus starts prometheus on a free 127.0.0.1 port with a
// generated config scraping opts.Targets every second, and waits until it is
// ready. It is stopped when the test ends.
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	bin := LookBinary(t, "PROMETHEUS_BIN", "prometheus", "apt-get install prometheus")
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
	fmt.Fprintf(&cfg, "scrape_configs:\n  - job_name: orchestrator\n    metrics_path: %q\n    static_configs:\n      - targets: [", path)
	for i, tg := range opts.Targets {
		if i > 0 {
			cfg.WriteString(", ")
		}
		fmt.Fprintf(&cfg, "%q", tg)
	}
	cfg.WriteString("]\n")
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	addr := FreeAddr(t)
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	p := &Prometheus{URL: "http://" + addr, log: logPath}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			p.dumpLog(t)
		}
	})
	Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(p.URL + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ready: %s", resp.Status)
		}
		return nil
	})
	return p
}

func (p *Prometheus) dumpLog(t testing.TB) {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	t.Logf("prometheus log tail:\n%s", b)
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

// Eventually calls f until it returns nil or timeout passes, then fails the
// test with f's last error. It polls every 100 ms.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Promtool runs `promtool args...` with stdin and returns its combined
// output and error.
func Promtool(t testing.TB, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	bin := LookBinary(t, "PROMTOOL_BIN", "promtool", "apt-get install prometheus")
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd.CombinedOutput()
}
