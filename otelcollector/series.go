package otelcollector

import (
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/wundr-io/orchestrator-otel/internal/attrcache"
	"github.com/wundr-io/orchestrator-otel/internal/stats"
	"github.com/wundr-io/orchestrator-otel/internal/validate"
)

// field names one label: its attribute key and the Go parameter it comes
// from, which error messages name.
type field struct {
	key, param string
}

// labelValues is the cache key of the counters: up to three label values,
// unused slots empty. A fixed array keeps the key comparable without
// building a string.
type labelValues [3]string

func (k labelValues) labels() labelValues { return k }

// labelPair is the cache key of the counters of two labels.
type labelPair [2]string

func (k labelPair) labels() labelValues { return labelValues{k[0], k[1]} }

// orchKey is the cache key of a series with the orchestrator ID as its only
// label (the latency histogram): one string to hash instead of three.
type orchKey string

func (k orchKey) labels() labelValues { return labelValues{string(k)} }

// seriesKey is a cache key: it gives the label values it stands for.
type seriesKey interface {
	comparable
	labels() labelValues
}

// series holds, per label tuple of one instrument, the value the record path
// passes to the SDK (an option slice, or an entry with state of its own).
// Labels are validated only on a cache miss: a tuple in the cache has passed
// validation before.
type series[K seriesKey, V mortal] struct {
	fields []field
	build  func(attribute.Set) V
	cache  *attrcache.Cache[K, V]
	// overflow is returned for every tuple past the cache limit instead of
	// a value built per call.
	overflow V
	// overflowAll sends every tuple to overflow (a cardinality limit of 1).
	overflowAll bool
	// overflowed counts the records that went to overflow; the record path
	// that holds the value adds to it (counter.add, recordLatency).
	overflowed atomic.Int64
	// link, when set, registers a new value's live cell with the
	// statistics before the value is cached (so that any record made with
	// it is seen), and returns what removes the cell again if the value is
	// not the one cached.
	link func(vals labelValues, v V) (unlink func())
}

// mortal is a series value that ForgetOrchestrator can retire: a handle
// holding it sees dead and binds its labels again.
type mortal interface {
	comparable
	kill()
}

// newLimitedSeries returns series that keep limit-1 label tuples, as the SDK
// keeps limit-1 attribute sets per instrument, and map every other tuple to
// one overflow value built with the SDK's own overflow attribute
// (otel.metric.overflow=true). The export is the same as if the SDK had
// folded the tuples itself, but the Collector knows which records overflowed
// and builds nothing per call past the limit.
func newLimitedSeries[K seriesKey, V mortal](limit int, build func(attribute.Set) V, fields ...field) *series[K, V] {
	return &series[K, V]{
		fields:      fields,
		build:       build,
		cache:       attrcache.New[K, V](max(limit-1, 1)),
		overflow:    build(recordOverflowSet),
		overflowAll: limit <= 1,
	}
}

// get returns the value for vals, validating and building it on first use.
// Past the cache limit it returns the overflow value.
func (s *series[K, V]) get(c *Collector, k K) (V, error) {
	if v, ok := s.cache.Get(k); ok {
		return v, nil
	}
	return s.miss(c, k)
}

func (s *series[K, V]) miss(c *Collector, k K) (V, error) {
	var zero V
	vals := k.labels()
	for i, f := range s.fields {
		if r := validate.Label(vals[i]); r != validate.OK {
			return zero, c.reject(r, f.param, vals[i])
		}
	}
	if s.overflowAll || s.cache.Full() {
		return s.overflow, nil
	}
	kvs := make([]attribute.KeyValue, len(s.fields))
	for i, f := range s.fields {
		kvs[i] = attribute.String(f.key, vals[i])
	}
	built := s.build(attribute.NewSet(kvs...))
	var unlink func()
	if s.link != nil {
		unlink = s.link(vals, built)
	}
	v, cached := s.cache.Put(k, built)
	if unlink != nil && (!cached || v != built) {
		unlink() // another goroutine's value won, or the cache is full
	}
	if !cached {
		return s.overflow, nil
	}
	return v, nil
}

// forget removes every tuple that match accepts, which frees its slot, and
// retires its value.
func (s *series[K, V]) forget(match func(labelValues) bool) {
	s.cache.DeleteFunc(func(k K, _ V) bool { return match(k.labels()) }, V.kill)
}

// latencyEntry is one series of the latency histogram.
type latencyEntry struct {
	opts []metric.RecordOption
	dead atomic.Bool
	// overflow marks the overflow series' entry.
	overflow bool
	// live holds the latencies since the statistics' latest sample, which
	// AggregatedStats reads (unless WithoutAggregatedStats).
	live stats.LiveHist
}

func (e *latencyEntry) kill() { e.dead.Store(true) }

func newLatencyEntry(set attribute.Set) *latencyEntry {
	return &latencyEntry{opts: []metric.RecordOption{metric.WithAttributeSet(set)}}
}

func (e *latencyEntry) isDead() bool { return e.dead.Load() }
