// Package enginepeer starts the query engines of the fleet tests on
// loopback: a Prometheus server with the flags and scrape configuration a
// test gives (remote-write receiver, native histograms, a backfilled data
// directory), and a VictoriaMetrics single-node server scraping with
// -promscrape.config. It is test support: every function takes a
// testing.TB, and each server is stopped when its test ends.
//
// A missing binary skips the test, or fails it when CI=true.
package enginepeer

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
)

// Engine is a running query engine.
type Engine struct {
	// Name is "prometheus" or "victoriametrics".
	Name string
	// URL is the base URL of its Prometheus-compatible query API.
	URL string
	// Addr is its host:port.
	Addr string
	// DataDir is its storage directory.
	DataDir string

	log string
	cmd *exec.Cmd
}

// Options configures an engine.
type Options struct {
	// ScrapeConfigs is the YAML list under scrape_configs, indented by two
	// spaces ("  - job_name: ..."). Empty: the engine scrapes nothing.
	ScrapeConfigs string
	// ScrapeInterval is the global scrape interval; zero means 1 s.
	ScrapeInterval time.Duration
	// Flags are extra command-line flags.
	Flags []string
	// DataDir is the storage directory; empty means a new temporary one.
	DataDir string
	// Retention is the engine's retention flag value
	// (--storage.tsdb.retention.time of Prometheus, -retentionPeriod of
	// VictoriaMetrics); empty means 400d and 100y, so that backfilled
	// history is kept.
	Retention string
}

// ScrapeJob renders one static scrape job for Options.ScrapeConfigs.
func ScrapeJob(job string, honorLabels bool, targets ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - job_name: %q\n", job)
	if honorLabels {
		b.WriteString("    honor_labels: true\n")
	}
	b.WriteString("    static_configs:\n      - targets: [")
	for i, t := range targets {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", t)
	}
	b.WriteString("]\n")
	return b.String()
}

func writeConfig(t testing.TB, dir string, o Options) string {
	t.Helper()
	iv := o.ScrapeInterval
	if iv <= 0 {
		iv = time.Second
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\n", iv, iv)
	if o.ScrapeConfigs != "" {
		cfg += "scrape_configs:\n" + o.ScrapeConfigs
	}
	p := filepath.Join(dir, "scrape.yml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// StartPrometheus starts prometheus on a free 127.0.0.1 port and waits until
// it is ready. Retention is Options.Retention, by default 400 days.
func StartPrometheus(t testing.TB, o Options) *Engine {
	t.Helper()
	bin := testpeer.LookBinary(t, "PROMETHEUS_BIN", "prometheus", "apt-get install prometheus")
	dir := t.TempDir()
	if o.DataDir == "" {
		o.DataDir = filepath.Join(dir, "data")
	}
	if o.Retention == "" {
		o.Retention = "400d"
	}
	addr := testpeer.ClosedAddr(t)
	args := append([]string{
		"--config.file=" + writeConfig(t, dir, o),
		"--storage.tsdb.path=" + o.DataDir,
		"--storage.tsdb.retention.time=" + o.Retention,
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}, o.Flags...)
	e := &Engine{Name: "prometheus", URL: "http://" + addr, Addr: addr, DataDir: o.DataDir}
	e.start(t, bin, dir, args, "/-/ready")
	return e
}

// StartVictoriaMetrics starts victoria-metrics (single node) on a free
// 127.0.0.1 port, scraping with -promscrape.config, and waits until it is
// ready. Retention is Options.Retention, by default 100 years. The
// latency offset is 0 and the response cache is off, so that a
// sample is visible to queries as soon as it is stored.
func StartVictoriaMetrics(t testing.TB, o Options) *Engine {
	t.Helper()
	bin := testpeer.LookBinary(t, "VICTORIAMETRICS_BIN", "victoria-metrics", "apt-get install victoria-metrics")
	dir := t.TempDir()
	if o.DataDir == "" {
		o.DataDir = filepath.Join(dir, "data")
	}
	if o.Retention == "" {
		o.Retention = "100y"
	}
	addr := testpeer.ClosedAddr(t)
	args := append([]string{
		"-httpListenAddr=" + addr,
		"-storageDataPath=" + o.DataDir,
		"-retentionPeriod=" + o.Retention,
		"-promscrape.config=" + writeConfig(t, dir, o),
		"-search.latencyOffset=0s",
		"-search.disableCache",
		"-loggerLevel=ERROR",
	}, o.Flags...)
	e := &Engine{Name: "victoriametrics", URL: "http://" + addr, Addr: addr, DataDir: o.DataDir}
	e.start(t, bin, dir, args, "/health")
	return e
}

func (e *Engine) start(t testing.TB, bin, dir string, args []string, ready string) {
	t.Helper()
	e.log = filepath.Join(dir, e.Name+".log")
	logf, err := os.Create(e.log)
	if err != nil {
		t.Fatal(err)
	}
	e.cmd = exec.Command(bin, args...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", e.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = e.cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = e.cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			e.DumpLog(t)
		}
	})
	testpeer.Eventually(t, 30*time.Second, func() error {
		select {
		case <-done:
			return fmt.Errorf("%s exited early (%v)", e.Name, e.cmd.ProcessState)
		default:
		}
		resp, err := http.Get(e.URL + ready)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s %s: %s", e.Name, ready, resp.Status)
		}
		return nil
	})
}

// DumpLog logs the tail of the engine's log.
func (e *Engine) DumpLog(t testing.TB) {
	b, _ := os.ReadFile(e.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	t.Logf("%s log tail:\n%s", e.Name, b)
}
