package otelcollector

import (
	"context"
	"errors"
	"math"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/wundr-io/orchestrator-otel/internal/schema"
	"github.com/wundr-io/orchestrator-otel/internal/stats"
)

// overflowAttr marks the series that collects every label set past the
// cardinality limit; the SDK uses the same attribute for its own overflow.
var overflowAttr = attribute.Bool("otel.metric.overflow", true)

// recordOverflowAttr is what the synchronous instruments record the
// overflow series with: the same key and text as overflowAttr, but a string,
// so that its attribute set differs from the SDK's own overflow set. The
// SDK sends every new attribute set to its overflow series once that set is
// in an aggregator's map; with delta temporality the map starts empty at
// each collection, so an interval in which our overflow series was recorded
// before a kept series would fold the kept series into it. The stores turn
// it back into overflowAttr, so the exporters export exactly the SDK's
// overflow set; a WithReader reader sees the string form (the same
// otel_metric_overflow="true" in Prometheus text).
var (
	recordOverflowAttr = attribute.String("otel.metric.overflow", "true")
	recordOverflowSet  = attribute.NewSet(recordOverflowAttr)
	exportOverflowSet  = attribute.NewSet(overflowAttr)
)

// counterEntry is one series of a counter or up-down counter.
type counterEntry struct {
	// opts is passed to the SDK's Add (synchronous mode).
	opts []metric.AddOption
	// obs is passed to Observe at collection (atomic mode); obsRec instead
	// on the recording provider, whose WithReader readers see the overflow
	// series in the synchronous instruments' form (recordOverflowAttr).
	obs, obsRec []metric.ObserveOption
	// n is the series' running total, in both modes: the value atomic mode
	// reports, the tokens' saturation check, and what the statistics read
	// (stats.Cell). For sessions it is the active count, which
	// RecordSessionEnd checks.
	n atomic.Int64
	// started and ended count a session series' starts and ends in the
	// synchronous mode, for the statistics, and in both modes with
	// WithSessionCounters, which exports them.
	started, ended atomic.Int64
	// live is set by the first record (atomic mode). Only live series are
	// reported, so that binding a handle creates no series, as with the SDK.
	live atomic.Bool
	// overflow marks the entry of the overflow series, which takes every
	// label set past the cardinality limit; its records are counted in
	// series.overflowed.
	overflow bool
	// dead is set when ForgetOrchestrator removes the entry; a handle
	// holding it binds its labels again.
	dead atomic.Bool
}

func (e *counterEntry) kill() { e.dead.Store(true) }

// adder is the Add method shared by Int64Counter and Int64UpDownCounter.
type adder interface {
	Add(ctx context.Context, incr int64, options ...metric.AddOption)
}

// counter is one counter or up-down counter with its series. In the default,
// synchronous mode each record calls the SDK's Add with the series' cached
// option. In atomic mode (WithAtomicCounters) a record adds to the series'
// own atomic value, and an observable instrument of the same name, unit and
// description on each MeterProvider reports every live series when a reader
// collects; the SDK then exports the same cumulative sums.
//
// K is the cache key: labelPair for the counters of two labels (one string
// fewer to hash and compare on every lookup than labelValues), labelValues
// for those of three.
type counter[K seriesKey] struct {
	atomic bool
	spec   counterSpec
	sync   adder
	series *series[K, *counterEntry]
	// startsEnds (WithSessionCounters; the sessions counter only): every
	// start and end is also counted in its entry's started and ended, in
	// both modes, and exported as the counters schema.SessionsStarted and
	// schema.SessionsEnded: through startedSync and endedSync in the
	// synchronous mode, observed from the entries in atomic mode.
	startsEnds             bool
	startedSync, endedSync adder
}

// anyCounter is what the Collector does with every counter, whatever its
// key.
type anyCounter interface {
	observe(o metric.Observer, obs metric.Int64Observable, recording bool)
	linkStats(st *stats.Store)
	specOf() counterSpec
	isAtomic() bool
}

func (k *counter[K]) specOf() counterSpec { return k.spec }
func (k *counter[K]) isAtomic() bool      { return k.atomic }

// add adds n to series e.
func (k *counter[K]) add(ctx context.Context, e *counterEntry, n int64) {
	if e.overflow {
		k.series.overflowed.Add(1)
	}
	e.n.Add(n)
	if k.atomic {
		if !e.live.Load() {
			e.live.Store(true)
		}
		return
	}
	k.sync.Add(ctx, n, e.opts...)
}

// addSaturating adds n >= 0 to series e unless that would take the series
// past the largest int64, which it reports with false, adding nothing. The
// series' running total is kept in e.n in both modes for that check.
func (k *counter[K]) addSaturating(ctx context.Context, e *counterEntry, n int64) bool {
	for {
		cur := e.n.Load()
		if n > math.MaxInt64-cur {
			return false
		}
		if e.n.CompareAndSwap(cur, cur+n) {
			break
		}
	}
	if e.overflow {
		k.series.overflowed.Add(1)
	}
	if k.atomic {
		if !e.live.Load() {
			e.live.Store(true)
		}
		return true
	}
	k.sync.Add(ctx, n, e.opts...)
	return true
}

// publish reports a change of n that the caller has already applied to e.n
// (sessions, whose count is kept in both modes).
func (k *counter[K]) publish(ctx context.Context, e *counterEntry, n int64) {
	if e.overflow {
		k.series.overflowed.Add(1)
	}
	if k.atomic {
		if !e.live.Load() {
			e.live.Store(true)
		}
		return
	}
	k.sync.Add(ctx, n, e.opts...)
}

// observe reports the live series of k through obs, the overflow series
// last: the SDK folds every set it sees after an overflow set into the
// overflow series.
func (k *counter[K]) observe(o metric.Observer, obs metric.Int64Observable, recording bool) {
	k.series.cache.Range(func(_ K, e *counterEntry) bool {
		if e.live.Load() {
			o.ObserveInt64(obs, e.n.Load(), e.obs...)
		}
		return true
	})
	if ov := k.series.overflow; ov != nil && ov.live.Load() {
		opts := ov.obs
		if recording {
			opts = ov.obsRec
		}
		o.ObserveInt64(obs, ov.n.Load(), opts...)
	}
}

// observeStartsEnds reports, in atomic mode with WithSessionCounters, the
// starts and ends of k's live series through started and ended, the
// overflow series last (as observe does). A count of 0 is not reported: in
// the synchronous mode a series of either counter exists from its first
// record on, so the exported data are the same in both modes.
func (k *counter[K]) observeStartsEnds(o metric.Observer, started, ended metric.Int64Observable, recording bool) {
	report := func(e *counterEntry, opts []metric.ObserveOption) {
		if n := e.started.Load(); n > 0 {
			o.ObserveInt64(started, n, opts...)
		}
		if n := e.ended.Load(); n > 0 {
			o.ObserveInt64(ended, n, opts...)
		}
	}
	k.series.cache.Range(func(_ K, e *counterEntry) bool {
		if e.live.Load() {
			report(e, e.obs)
		}
		return true
	})
	if ov := k.series.overflow; ov != nil && ov.live.Load() {
		opts := ov.obs
		if recording {
			opts = ov.obsRec
		}
		report(ov, opts)
	}
}

type counterSpec struct {
	name, unit, desc string
	upDown           bool
	fields           []field
	cell             stats.CellKind // what the statistics read of a series
}

// createCounters creates the five counters (sessions, tokens, tools,
// delegations, errors) and their series; in the default mode their
// synchronous instruments are created on m, the recording MeterProvider's
// meter.
func (c *Collector) createCounters(m metric.Meter, cfg config) error {
	var err error
	// keep lists a counter that was created, in this order (the order
	// of the atomic mode's observations).
	keep := func(k anyCounter, e error) {
		if e != nil {
			err = errors.Join(err, e)
			return
		}
		c.counterList = append(c.counterList, k)
	}
	var e error
	c.sessions, e = newCounter[labelPair](m, cfg, counterSpec{schema.SessionsActive, schema.UnitSessions, schema.DescSessionsActive, true,
		[]field{{schema.KeyOrchestratorID, "orchestratorID"}, {schema.KeySessionType, "sessionType"}}, stats.CellSessions})
	keep(c.sessions, e)
	if e == nil && cfg.sessionCounters {
		c.sessions.startsEnds = true
		if !c.sessions.atomic {
			unit := metric.WithUnit(schema.UnitSessions)
			c.sessions.startedSync, e = m.Int64Counter(schema.SessionsStarted, unit, metric.WithDescription(schema.DescSessionsStarted))
			err = errors.Join(err, e)
			c.sessions.endedSync, e = m.Int64Counter(schema.SessionsEnded, unit, metric.WithDescription(schema.DescSessionsEnded))
			err = errors.Join(err, e)
		}
	}
	c.tokens, e = newCounter[labelPair](m, cfg, counterSpec{schema.TokensUsed, schema.UnitTokens, schema.DescTokensUsed, false,
		[]field{{schema.KeyOrchestratorID, "orchestratorID"}, {schema.KeyModel, "model"}}, stats.CellTokens})
	keep(c.tokens, e)
	c.tools, e = newCounter[labelValues](m, cfg, counterSpec{schema.ToolInvocations, schema.UnitInvocations, schema.DescToolInvocations, false,
		[]field{{schema.KeyOrchestratorID, "orchestratorID"}, {schema.KeyToolName, "toolName"}, {schema.KeyStatus, "status"}}, stats.CellTool})
	keep(c.tools, e)
	c.delegations, e = newCounter[labelValues](m, cfg, counterSpec{schema.Delegations, schema.UnitDelegations, schema.DescDelegations, false,
		[]field{{schema.KeyFromOrchestrator, "fromOrchestrator"}, {schema.KeyToOrchestrator, "toOrchestrator"}, {schema.KeyStatus, "status"}}, stats.CellDelegation})
	keep(c.delegations, e)
	c.errorsCtr, e = newCounter[labelPair](m, cfg, counterSpec{schema.Errors, schema.UnitErrors, schema.DescErrors, false,
		[]field{{schema.KeyOrchestratorID, "orchestratorID"}, {schema.KeyErrorType, "errorType"}}, stats.CellError})
	keep(c.errorsCtr, e)
	return err
}

// registerAtomicCounters creates, in atomic mode, the observable counters
// on m and registers the callback that reports them.
func (c *Collector) registerAtomicCounters(m metric.Meter, recording bool) (metric.Registration, error) {
	if len(c.counterList) == 0 || !c.counterList[0].isAtomic() {
		return nil, nil
	}
	var err error
	obs := make([]metric.Int64Observable, len(c.counterList))
	observables := make([]metric.Observable, len(c.counterList))
	for i, k := range c.counterList {
		unit, desc := metric.WithUnit(k.specOf().unit), metric.WithDescription(k.specOf().desc)
		var e error
		if k.specOf().upDown {
			obs[i], e = m.Int64ObservableUpDownCounter(k.specOf().name, unit, desc)
		} else {
			obs[i], e = m.Int64ObservableCounter(k.specOf().name, unit, desc)
		}
		err = errors.Join(err, e)
		observables[i] = obs[i]
	}
	var started, ended metric.Int64Observable
	sessions := c.sessions
	if sessions != nil && sessions.startsEnds {
		unit := metric.WithUnit(schema.UnitSessions)
		var e error
		started, e = m.Int64ObservableCounter(schema.SessionsStarted, unit, metric.WithDescription(schema.DescSessionsStarted))
		err = errors.Join(err, e)
		ended, e = m.Int64ObservableCounter(schema.SessionsEnded, unit, metric.WithDescription(schema.DescSessionsEnded))
		err = errors.Join(err, e)
		observables = append(observables, started, ended)
	}
	if err != nil {
		return nil, err
	}
	counters := c.counterList
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i, k := range counters {
			k.observe(o, obs[i], recording)
		}
		if started != nil {
			sessions.observeStartsEnds(o, started, ended, recording)
		}
		return nil
	}, observables...)
}

func newCounter[K seriesKey](m metric.Meter, cfg config, s counterSpec) (*counter[K], error) {
	k := &counter[K]{atomic: cfg.atomicCounters, spec: s}
	unit, desc := metric.WithUnit(s.unit), metric.WithDescription(s.desc)
	var err error
	switch {
	case k.atomic:
	case s.upDown:
		k.sync, err = m.Int64UpDownCounter(s.name, unit, desc)
	default:
		k.sync, err = m.Int64Counter(s.name, unit, desc)
	}
	if err != nil {
		return nil, err
	}

	build := newSyncEntry
	if k.atomic {
		build = newAtomicEntry
	}
	k.series = newLimitedSeries[K](cfg.cardinalityLimit, build, s.fields...)
	k.series.overflow.overflow = true
	return k, nil
}

func newSyncEntry(set attribute.Set) *counterEntry {
	return &counterEntry{opts: []metric.AddOption{metric.WithAttributeSet(set)}}
}

// newAtomicEntry builds an atomic-mode entry. Its overflow series is
// observed with the SDK's own overflow set: the callback reports it last,
// after every kept series, so the SDK never folds a kept series into it.
func newAtomicEntry(set attribute.Set) *counterEntry {
	e := &counterEntry{obs: []metric.ObserveOption{metric.WithAttributeSet(set)}}
	e.obsRec = e.obs
	if set.Equivalent() == recordOverflowSet.Equivalent() {
		e.obs = []metric.ObserveOption{metric.WithAttributeSet(exportOverflowSet)}
	}
	return e
}

func (e *counterEntry) isDead() bool { return e.dead.Load() }

// linkStats makes the statistics read k's series from their live values:
// each new series registers a cell (stats.Cell) before it is cached.
func (k *counter[K]) linkStats(st *stats.Store) {
	kind := k.spec.cell
	if kind == stats.CellSessions && k.atomic && !k.startsEnds {
		kind = stats.CellSessionsNet // only the net count is kept
	}
	k.series.link = func(vals labelValues, e *counterEntry) func() {
		spec := stats.CellSpec{Kind: kind, ID: vals[0], V: &e.n, Dead: &e.dead}
		switch kind {
		case stats.CellSessions:
			spec.V, spec.V2 = &e.started, &e.ended
		case stats.CellDelegation:
			spec.ID2 = vals[1]
		default:
			spec.A, spec.B = vals[1], vals[2]
		}
		cell := st.Register(spec)
		return func() { st.Unregister(cell) }
	}
}
