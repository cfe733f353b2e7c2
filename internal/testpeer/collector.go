// This file runs the test-only OpenTelemetry Collector built from
// internal/testcollector and reads back what it received, so end-to-end
// tests can check what this library really sends over OTLP and what a
// Prometheus scrape of the Collector shows.
//
// The binary is built by .ci/build-collector.sh. StartCollector looks for it
// in $OTELCOL_BIN, else in <repo>/.cache/otelcol-test. When it is missing the
// test is skipped, or fails when CI=true.
//
// No Collector module is imported: the file exporter's OTLP JSON is decoded
// into the small structs below (ResourceMetrics and what it holds).
//
// A Collector's methods are safe for concurrent use, except that WaitFor,
// WaitForPoint and Restart may call t.Fatal and so belong in the test's own
// goroutine.

package testpeer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// modulePath is the main module's path; repoRoot looks for its go.mod.
const modulePath = "github.com/wundr-io/orchestrator-otel"

const (
	defaultStartTimeout = 30 * time.Second
	stopTimeout         = 10 * time.Second
	pollInterval        = 20 * time.Millisecond
	// readyMessage is what the Collector (service v0.165) logs once every
	// component has started.
	readyMessage = "Everything is ready"
	logTailLines = 80
)

// CollectorOptions configures StartCollector. The zero value starts a
// Collector without authentication.
type CollectorOptions struct {
	// BearerToken, when not empty, makes both OTLP receivers (gRPC and HTTP)
	// require the header "Authorization: Bearer <BearerToken>" through the
	// bearertokenauth extension. Requests without it are rejected with
	// Unauthenticated (gRPC) or 401 (HTTP).
	BearerToken string

	// Debug adds the debug exporter (verbosity detailed) to the metrics
	// pipeline. Its output goes to the Collector's log file, which is printed
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

	grpcAddr string
	httpAddr string
	promAddr string

	configPath  string
	metricsPath string
	logPath     string

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of the Collector binary.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // the result of cmd.Wait; read only after done is closed
}

// StartCollector starts the test Collector on free 127.0.0.1 ports and waits
// until it is ready: its log says so and the OTLP gRPC, OTLP HTTP and
// Prometheus ports accept connections. It registers a t.Cleanup that stops
// the process and, if the test failed, logs the tail of the Collector's log.
//
// The pipeline is: otlp receiver (gRPC and HTTP) -> file exporter (OTLP JSON
// lines, read by Metrics and LastPoint) and prometheus exporter (without
// scope labels). The Collector's own telemetry is off, so it binds nothing
// else. Under go test -short the test is skipped.
func StartCollector(t testing.TB, opts CollectorOptions) *Collector {
	t.Helper()
	if testing.Short() {
		t.Skip("testpeer: end-to-end test with the test Collector; skipped in -short mode")
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = defaultStartTimeout
	}

	bin, err := collectorBinary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testpeer: %v", err)
		}
		t.Skipf("testpeer: %v; run .ci/build-collector.sh to build it", err)
	}

	dir := t.TempDir()
	ports, err := freePorts(3)
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}

	c := &Collector{
		t:           t,
		bin:         bin,
		opts:        opts,
		grpcAddr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		httpAddr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
		promAddr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2])),
		configPath:  filepath.Join(dir, "otelcol.yaml"),
		metricsPath: filepath.Join(dir, "metrics.jsonl"),
		logPath:     filepath.Join(dir, "otelcol.log"),
	}
	if err := os.WriteFile(c.configPath, []byte(c.config()), 0o600); err != nil {
		t.Fatalf("testpeer: write config: %v", err)
	}

	// Registered after t.TempDir, so it runs before the directory goes.
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			c.logTail()
		}
	})

	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.startLocked(); err != nil {
		t.Fatalf("testpeer: %v\nconfig:\n%s", err, c.config())
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

// MetricsPath returns the file the file exporter writes: one OTLP JSON
// ExportMetricsServiceRequest per line.
func (c *Collector) MetricsPath() string { return c.metricsPath }

// LogPath returns the file that holds the Collector's stdout and stderr.
func (c *Collector) LogPath() string { return c.logPath }

// Stop stops the Collector: SIGTERM, then SIGKILL if it has not exited
// within 10 s. The ports, the output file and the log stay, so Restart can
// start it again. Stop on a stopped Collector does nothing. If the process
// had already exited on its own, Stop reports it with t.Errorf.
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
	if err := c.startLocked(); err != nil {
		c.t.Fatalf("testpeer: restart: %v", err)
	}
}

// Metrics reads every complete line the file exporter has written so far and
// returns their resource metrics in file order. A missing file gives no
// metrics and no error; a partly written last line is left for a later call.
func (c *Collector) Metrics() ([]ResourceMetrics, error) {
	data, err := os.ReadFile(c.metricsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.metricsPath, err)
	}
	return parseMetricsLines(data)
}

// LastPoint returns the latest data point, by TimeUnixNano, of the metric
// called name whose attributes are exactly attrs (nil or empty means no
// attributes). Attribute values are compared by their string form
// (AnyValue.String). The second result is false when there is no such point.
// A file that cannot be read or decoded is reported with t.Errorf.
func (c *Collector) LastPoint(name string, attrs map[string]string) (Point, bool) {
	rms, err := c.Metrics()
	if err != nil {
		c.t.Errorf("testpeer: %v", err)
		return Point{}, false
	}
	return lastPoint(rms, name, attrs)
}

// WaitForPoint polls LastPoint until it finds a point for which cond returns
// true (any point when cond is nil) and returns it. It calls t.Fatal, naming
// what the file does hold, when timeout passes first.
func (c *Collector) WaitForPoint(timeout time.Duration, name string, attrs map[string]string, cond func(Point) bool) Point {
	c.t.Helper()
	var (
		p     Point
		found bool
	)
	ok := poll(timeout, func() bool {
		p, found = c.LastPoint(name, attrs)
		return found && (cond == nil || cond(p))
	})
	if !ok {
		rms, err := c.Metrics()
		c.t.Fatalf("testpeer: no matching point of %q with attributes %v within %v (last found: %v)\nfile holds: %s (read error: %v)",
			name, attrs, timeout, found, describe(rms), err)
	}
	return p
}

// WaitFor polls cond every 20 ms until it returns true, and calls t.Fatal if
// timeout passes first. Call it from the test's goroutine.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("testpeer: condition not met within %v", timeout)
	}
}

func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
	return true
}

// startLocked starts the process and waits until it is ready. c.mu is held.
func (c *Collector) startLocked() error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	// The child gets its own copy of the descriptor, so ours closes as soon
	// as the process has started (or failed to).
	defer logf.Close()
	st, err := logf.Stat()
	if err != nil {
		return fmt.Errorf("stat log: %w", err)
	}
	logStart := st.Size()

	cmd := exec.Command(c.bin, "--config", c.configPath)
	cmd.Dir = filepath.Dir(c.configPath)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.proc = p

	return c.waitReady(p, logStart)
}

// waitReady polls until the log, from offset logStart on, holds the ready
// message and every port accepts connections. c.mu is held.
func (c *Collector) waitReady(p *process, logStart int64) error {
	deadline := time.Now().Add(c.opts.StartTimeout)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.done:
			c.proc = nil // nothing left for Stop to do or report
			return fmt.Errorf("collector exited before it was ready: %v", p.err)
		case <-timer.C:
		}
		pending := c.notReady(logStart)
		if pending == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("collector not ready within %v: %s", c.opts.StartTimeout, pending)
		}
		timer.Reset(pollInterval)
	}
}

// notReady names the first readiness condition not met yet, or returns "".
func (c *Collector) notReady(logStart int64) string {
	if !fileContainsFrom(c.logPath, logStart, readyMessage) {
		return fmt.Sprintf("log has no %q yet", readyMessage)
	}
	for _, addr := range []string{c.grpcAddr, c.httpAddr, c.promAddr} {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return fmt.Sprintf("%s: %v", addr, err)
		}
		_ = conn.Close()
	}
	return ""
}

// stopLocked stops the running process, if any. c.mu is held.
func (c *Collector) stopLocked() {
	p := c.proc
	if p == nil {
		return
	}
	c.proc = nil

	select {
	case <-p.done:
		c.t.Errorf("testpeer: collector had exited on its own: %v", p.err)
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		c.t.Logf("testpeer: collector did not stop within %v of SIGTERM; killed it", stopTimeout)
	}
}

// logTail logs the last lines of the Collector's log.
func (c *Collector) logTail() {
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		c.t.Logf("testpeer: read collector log: %v", err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	c.t.Logf("testpeer: last %d lines of %s:\n%s", len(lines), c.logPath, strings.Join(lines, "\n"))
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
`, strconv.Quote(c.metricsPath), strconv.Quote(c.promAddr))
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

// collectorBinary returns the path of the Collector binary.
func collectorBinary() (string, error) {
	bin := os.Getenv("OTELCOL_BIN")
	if bin == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		bin = filepath.Join(root, ".cache", "otelcol-test")
	}
	st, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Errorf("test collector binary: %w", err)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("test collector binary %s is not an executable file", bin)
	}
	return bin, nil
}

// repoRoot walks up from the working directory to the directory whose
// go.mod declares modulePath.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && declaresModule(data, modulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func declaresModule(gomod []byte, path string) bool {
	for _, line := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == path
		}
	}
	return false
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All listeners stay open until every port is chosen, so they differ.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// fileContainsFrom reports whether the file, from offset on, contains s.
func fileContainsFrom(path string, offset int64, s string) bool {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < offset {
		return false
	}
	return bytes.Contains(data[offset:], []byte(s))
}

// The types below decode the OTLP JSON that the file exporter writes (one
// ExportMetricsServiceRequest per line). OTLP JSON writes int64, uint64 and
// fixed64 as decimal strings, NaN and infinities as strings, and enums as
// numbers; the decoders accept both the string and the bare form. Exponential
// histograms and summaries are not decoded.

// MetricsData is one line of the file exporter's output.
type MetricsData struct {
	ResourceMetrics []ResourceMetrics `json:"resourceMetrics"`
}

// ResourceMetrics holds the metrics of one resource.
type ResourceMetrics struct {
	Resource     Resource       `json:"resource"`
	ScopeMetrics []ScopeMetrics `json:"scopeMetrics"`
	SchemaURL    string         `json:"schemaUrl"`
}

// Resource is the entity that produced the metrics.
type Resource struct {
	Attributes []KeyValue `json:"attributes"`
}

// ScopeMetrics holds the metrics of one instrumentation scope.
type ScopeMetrics struct {
	Scope     Scope    `json:"scope"`
	Metrics   []Metric `json:"metrics"`
	SchemaURL string   `json:"schemaUrl"`
}

// Scope is an instrumentation scope (the meter's name and version).
type Scope struct {
	Name       string     `json:"name"`
	Version    string     `json:"version"`
	Attributes []KeyValue `json:"attributes"`
}

// Metric is one metric; exactly one of Sum, Gauge and Histogram is set for
// the kinds this package decodes.
type Metric struct {
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Unit        string     `json:"unit"`
	Sum         *Sum       `json:"sum,omitempty"`
	Gauge       *Gauge     `json:"gauge,omitempty"`
	Histogram   *Histogram `json:"histogram,omitempty"`
}

// Sum is a counter or up-down counter.
type Sum struct {
	DataPoints             []NumberDataPoint `json:"dataPoints"`
	AggregationTemporality Temporality       `json:"aggregationTemporality"`
	IsMonotonic            bool              `json:"isMonotonic"`
}

// Gauge is a gauge.
type Gauge struct {
	DataPoints []NumberDataPoint `json:"dataPoints"`
}

// Histogram is an explicit-bucket histogram.
type Histogram struct {
	DataPoints             []HistogramDataPoint `json:"dataPoints"`
	AggregationTemporality Temporality          `json:"aggregationTemporality"`
}

// Temporality is OTLP's AggregationTemporality.
type Temporality int32

// The OTLP aggregation temporalities.
const (
	TemporalityUnspecified Temporality = 0
	TemporalityDelta       Temporality = 1
	TemporalityCumulative  Temporality = 2
)

var temporalityNames = map[string]Temporality{
	"AGGREGATION_TEMPORALITY_UNSPECIFIED": TemporalityUnspecified,
	"AGGREGATION_TEMPORALITY_DELTA":       TemporalityDelta,
	"AGGREGATION_TEMPORALITY_CUMULATIVE":  TemporalityCumulative,
}

// String returns "delta", "cumulative", "unspecified" or the number.
func (t Temporality) String() string {
	switch t {
	case TemporalityUnspecified:
		return "unspecified"
	case TemporalityDelta:
		return "delta"
	case TemporalityCumulative:
		return "cumulative"
	}
	return strconv.Itoa(int(t))
}

// UnmarshalJSON accepts the enum's number or its protobuf name.
func (t *Temporality) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, ok := temporalityNames[s]
		if !ok {
			return fmt.Errorf("unknown aggregation temporality %q", s)
		}
		*t = v
		return nil
	}
	var n int32
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("aggregation temporality: %w", err)
	}
	*t = Temporality(n)
	return nil
}

// NumberDataPoint is a point of a Sum or Gauge. Exactly one of AsInt and
// AsDouble is set.
type NumberDataPoint struct {
	Attributes        []KeyValue
	StartTimeUnixNano uint64
	TimeUnixNano      uint64
	AsInt             *int64
	AsDouble          *float64
	Flags             uint32
}

// UnmarshalJSON decodes a point from OTLP JSON.
func (p *NumberDataPoint) UnmarshalJSON(b []byte) error {
	var w struct {
		Attributes        []KeyValue   `json:"attributes"`
		StartTimeUnixNano jsonUint64   `json:"startTimeUnixNano"`
		TimeUnixNano      jsonUint64   `json:"timeUnixNano"`
		AsInt             *jsonInt64   `json:"asInt"`
		AsDouble          *jsonFloat64 `json:"asDouble"`
		Flags             uint32       `json:"flags"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = NumberDataPoint{
		Attributes:        w.Attributes,
		StartTimeUnixNano: uint64(w.StartTimeUnixNano),
		TimeUnixNano:      uint64(w.TimeUnixNano),
		Flags:             w.Flags,
	}
	if w.AsInt != nil {
		v := int64(*w.AsInt)
		p.AsInt = &v
	}
	if w.AsDouble != nil {
		v := float64(*w.AsDouble)
		p.AsDouble = &v
	}
	return nil
}

// HistogramDataPoint is a point of a Histogram. BucketCounts has one more
// element than ExplicitBounds.
type HistogramDataPoint struct {
	Attributes        []KeyValue
	StartTimeUnixNano uint64
	TimeUnixNano      uint64
	Count             uint64
	Sum               *float64
	BucketCounts      []uint64
	ExplicitBounds    []float64
	Min               *float64
	Max               *float64
	Flags             uint32
}

// UnmarshalJSON decodes a point from OTLP JSON.
func (p *HistogramDataPoint) UnmarshalJSON(b []byte) error {
	var w struct {
		Attributes        []KeyValue    `json:"attributes"`
		StartTimeUnixNano jsonUint64    `json:"startTimeUnixNano"`
		TimeUnixNano      jsonUint64    `json:"timeUnixNano"`
		Count             jsonUint64    `json:"count"`
		Sum               *jsonFloat64  `json:"sum"`
		BucketCounts      []jsonUint64  `json:"bucketCounts"`
		ExplicitBounds    []jsonFloat64 `json:"explicitBounds"`
		Min               *jsonFloat64  `json:"min"`
		Max               *jsonFloat64  `json:"max"`
		Flags             uint32        `json:"flags"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = HistogramDataPoint{
		Attributes:        w.Attributes,
		StartTimeUnixNano: uint64(w.StartTimeUnixNano),
		TimeUnixNano:      uint64(w.TimeUnixNano),
		Count:             uint64(w.Count),
		Sum:               (*float64)(w.Sum),
		Min:               (*float64)(w.Min),
		Max:               (*float64)(w.Max),
		Flags:             w.Flags,
	}
	if w.BucketCounts != nil {
		p.BucketCounts = make([]uint64, len(w.BucketCounts))
		for i, v := range w.BucketCounts {
			p.BucketCounts[i] = uint64(v)
		}
	}
	if w.ExplicitBounds != nil {
		p.ExplicitBounds = make([]float64, len(w.ExplicitBounds))
		for i, v := range w.ExplicitBounds {
			p.ExplicitBounds[i] = float64(v)
		}
	}
	return nil
}

// KeyValue is an attribute.
type KeyValue struct {
	Key   string   `json:"key"`
	Value AnyValue `json:"value"`
}

// AnyValue is an attribute value; at most one field is set (none for an
// empty value).
type AnyValue struct {
	StringValue *string
	BoolValue   *bool
	IntValue    *int64
	DoubleValue *float64
	BytesValue  []byte
	ArrayValue  []AnyValue
	KvlistValue []KeyValue
}

// UnmarshalJSON decodes a value from OTLP JSON.
func (v *AnyValue) UnmarshalJSON(b []byte) error {
	var w struct {
		StringValue *string      `json:"stringValue"`
		BoolValue   *bool        `json:"boolValue"`
		IntValue    *jsonInt64   `json:"intValue"`
		DoubleValue *jsonFloat64 `json:"doubleValue"`
		BytesValue  []byte       `json:"bytesValue"`
		ArrayValue  *struct {
			Values []AnyValue `json:"values"`
		} `json:"arrayValue"`
		KvlistValue *struct {
			Values []KeyValue `json:"values"`
		} `json:"kvlistValue"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*v = AnyValue{
		StringValue: w.StringValue,
		BoolValue:   w.BoolValue,
		IntValue:    (*int64)(w.IntValue),
		DoubleValue: (*float64)(w.DoubleValue),
		BytesValue:  w.BytesValue,
	}
	if w.ArrayValue != nil {
		v.ArrayValue = w.ArrayValue.Values
		if v.ArrayValue == nil {
			v.ArrayValue = []AnyValue{}
		}
	}
	if w.KvlistValue != nil {
		v.KvlistValue = w.KvlistValue.Values
		if v.KvlistValue == nil {
			v.KvlistValue = []KeyValue{}
		}
	}
	return nil
}

// String returns the value as text: a string as is, numbers and booleans as
// strconv formats them, bytes in base64, arrays and lists in a bracketed
// form, and "" for an empty value.
func (v AnyValue) String() string {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	case v.IntValue != nil:
		return strconv.FormatInt(*v.IntValue, 10)
	case v.DoubleValue != nil:
		return strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64)
	case v.BytesValue != nil:
		return base64.StdEncoding.EncodeToString(v.BytesValue)
	case v.ArrayValue != nil:
		parts := make([]string, len(v.ArrayValue))
		for i, e := range v.ArrayValue {
			parts[i] = e.String()
		}
		return "[" + strings.Join(parts, ",") + "]"
	case v.KvlistValue != nil:
		parts := make([]string, len(v.KvlistValue))
		for i, kv := range v.KvlistValue {
			parts[i] = kv.Key + "=" + kv.Value.String()
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return ""
}

// Attrs returns attributes as a map of their string forms.
func Attrs(kvs []KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// Point is one data point found by LastPoint, with where it came from.
// Number is set for a sum or gauge, Histogram for a histogram.
type Point struct {
	Resource  Resource
	Scope     Scope
	Metric    Metric // the metric holding the point, with all its points
	Number    *NumberDataPoint
	Histogram *HistogramDataPoint
}

// Attributes returns the point's attributes.
func (p Point) Attributes() []KeyValue {
	switch {
	case p.Number != nil:
		return p.Number.Attributes
	case p.Histogram != nil:
		return p.Histogram.Attributes
	}
	return nil
}

// TimeUnixNano returns the point's timestamp.
func (p Point) TimeUnixNano() uint64 {
	switch {
	case p.Number != nil:
		return p.Number.TimeUnixNano
	case p.Histogram != nil:
		return p.Histogram.TimeUnixNano
	}
	return 0
}

// parseMetricsLines decodes every complete (newline-terminated) line of data.
func parseMetricsLines(data []byte) ([]ResourceMetrics, error) {
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return nil, nil
	}
	var rms []ResourceMetrics
	for i, line := range bytes.Split(data[:end], []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var md MetricsData
		if err := json.Unmarshal(line, &md); err != nil {
			return nil, fmt.Errorf("decode metrics line %d: %w", i+1, err)
		}
		rms = append(rms, md.ResourceMetrics...)
	}
	return rms, nil
}

// lastPoint finds the latest point of metric name with exactly attrs. Of
// points with equal timestamps the one later in the file wins.
func lastPoint(rms []ResourceMetrics, name string, attrs map[string]string) (Point, bool) {
	var (
		best  Point
		found bool
	)
	consider := func(p Point) {
		if !attrsEqual(p.Attributes(), attrs) {
			return
		}
		if !found || p.TimeUnixNano() >= best.TimeUnixNano() {
			best, found = p, true
		}
	}
	for _, rm := range rms {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != name {
					continue
				}
				base := Point{Resource: rm.Resource, Scope: sm.Scope, Metric: m}
				var numbers []NumberDataPoint
				switch {
				case m.Sum != nil:
					numbers = m.Sum.DataPoints
				case m.Gauge != nil:
					numbers = m.Gauge.DataPoints
				case m.Histogram != nil:
					for i := range m.Histogram.DataPoints {
						p := base
						p.Histogram = &m.Histogram.DataPoints[i]
						consider(p)
					}
				}
				for i := range numbers {
					p := base
					p.Number = &numbers[i]
					consider(p)
				}
			}
		}
	}
	return best, found
}

func attrsEqual(kvs []KeyValue, want map[string]string) bool {
	if len(kvs) != len(want) {
		return false
	}
	for _, kv := range kvs {
		w, ok := want[kv.Key]
		if !ok || kv.Value.String() != w {
			return false
		}
	}
	return true
}

// describe summarises rms for failure messages: each metric name with the
// attribute sets of its points.
func describe(rms []ResourceMetrics) string {
	seen := map[string]map[string]bool{}
	var names []string
	add := func(name string, kvs []KeyValue) {
		if seen[name] == nil {
			seen[name] = map[string]bool{}
			names = append(names, name)
		}
		seen[name][fmt.Sprint(Attrs(kvs))] = true
	}
	for _, rm := range rms {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch {
				case m.Sum != nil:
					for _, dp := range m.Sum.DataPoints {
						add(m.Name, dp.Attributes)
					}
				case m.Gauge != nil:
					for _, dp := range m.Gauge.DataPoints {
						add(m.Name, dp.Attributes)
					}
				case m.Histogram != nil:
					for _, dp := range m.Histogram.DataPoints {
						add(m.Name, dp.Attributes)
					}
				default:
					add(m.Name, nil)
				}
			}
		}
	}
	if len(names) == 0 {
		return "no metrics"
	}
	var b strings.Builder
	for _, n := range names {
		sets := make([]string, 0, len(seen[n]))
		for s := range seen[n] {
			sets = append(sets, s)
		}
		sort.Strings(sets)
		fmt.Fprintf(&b, "\n  %s %s", n, strings.Join(sets, " "))
	}
	return b.String()
}

// jsonInt64 decodes an int64 written as a string or a number.
type jsonInt64 int64

func (n *jsonInt64) UnmarshalJSON(b []byte) error {
	s, err := unquoteNumber(b)
	if err != nil {
		return err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	*n = jsonInt64(v)
	return err
}

// jsonUint64 decodes a uint64 written as a string or a number.
type jsonUint64 uint64

func (n *jsonUint64) UnmarshalJSON(b []byte) error {
	s, err := unquoteNumber(b)
	if err != nil {
		return err
	}
	v, err := strconv.ParseUint(s, 10, 64)
	*n = jsonUint64(v)
	return err
}

// jsonFloat64 decodes a double written as a number or as "NaN",
// "Infinity", "-Infinity" (or a number in a string).
type jsonFloat64 float64

func (f *jsonFloat64) UnmarshalJSON(b []byte) error {
	s, err := unquoteNumber(b)
	if err != nil {
		return err
	}
	v, err := strconv.ParseFloat(s, 64)
	*f = jsonFloat64(v)
	return err
}

// unquoteNumber returns the text of a JSON number or string.
func unquoteNumber(b []byte) (string, error) {
	if len(b) > 0 && b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	}
	return string(b), nil
}
