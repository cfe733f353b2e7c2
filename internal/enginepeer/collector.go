package enginepeer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
)

// CollectorOptions configures StartCollector.
type CollectorOptions struct {
	// GRPCAddr is where the OTLP gRPC receiver listens (required: the
	// daemons are told it before the Collector starts, and a restart keeps
	// it).
	GRPCAddr string
	// PrometheusAddr, when not empty, adds the prometheus exporter there
	// (without scope info, series expiring after MetricExpiration).
	PrometheusAddr string
	// MetricExpiration is the prometheus exporter's metric_expiration;
	// zero means 5m.
	MetricExpiration time.Duration
	// RemoteWriteURL, when not empty, adds the prometheusremotewrite
	// exporter sending there (a Prometheus started with
	// --web.enable-remote-write-receiver: <url>/api/v1/write).
	RemoteWriteURL string
}

// Collector is the test Collector of internal/testcollector with the
// pipeline of the fleet push tests: otlp -> prometheus and/or
// prometheusremotewrite. Its own telemetry is off.
type Collector struct {
	t    testing.TB
	bin  string
	cfg  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	runs int // completed starts
}

// StartCollector starts the Collector and waits until it is ready.
func StartCollector(t testing.TB, o CollectorOptions) *Collector {
	t.Helper()
	bin := testpeer.LookBinary(t, "OTELCOL_BIN", "otelcol-test", "run .ci/build-collector.sh")
	dir := t.TempDir()
	exp := o.MetricExpiration
	if exp <= 0 {
		exp = 5 * time.Minute
	}
	var b strings.Builder
	fmt.Fprintf(&b, "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: %q\nexporters:\n", o.GRPCAddr)
	var names []string
	if o.PrometheusAddr != "" {
		fmt.Fprintf(&b, "  prometheus:\n    endpoint: %q\n    without_scope_info: true\n    metric_expiration: %s\n", o.PrometheusAddr, exp)
		names = append(names, "prometheus")
	}
	if o.RemoteWriteURL != "" {
		fmt.Fprintf(&b, "  prometheusremotewrite:\n    endpoint: %q\n    tls:\n      insecure: true\n    target_info:\n      enabled: false\n", o.RemoteWriteURL)
		names = append(names, "prometheusremotewrite")
	}
	fmt.Fprintf(&b, "service:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [%s]\n", strings.Join(names, ", "))
	c := &Collector{t: t, bin: bin, cfg: filepath.Join(dir, "collector.yml"), log: filepath.Join(dir, "collector.log")}
	if err := os.WriteFile(c.cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c.start()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			data, _ := os.ReadFile(c.log)
			if len(data) > 4000 {
				data = data[len(data)-4000:]
			}
			t.Logf("collector log tail:\n%s\nconfig:\n%s", data, b.String())
		}
	})
	return c
}

func (c *Collector) start() {
	c.t.Helper()
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	c.cmd = exec.Command(c.bin, "--config", c.cfg)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); logf.Close(); close(done) }(c.cmd, c.done)
	testpeer.Eventually(c.t, 30*time.Second, func() error {
		select {
		case <-c.done:
			return fmt.Errorf("collector exited")
		default:
		}
		data, _ := os.ReadFile(c.log)
		// Only this run's part of the log (the file is appended to).
		if n := strings.Count(string(data), "Everything is ready"); n < c.starts()+1 {
			return fmt.Errorf("collector not ready")
		}
		return nil
	})
	c.runs++
}

func (c *Collector) starts() int { return c.runs }

// Stop ends the process (SIGTERM, then SIGKILL after 10 s).
func (c *Collector) Stop() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// Restart stops the Collector and starts it again on the same ports.
func (c *Collector) Restart() {
	c.Stop()
	c.start()
}
