// Package otelcollectortest helps test code instrumented with otelcollector,
// in the style of client_golang's prometheus/testutil: no server, no port,
// failures with a readable diff.
//
// New returns a Collector whose only exporter is an in-memory Prometheus
// reader on a private client_golang registry, configured as
// exporters/prometheus configures its own (the same OTel exporter, name
// translation, no scope or target info), so that what a test reads is what
// a real scrape of the daemon would show, series names, labels, HELP and
// TYPE included. The library's own counters
// (orchestrator_collector_rejected_total, orchestrator_collector_overflow_total)
// are in it too.
//
//	c := otelcollectortest.New(t)
//	handleMessage(ctx, c.Collector) // the code under test
//	tokens, err := c.Value("orchestrator_tokens_used_total", map[string]string{
//		"orchestrator_id": "orch-1", "model": "claude-sonnet",
//	})
//	err = c.Compare(strings.NewReader(expected), "orchestrator_sessions_active")
//
// The package imports none of this module's exporters (otelcollector never
// does, so that users do not link gRPC); it uses the OTel Prometheus
// exporter directly.
package otelcollectortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// ErrNoSeries is returned by Value when no series has the name and labels.
var ErrNoSeries = errors.New("otelcollectortest: no such series")

// Collector is an otelcollector.Collector read back in memory.
type Collector struct {
	*otelcollector.Collector
	registry *prometheus.Registry
}

// New creates a Collector with opts plus an in-memory Prometheus reader
// (do not pass another WithExporter for it), and closes it when the test
// ends. It fails the test if the Collector cannot be created.
func New(tb testing.TB, opts ...otelcollector.Option) *Collector {
	tb.Helper()
	c, err := NewCollector(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil && !errors.Is(err, otelcollector.ErrClosed) {
			tb.Errorf("otelcollectortest: Close: %v", err)
		}
	})
	return c
}

// NewCollector is New outside a test (an Example, a benchmark helper): the
// caller closes the Collector.
func NewCollector(opts ...otelcollector.Option) (*Collector, error) {
	exp, err := newExporter()
	if err != nil {
		return nil, fmt.Errorf("otelcollectortest: %w", err)
	}
	c, err := otelcollector.New(context.Background(), append(slices.Clone(opts), otelcollector.WithExporter(exp))...)
	if err != nil {
		return nil, fmt.Errorf("otelcollectortest: otelcollector.New: %w", err)
	}
	return &Collector{Collector: c, registry: exp.registry}, nil
}

// Gatherer returns the registry a scrape would read, for client_golang's
// testutil functions (testutil.GatherAndCount, GatherAndLint, ...).
func (c *Collector) Gatherer() prometheus.Gatherer { return c.registry }

// Scrape returns what a Prometheus scrape of the Collector shows now, in
// the text exposition format, restricted to metricNames if any are given.
func (c *Collector) Scrape(metricNames ...string) (string, error) {
	mfs, err := c.registry.Gather()
	if err != nil {
		return "", fmt.Errorf("otelcollectortest: gather: %w", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if len(metricNames) > 0 && !slices.Contains(metricNames, mf.GetName()) {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			return "", fmt.Errorf("otelcollectortest: encode %s: %w", mf.GetName(), err)
		}
	}
	return buf.String(), nil
}

// Compare compares a scrape of the Collector with expected, exposition
// text with its # HELP and # TYPE lines, like testutil.GatherAndCompare:
// with metricNames only those families, otherwise every family. The error
// shows a diff: lines marked - are what the Collector has, + what was
// expected.
func (c *Collector) Compare(expected io.Reader, metricNames ...string) error {
	if err := testutil.GatherAndCompare(c.registry, expected, metricNames...); err != nil {
		return fmt.Errorf("otelcollectortest: scrape (-) differs from expected (+): %w", err)
	}
	return nil
}

// Value returns the value of the one series of the family name (its
// Prometheus name: orchestrator_tokens_used_total,
// orchestrator_message_latency_seconds_count, ..._bucket with an le label,
// ..._sum) whose labels are exactly labels. A histogram's _count, _sum and
// _bucket are read from its family. It returns ErrNoSeries, listing the
// series the family has, when none matches.
func (c *Collector) Value(name string, labels map[string]string) (float64, error) {
	mfs, err := c.registry.Gather()
	if err != nil {
		return 0, fmt.Errorf("otelcollectortest: gather: %w", err)
	}
	family, part := name, ""
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && findFamily(mfs, name) == nil {
			family, part = base, suffix
		}
	}
	mf := findFamily(mfs, family)
	if mf == nil {
		return 0, fmt.Errorf("%w: no family %s", ErrNoSeries, family)
	}
	var seen []string
	for _, m := range mf.GetMetric() {
		got := labelMap(m)
		if part == "_bucket" {
			want, le, err := splitLe(labels)
			if err != nil {
				return 0, err
			}
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				seen = append(seen, formatLabels(copyWith(got, "le", formatBound(b.GetUpperBound()))))
				if equalLabels(got, want) && b.GetUpperBound() == le {
					return float64(b.GetCumulativeCount()), nil
				}
			}
			seen = append(seen, formatLabels(copyWith(got, "le", "+Inf")))
			if equalLabels(got, want) && math.IsInf(le, +1) {
				return float64(h.GetSampleCount()), nil
			}
			continue
		}
		seen = append(seen, formatLabels(got))
		if !equalLabels(got, labels) {
			continue
		}
		switch {
		case part == "_count":
			return float64(m.GetHistogram().GetSampleCount()), nil
		case part == "_sum":
			return m.GetHistogram().GetSampleSum(), nil
		case m.Counter != nil:
			return m.GetCounter().GetValue(), nil
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), nil
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), nil
		default:
			return 0, fmt.Errorf("otelcollectortest: %s%s is a %s: read its _count, _sum or _bucket", name, formatLabels(labels), mf.GetType())
		}
	}
	sort.Strings(seen)
	return 0, fmt.Errorf("%w: %s%s; %s has %d series:\n  %s", ErrNoSeries, name, formatLabels(labels), family, len(seen), strings.Join(seen, "\n  "))
}

// ToFloat64 is Value for a test: it fails the test instead of returning an
// error. Like testutil.ToFloat64, it is meant for one series.
func (c *Collector) ToFloat64(tb testing.TB, name string, labels map[string]string) float64 {
	tb.Helper()
	v, err := c.Value(name, labels)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func findFamily(mfs []*dto.MetricFamily, name string) *dto.MetricFamily {
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

func labelMap(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func copyWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// splitLe takes the le label out of a bucket's labels and parses it, so
// that le="1", le="1.0" and le="1e0" all name the bucket bounded by 1: the
// text format writes "1", OpenMetrics (what Prometheus asks for and stores)
// "1.0".
func splitLe(labels map[string]string) (map[string]string, float64, error) {
	s, ok := labels["le"]
	if !ok {
		return nil, 0, fmt.Errorf("otelcollectortest: a _bucket series needs an le label, got %s", formatLabels(labels))
	}
	le, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("otelcollectortest: le=%q: %w", s, err)
	}
	rest := make(map[string]string, len(labels)-1)
	for k, v := range labels {
		if k != "le" {
			rest[k] = v
		}
	}
	return rest, le, nil
}

func formatBound(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func formatLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

// exporter is the in-memory Prometheus reader: the OTel Prometheus
// exporter on a private registry, fed by the Collector's Producer as
// exporters/prometheus is (otelcollector.ProducerExporter), so that
// ForgetOrchestrator removes series here as it does from a real scrape.
type exporter struct {
	reader   *otelprom.Exporter
	registry *prometheus.Registry
	producer *lateProducer
}

var _ otelcollector.ProducerExporter = (*exporter)(nil)

func newExporter() (*exporter, error) {
	reg := prometheus.NewRegistry()
	p := &lateProducer{}
	r, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithProducer(p),
		// exporters/prometheus' configuration: the legacy names with
		// suffixes, no otel_scope_* labels, no target_info.
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("creating the in-memory Prometheus reader: %w", err)
	}
	return &exporter{reader: r, registry: reg, producer: p}, nil
}

func (e *exporter) Reader() sdkmetric.Reader { return e.reader }

func (e *exporter) Shutdown(context.Context) error { return nil }

func (e *exporter) Temporality(sdkmetric.InstrumentKind) metricdata.Temporality {
	return metricdata.CumulativeTemporality
}

func (e *exporter) SetProducer(p sdkmetric.Producer) error {
	if p == nil {
		return errors.New("otelcollectortest: SetProducer(nil)")
	}
	if !e.producer.set(p) {
		return errors.New("otelcollectortest: exporter already used by a Collector")
	}
	return nil
}

// lateProducer is the Producer the reader is built with; the Collector's
// own Producer is set into it by SetProducer, during otelcollector.New.
type lateProducer struct {
	p atomic.Pointer[sdkmetric.Producer]
}

func (l *lateProducer) set(p sdkmetric.Producer) bool { return l.p.CompareAndSwap(nil, &p) }

func (l *lateProducer) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
	if p := l.p.Load(); p != nil {
		return (*p).Produce(ctx)
	}
	return nil, nil
}
