package testpeer

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
)

// sampleLines is hand-written OTLP JSON in the forms the file exporter
// writes, plus the spellings the decoders also accept (bare numbers, enum
// names), and a last line cut short.
const sampleLines = `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeMetrics":[{"scope":{"name":"m","version":"1"},"metrics":[` +
	`{"name":"c","unit":"{token}","sum":{"dataPoints":[{"attributes":[{"key":"model","value":{"stringValue":"a"}}],"startTimeUnixNano":"100","timeUnixNano":"200","asInt":"9007199254740993"}],"aggregationTemporality":2,"isMonotonic":true}},` +
	`{"name":"h","histogram":{"dataPoints":[{"timeUnixNano":"200","count":"3","sum":"NaN","bucketCounts":["1","2"],"explicitBounds":[0.5],"min":"-Infinity","max":2}],"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA"}}` +
	`]}]}]}
{"resourceMetrics":[{"scopeMetrics":[{"metrics":[` +
	`{"name":"c","sum":{"dataPoints":[{"attributes":[{"key":"model","value":{"stringValue":"a"}}],"timeUnixNano":"300","asInt":"5"},{"attributes":[{"key":"model","value":{"stringValue":"b"}}],"timeUnixNano":"900","asInt":6}],"aggregationTemporality":2}},` +
	`{"name":"c","sum":{"dataPoints":[{"attributes":[{"key":"model","value":{"stringValue":"a"}}],"timeUnixNano":"250","asInt":"4"}]}},` +
	`{"name":"g","gauge":{"dataPoints":[{"attributes":[{"key":"n","value":{"intValue":"12"}},{"key":"ok","value":{"boolValue":true}},{"key":"d","value":{"doubleValue":1.5}}],"timeUnixNano":"1","asDouble":"Infinity"}]}}` +
	`]}]}]}
{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"c","sum":{"dataPoints":[{"timeUnixNano":"999`

// TestMetricsFile: the file is read incrementally, a cut last line waits
// for its end, and points are found by exact attribute set, latest by time.
func TestMetricsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	if err := os.WriteFile(path, []byte(sampleLines), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newMetricsFile(path)
	point := func(name string, attrs map[string]string) (Point, bool) {
		t.Helper()
		points, err := f.points(name, attrs)
		if err != nil {
			t.Fatal(err)
		}
		return latest(points, nil)
	}

	testCases := []struct {
		name   string
		metric string
		attrs  map[string]string
		found  bool
		check  func(t *testing.T, p Point)
	}{
		{
			name: "latest by time, not by file order", metric: "c", attrs: map[string]string{"model": "a"}, found: true,
			check: func(t *testing.T, p Point) { wantInt(t, p, 5) },
		},
		{
			name: "bare number int", metric: "c", attrs: map[string]string{"model": "b"}, found: true,
			check: func(t *testing.T, p Point) { wantInt(t, p, 6) },
		},
		{
			name: "int64 beyond float precision", metric: "c", attrs: map[string]string{"model": "a"}, found: true,
			check: func(t *testing.T, _ Point) {
				points, _ := f.points("c", map[string]string{"model": "a"})
				first := points[0]
				wantInt(t, first, 9007199254740993)
				if first.Metric.GetUnit() != "{token}" || first.Number.GetStartTimeUnixNano() != 100 {
					t.Errorf("unit %q start %d", first.Metric.GetUnit(), first.Number.GetStartTimeUnixNano())
				}
			},
		},
		{
			name: "histogram with special doubles and enum name", metric: "h", attrs: nil, found: true,
			check: func(t *testing.T, p Point) {
				h := p.Histogram
				if h == nil || h.GetCount() != 3 || !math.IsNaN(h.GetSum()) || !math.IsInf(h.GetMin(), -1) || h.GetMax() != 2 {
					t.Fatalf("histogram point %v", h)
				}
				if !slices.Equal(h.GetBucketCounts(), []uint64{1, 2}) || !slices.Equal(h.GetExplicitBounds(), []float64{0.5}) {
					t.Errorf("buckets %v bounds %v", h.GetBucketCounts(), h.GetExplicitBounds())
				}
				if got := p.Metric.GetHistogram().GetAggregationTemporality(); got != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA {
					t.Errorf("temporality %v, want delta", got)
				}
				if got := p.ResourceAttr("service.name"); got != "svc" {
					t.Errorf("service.name = %q", got)
				}
			},
		},
		{
			name: "non-string attributes compare by string form", metric: "g",
			attrs: map[string]string{"n": "12", "ok": "true", "d": "1.5"}, found: true,
			check: func(t *testing.T, p Point) {
				if v, ok := p.Double(); !ok || !math.IsInf(v, 1) {
					t.Errorf("gauge point %v, want asDouble +Inf", p.Number)
				}
			},
		},
		{name: "subset of attributes does not match", metric: "g", attrs: map[string]string{"n": "12"}},
		{name: "wrong value does not match", metric: "c", attrs: map[string]string{"model": "z"}},
		{name: "unknown metric", metric: "nope", attrs: nil},
		{name: "cut line not read yet", metric: "c", attrs: nil},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := point(tc.metric, tc.attrs)
			if ok != tc.found {
				t.Fatalf("found = %v, want %v", ok, tc.found)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}

	// The cut line is finished: the next read takes it, and only it.
	const rest = `"}]}}]}]}]}` + "\n"
	appendFile(t, path, rest)
	if p, ok := point("c", nil); !ok || p.TimeUnixNano() != 999 {
		t.Errorf("completed line: found %v, time %d; want the point at 999", ok, p.TimeUnixNano())
	}
	if want := int64(len(sampleLines) + len(rest)); f.offset != want {
		t.Errorf("offset %d after the completed line, want %d", f.offset, want)
	}
	if points, _ := f.points("c", map[string]string{"model": "a"}); len(points) != 3 {
		t.Errorf("%d points of c{model=a} after a second read, want 3 (nothing read twice)", len(points))
	}
	if d := f.describe(); !strings.Contains(d, "c {model a}") || !strings.Contains(d, "h {}") {
		t.Errorf("describe() = %s", d)
	}

	// A malformed complete line is an error, and stays one.
	appendFile(t, path, "{\"resourceMetrics\":[}\n")
	for range 2 {
		if _, err := f.points("c", nil); err == nil || !strings.Contains(err.Error(), "line 4") {
			t.Errorf("malformed line 4: err = %v", err)
		}
	}
}

func TestMetricsFileMissing(t *testing.T) {
	f := newMetricsFile(filepath.Join(t.TempDir(), "none.jsonl"))
	if points, err := f.points("c", nil); err != nil || points != nil {
		t.Errorf("missing file: %v, %v", points, err)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
