package testpeer

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Point is one data point of a sum, gauge or histogram the Collector wrote,
// with where it came from. Number is set for a sum or gauge, Histogram for
// a histogram. Exponential histograms and summaries are not indexed.
type Point struct {
	Resource  *resourcepb.Resource
	Scope     *commonpb.InstrumentationScope
	Metric    *metricspb.Metric // the metric holding the point, with all its points
	Number    *metricspb.NumberDataPoint
	Histogram *metricspb.HistogramDataPoint
}

// Attributes returns the point's attributes.
func (p Point) Attributes() []*commonpb.KeyValue {
	if p.Number != nil {
		return p.Number.GetAttributes()
	}
	return p.Histogram.GetAttributes()
}

// TimeUnixNano returns the point's timestamp.
func (p Point) TimeUnixNano() uint64 {
	if p.Number != nil {
		return p.Number.GetTimeUnixNano()
	}
	return p.Histogram.GetTimeUnixNano()
}

// Int returns the value of an integer number point; false for any other.
func (p Point) Int() (int64, bool) {
	_, ok := p.Number.GetValue().(*metricspb.NumberDataPoint_AsInt)
	return p.Number.GetAsInt(), ok
}

// Double returns the value of a double number point; false for any other.
func (p Point) Double() (float64, bool) {
	_, ok := p.Number.GetValue().(*metricspb.NumberDataPoint_AsDouble)
	return p.Number.GetAsDouble(), ok
}

// ResourceAttr returns the string form of the resource attribute key.
func (p Point) ResourceAttr(key string) string {
	return Attrs(p.Resource.GetAttributes())[key]
}

// Attrs returns attributes as a map of their string forms (AnyString).
func Attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = AnyString(kv.GetValue())
	}
	return m
}

// AnyString returns an attribute value as text: a string as is, numbers and
// booleans as strconv formats them, bytes in base64, arrays and lists in a
// bracketed form, and "" for an empty value.
func AnyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		parts := make([]string, len(x.ArrayValue.GetValues()))
		for i, e := range x.ArrayValue.GetValues() {
			parts[i] = AnyString(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case *commonpb.AnyValue_KvlistValue:
		parts := make([]string, len(x.KvlistValue.GetValues()))
		for i, kv := range x.KvlistValue.GetValues() {
			parts[i] = kv.GetKey() + "=" + AnyString(kv.GetValue())
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return ""
}

// seriesKey identifies a metric name with one exact attribute set.
func seriesKey(name string, attrs map[string]string) string {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(name)
	for _, k := range keys {
		fmt.Fprintf(&b, "\x00%s\x00%s", k, attrs[k])
	}
	return b.String()
}

// metricsFile reads the file exporter's output (one OTLP JSON
// ExportMetricsServiceRequest per line) incrementally: each update decodes
// only the complete lines written since the last one, and indexes their
// points by series. Its methods are safe for concurrent use.
//
// protojson is the protobuf JSON mapping, which OTLP JSON follows except
// that trace and span IDs are hex, not base64: an exemplar's IDs decode to
// the wrong bytes (no error). Nothing here reads them.
type metricsFile struct {
	path string

	mu     sync.Mutex
	offset int64 // bytes of complete lines consumed
	line   int   // complete lines consumed
	err    error // a line that did not decode; sticky
	series map[string][]Point
	names  []string // metric names in order of first appearance
}

func newMetricsFile(path string) *metricsFile {
	return &metricsFile{path: path, series: map[string][]Point{}}
}

// update decodes what was appended to the file since the last call. A
// missing file holds nothing yet; a partly written last line is left for a
// later call.
func (f *metricsFile) update() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	fh, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", f.path, err)
	}
	defer fh.Close()
	if _, err := fh.Seek(f.offset, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s: %w", f.path, err)
	}
	data, err := io.ReadAll(fh)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.path, err)
	}
	f.err = f.ingestLocked(data)
	return f.err
}

// ingestLocked decodes the complete lines of data, which starts at offset.
func (f *metricsFile) ingestLocked(data []byte) error {
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return nil
	}
	f.offset += int64(end + 1)
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}
	for _, line := range bytes.Split(data[:end], []byte("\n")) {
		f.line++
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var md metricspb.MetricsData
		if err := opts.Unmarshal(line, &md); err != nil {
			return fmt.Errorf("decode %s line %d: %w", f.path, f.line, err)
		}
		f.indexLocked(&md)
	}
	return nil
}

func (f *metricsFile) indexLocked(md *metricspb.MetricsData) {
	for _, rm := range md.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				base := Point{Resource: rm.GetResource(), Scope: sm.GetScope(), Metric: m}
				var points []Point
				for _, dp := range slices.Concat(m.GetSum().GetDataPoints(), m.GetGauge().GetDataPoints()) {
					p := base
					p.Number = dp
					points = append(points, p)
				}
				for _, dp := range m.GetHistogram().GetDataPoints() {
					p := base
					p.Histogram = dp
					points = append(points, p)
				}
				for _, p := range points {
					key := seriesKey(m.GetName(), Attrs(p.Attributes()))
					if _, seen := f.series[key]; !seen && !slices.Contains(f.names, m.GetName()) {
						f.names = append(f.names, m.GetName())
					}
					f.series[key] = append(f.series[key], p)
				}
			}
		}
	}
}

// points returns the points of metric name whose attributes are exactly
// attrs, in file order.
func (f *metricsFile) points(name string, attrs map[string]string) ([]Point, error) {
	err := f.update()
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.series[seriesKey(name, attrs)]), err
}

// latest returns the latest point by TimeUnixNano for which keep returns
// true (nil keeps all); of equal timestamps the one later in the file wins.
func latest(points []Point, keep func(Point) bool) (Point, bool) {
	var (
		best  Point
		found bool
	)
	for _, p := range points {
		if keep != nil && !keep(p) {
			continue
		}
		if !found || p.TimeUnixNano() >= best.TimeUnixNano() {
			best, found = p, true
		}
	}
	return best, found
}

// describe summarises the file for failure messages: each metric name with
// the attribute sets of its points.
func (f *metricsFile) describe() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.names) == 0 {
		return "no metrics"
	}
	sets := map[string][]string{}
	for key := range f.series {
		name, attrs, _ := strings.Cut(key, "\x00")
		sets[name] = append(sets[name], "{"+strings.ReplaceAll(attrs, "\x00", " ")+"}")
	}
	var b strings.Builder
	for _, n := range f.names {
		slices.Sort(sets[n])
		fmt.Fprintf(&b, "\n  %s %s", n, strings.Join(sets[n], " "))
	}
	return b.String()
}
