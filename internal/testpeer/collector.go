// This file runs the test-only OpenTelemetry Collector built from
// internal/testcollector by .ci/build-collector.sh. StartCollector finds it
// through LookBinary: $OTELCOL_BIN, else otelcol-test on PATH, else
// <repo>/.cache/otelcol-test.
//
// A Collector's methods are safe for concurrent use, except that
// WaitForPoint and Restart may call t.Fatal and so belong in the test's own
// goroutine.

package testpeer

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	defaultStartTimeout = 30 * time.Second
	// readyMessage is what the Collector (service v0.165) logs once every
	// component has started, that is once every port is bound.
	readyMessage = "Everything is ready"
	// startAttempts bounds the starts retried because a port was taken.
	startAttempts = 5
)

// onStartRetry, when set by a test, is called before a start is retried.
var onStartRetry func()

// receiverLog matches the lines in which the OTLP receiver (v0.165) names
// the address it bound, port 0 resolved.
var receiverLog = regexp.MustCompile(`Starting (GRPC|HTTP) server.*"endpoint": "([^"]+)"`)

// CollectorOptions configures StartCollector. The zero value starts a
// Collector without authentication on ports of the kernel's choosing.
type CollectorOptions struct {
	// BearerToken, when not empty, makes both OTLP receivers (gRPC and HTTP)
	// require the header "Authorization: Bearer <BearerToken>" through the
	// bearertokenauth extension.
	BearerToken string

	// GRPCAddr and HTTPAddr, when not empty, are the host:port the OTLP
	// receivers bind (ClosedAddr gives one), for a test whose exporter
	// points there before the Collector starts. Empty: port 0.
	GRPCAddr, HTTPAddr string

	// Debug adds the debug exporter (verbosity detailed) to the metrics
	// pipeline. Its output goes to the Collector's log, which is printed
	// when the test fails.
	Debug bool

	// StartTimeout bounds how long StartCollector and Restart wait for the
	// Collector to become ready. Zero or negative means 30 s.
	StartTimeout time.Duration
}

// Collector is a running (or stopped) test Collector process. Its ports,
// configuration, output file and log file live for the whole test, across
// Stop and Restart.
type Collector struct {
	t    testing.TB
	bin  string
	opts CollectorOptions

	// Set by the first start, then kept for Restart.
	grpcAddr, httpAddr, promAddr string

	configPath string
	logPath    string
	file       *metricsFile

	mu   sync.Mutex
	proc *process // nil while stopped
}

// StartCollector starts the test Collector on 127.0.0.1 and waits until it
// is ready. It registers a t.Cleanup that stops the process and, if the test
// failed, logs the tail of the Collector's log.
//
// The pipeline is: otlp receiver (gRPC and HTTP) -> file exporter (OTLP JSON
// lines, read by LastPoint, Points and WaitForPoint) and prometheus exporter
// (without scope labels). The Collector's own telemetry is off, so it binds
// nothing else. Under go test -short the test is skipped.
func StartCollector(t testing.TB, opts CollectorOptions) *Collector {
	t.Helper()
	if testing.Short() {
		t.Skip("testpeer: end-to-end test with the test Collector; skipped in -short mode")
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = defaultStartTimeout
	}
	bin := LookBinary(t, "OTELCOL_BIN", "otelcol-test", "run .ci/build-collector.sh")
	dir := t.TempDir()
	c := &Collector{
		t:          t,
		bin:        bin,
		opts:       opts,
		grpcAddr:   cmp.Or(opts.GRPCAddr, "127.0.0.1:0"),
		httpAddr:   cmp.Or(opts.HTTPAddr, "127.0.0.1:0"),
		configPath: filepath.Join(dir, "otelcol.yaml"),
		logPath:    filepath.Join(dir, "otelcol.log"),
		file:       newMetricsFile(filepath.Join(dir, "metrics.jsonl")),
	}
	// Registered after t.TempDir, so it runs before the directory goes.
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			logTail(t, c.logPath)
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.startLocked(true); err != nil {
		t.Fatalf("testpeer: collector: %v\nconfig:\n%s", err, c.config())
	}
	return c
}

// GRPCEndpoint returns the OTLP gRPC receiver's address as host:port, the
// form otlpmetricgrpc.WithEndpoint takes.
func (c *Collector) GRPCEndpoint() string { return c.grpcAddr }

// HTTPEndpoint returns the OTLP HTTP receiver's address as host:port, the
// form otlpmetrichttp.WithEndpoint takes. Metrics go to /v1/metrics.
func (c *Collector) HTTPEndpoint() string { return c.httpAddr }

// PrometheusURL returns the URL to scrape the prometheus exporter at.
func (c *Collector) PrometheusURL() string { return "http://" + c.promAddr + "/metrics" }

// Stop stops the Collector: SIGTERM, then SIGKILL if it has not exited
// within 10 s. The ports, the output file and the log stay, so Restart can
// start it again. Stop on a stopped Collector does nothing. If the process
// had exited on its own, Stop reports it with t.Errorf.
func (c *Collector) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
}

// Restart stops the Collector if it runs, then starts it again on the same
// ports with the same configuration and output file (new points are
// appended) and waits until it is ready. It calls t.Fatal if it cannot.
func (c *Collector) Restart() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
	if err := c.startLocked(false); err != nil {
		c.t.Fatalf("testpeer: collector restart: %v", err)
	}
}

// Points returns every point of the metric called name whose attributes
// are exactly attrs (nil or empty: no attributes), in file order. Attribute
// values compare by their string form (AnyString). A file that cannot be
// read or decoded is reported with t.Errorf.
func (c *Collector) Points(name string, attrs map[string]string) []Point {
	points, err := c.file.points(name, attrs)
	if err != nil {
		c.t.Errorf("testpeer: %v", err)
	}
	return points
}

// LastPoint returns the latest point, by TimeUnixNano, of Points(name,
// attrs); false when there is none.
func (c *Collector) LastPoint(name string, attrs map[string]string) (Point, bool) {
	return latest(c.Points(name, attrs), nil)
}

// WaitForPoint waits until Points(name, attrs) holds a point for which cond
// returns true (any point when cond is nil), and returns the latest such
// point. It calls t.Fatal, naming what the file does hold, when timeout
// passes first. The file is read incrementally, so waiting costs only the
// lines written meanwhile.
func (c *Collector) WaitForPoint(timeout time.Duration, name string, attrs map[string]string, cond func(Point) bool) Point {
	c.t.Helper()
	var p Point
	err := poll(timeout, func() error {
		points, err := c.file.points(name, attrs)
		if err != nil {
			return err
		}
		var ok bool
		if p, ok = latest(points, cond); !ok {
			return fmt.Errorf("%d points, none matching", len(points))
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("testpeer: no matching point of %q with attributes %v within %v: %v\nfile holds: %s",
			name, attrs, timeout, err, c.file.describe())
	}
	return p
}

// startLocked starts the process and waits until it is ready. This is the
// one place that handles a port taken by someone else: the start is retried,
// on the first start with a new Prometheus exporter port (the OTLP ones are
// port 0 unless given), on a restart with the same ports a little later.
// c.mu is held.
func (c *Collector) startLocked(first bool) error {
	deadline := time.Now().Add(c.opts.StartTimeout)
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if first {
			if c.promAddr, err = closedAddr(); err != nil {
				return err
			}
		}
		if err = c.startOnce(time.Until(deadline)); !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			return err
		}
		c.t.Logf("testpeer: collector start %d of %d: %v; retrying", attempt, startAttempts, err)
		if onStartRetry != nil {
			onStartRetry()
		}
		// A port we cannot change (a restart's, or one given in the
		// options) is most often held by a client connection for a moment.
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
	return err
}

func (c *Collector) startOnce(timeout time.Duration) error {
	if err := os.WriteFile(c.configPath, []byte(c.config()), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	p, err := startProcess(c.bin, []string{"--config", c.configPath}, c.logPath)
	if err != nil {
		return err
	}
	endpoints := map[string]string{}
	err = p.waitReady(timeout, func(log []byte) error {
		if !strings.Contains(string(log), readyMessage) {
			return fmt.Errorf("log has no %q yet", readyMessage)
		}
		for _, m := range receiverLog.FindAllSubmatch(log, -1) {
			endpoints[string(m[1])] = string(m[2])
		}
		if endpoints["GRPC"] == "" || endpoints["HTTP"] == "" {
			return fmt.Errorf("the log names no OTLP endpoint (%v): not the Collector v0.165 of internal/testcollector?", endpoints)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.proc = p
	c.grpcAddr, c.httpAddr = endpoints["GRPC"], endpoints["HTTP"]
	return nil
}

// stopLocked stops the running process, if any. c.mu is held.
func (c *Collector) stopLocked() {
	p := c.proc
	if p == nil {
		return
	}
	c.proc = nil
	exitedBefore, err := p.stop()
	switch {
	case exitedBefore:
		c.t.Errorf("testpeer: collector had exited on its own: %v", err)
	case err != nil:
		c.t.Logf("testpeer: collector %v", err)
	}
}

// config returns the Collector's YAML configuration.
func (c *Collector) config() string {
	var b strings.Builder
	auth := ""
	if c.opts.BearerToken != "" {
		auth = "        auth:\n          authenticator: bearertokenauth\n"
		// The Collector expands ${...} in every string; $$ is a literal $.
		fmt.Fprintf(&b, "extensions:\n  bearertokenauth:\n    scheme: Bearer\n    token: %s\n",
			strconv.Quote(strings.ReplaceAll(c.opts.BearerToken, "$", "$$")))
	}
	fmt.Fprintf(&b, `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
%s      http:
        endpoint: %s
%s`, strconv.Quote(c.grpcAddr), auth, strconv.Quote(c.httpAddr), auth)

	// The file exporter keeps its default rotation (which cannot be combined
	// with append); its writer appends to an existing file on restart.
	fmt.Fprintf(&b, `exporters:
  file:
    path: %s
    format: json
    flush_interval: 100ms
    rotation:
      max_megabytes: 1024
  prometheus:
    endpoint: %s
    without_scope_info: true
`, strconv.Quote(c.file.path), strconv.Quote(c.promAddr))
	exporters := "file, prometheus"
	if c.opts.Debug {
		b.WriteString("  debug:\n    verbosity: detailed\n")
		exporters += ", debug"
	}

	b.WriteString("service:\n")
	if c.opts.BearerToken != "" {
		b.WriteString("  extensions: [bearertokenauth]\n")
	}
	// level none: the Collector's own metrics are off, so nothing binds the
	// default localhost:8888.
	fmt.Fprintf(&b, `  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [%s]
`, exporters)
	return b.String()
}
