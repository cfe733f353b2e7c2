package otlp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
)

// countingExporter decorates the OTel OTLP exporter: it counts and logs the
// exports that fail and passes everything else through. The periodic reader
// calls Export from its own goroutine, so nothing here is on the path of a
// Record call.
type countingExporter struct {
	sdkmetric.Exporter
	failed atomic.Int64
	log    *failureLog
}

var _ sdkmetric.Exporter = (*countingExporter)(nil)

func (e *countingExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	ctx, o := withOutcome(ctx)
	err := e.Exporter.Export(ctx, rm)
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		// Canceled by the caller, not failed: typically the reader's
		// Shutdown interrupting a periodic export, whose data the final
		// export then carries.
		e.log.canceled(err)
		return err
	}
	if err != nil {
		total := e.failed.Add(1)
		e.log.failure(failureKind(err, o), err, total)
		return &exportError{err}
	}
	e.log.success()
	return nil
}

// exportError marks an error as one that countingExporter has counted and
// logged already; its text and what it wraps are the OTel exporter's.
type exportError struct{ err error }

func (e *exportError) Error() string { return e.err.Error() }
func (e *exportError) Unwrap() error { return e.err }

// MarshalLog keeps the OTel SDK's debug logging of its reader from walking
// into the decorated exporter.
func (e *countingExporter) MarshalLog() any {
	return struct{ Type string }{Type: "orchestrator-otel OTLP"}
}

// failureLog logs export failures at most once per kind per window. A line
// carries how many failures of its kind it stands for, so nothing goes
// uncounted, and a run of failures ends with one "recovered" line (itself
// rate-limited the same way).
type failureLog struct {
	logger   *slog.Logger
	protocol Protocol
	every    time.Duration
	now      func() time.Time

	mu      sync.Mutex
	kinds   map[string]*kindLog
	failing int64 // failures since the last successful export
}

type kindLog struct {
	last    time.Time
	pending int64 // failures not yet reported in a line
}

const (
	recoveredKind = "\x00recovered"
	collectKind   = "\x00collect"
)

func newFailureLog(cfg config) *failureLog {
	return &failureLog{
		logger:   cfg.logger,
		protocol: cfg.protocol,
		every:    cfg.logEvery,
		now:      cfg.now,
		kinds:    make(map[string]*kindLog),
	}
}

// due counts one event of kind and reports whether a line is due, with the
// number of events that line stands for.
func (l *failureLog) due(kind string) (int64, bool) {
	now := l.now()
	k := l.kinds[kind]
	if k == nil {
		k = &kindLog{}
		l.kinds[kind] = k
	} else if now.Sub(k.last) < l.every {
		k.pending++
		return 0, false
	}
	n := k.pending + 1
	k.pending, k.last = 0, now
	return n, true
}

func (l *failureLog) failure(kind string, err error, total int64) {
	l.mu.Lock()
	l.failing++
	n, ok := l.due(kind)
	l.mu.Unlock()
	if !ok {
		return
	}
	l.logger.LogAttrs(context.Background(), slog.LevelWarn, "OTLP metric export failed",
		slog.String("protocol", string(l.protocol)),
		slog.String("kind", kind),
		slog.Int64("failures", n),
		slog.Int64("failed_total", total),
		slog.String("error", err.Error()))
}

// collectFailure logs a periodic collection that failed before anything
// was exported, rate-limited like the export failures.
func (l *failureLog) collectFailure(err error) {
	l.mu.Lock()
	n, ok := l.due(collectKind)
	l.mu.Unlock()
	if !ok {
		return
	}
	l.logger.LogAttrs(context.Background(), slog.LevelWarn, "OTLP metric collection failed",
		slog.String("protocol", string(l.protocol)),
		slog.Int64("failures", n),
		slog.String("error", err.Error()))
}

func (l *failureLog) canceled(err error) {
	l.logger.LogAttrs(context.Background(), slog.LevelDebug, "OTLP metric export canceled",
		slog.String("protocol", string(l.protocol)),
		slog.String("error", err.Error()))
}

func (l *failureLog) success() {
	l.mu.Lock()
	if l.failing == 0 {
		l.mu.Unlock()
		return
	}
	failed := l.failing
	l.failing = 0
	_, ok := l.due(recoveredKind)
	l.mu.Unlock()
	if !ok {
		return
	}
	l.logger.LogAttrs(context.Background(), slog.LevelInfo, "OTLP metric export recovered",
		slog.String("protocol", string(l.protocol)),
		slog.Int64("failed_before", failed))
}

// failureKind names the class of an export error with a short, bounded
// string, from the error's types and what the transport saw (o), never
// from its text:
//   - a gRPC status code in snake case ("unavailable", "unauthenticated");
//   - "http_<status>" for an HTTP response that is not 2xx (the last
//     attempt's, when retried);
//   - "partial_success" when the receiver answered (HTTP 2xx, gRPC without
//     error) but the export still failed: it rejected some points;
//   - "unreachable" (connection refused, or any dial error), "timeout"
//     (context deadline, or a network timeout), "canceled", else "other".
func failureKind(err error, o *outcome) string {
	if s, ok := status.FromError(err); ok && s.Code() != codes.OK && s.Code() != codes.Unknown {
		return snakeCase(s.Code().String())
	}
	if o != nil {
		if code := o.httpStatus.Load(); code != 0 && (code < 200 || code > 299) {
			return "http_" + strconv.Itoa(int(code))
		}
		if o.answered.Load() {
			return "partial_success"
		}
	}
	var op *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial") {
		return "unreachable"
	}
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &timeout) && timeout.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}

func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// failedProducer adds schema.OTLPFailedExports to every collection of the
// exporter's own reader, so the count travels with the data it describes.
// It follows the temporality the exporter asks for an asynchronous counter.
type failedProducer struct {
	exp   *countingExporter
	start time.Time
	now   func() time.Time

	mu       sync.Mutex
	last     int64
	lastTime time.Time
}

var _ sdkmetric.Producer = (*failedProducer)(nil)

func newFailedProducer(exp *countingExporter, now func() time.Time) *failedProducer {
	t := now()
	return &failedProducer{exp: exp, start: t, lastTime: t, now: now}
}

func (p *failedProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	temporality := p.exp.Temporality(sdkmetric.InstrumentKindObservableCounter)
	total := p.exp.failed.Load()
	now := p.now()

	pt := metricdata.DataPoint[int64]{StartTime: p.start, Time: now, Value: total}
	if temporality == metricdata.DeltaTemporality {
		p.mu.Lock()
		pt.StartTime, pt.Value = p.lastTime, total-p.last
		p.last, p.lastTime = total, now
		p.mu.Unlock()
	}
	return []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: schema.OTLPScopeName},
		Metrics: []metricdata.Metrics{{
			Name:        schema.OTLPFailedExports,
			Description: schema.DescOTLPFailedExports,
			Unit:        schema.UnitExports,
			Data: metricdata.Sum[int64]{
				DataPoints:  []metricdata.DataPoint[int64]{pt},
				Temporality: temporality,
				IsMonotonic: true,
			},
		}},
	}}, nil
}
