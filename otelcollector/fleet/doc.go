// Package fleet answers otelcollector.AggregatedStats for one orchestrator
// across every daemon, over any window (a budget day, a month), from a
// Prometheus-compatible query API: Prometheus, VictoriaMetrics, or a store
// with the same API (Thanos, Mimir, Cortex).
//
//	q, err := fleet.New("http://127.0.0.1:9090", fleet.WithSelector(`job="orchestrator-daemon"`))
//	s, err := q.AggregatedStats(ctx, "orch-1", otelcollector.Last(24*time.Hour))
//	ids, err := q.Orchestrators(ctx, otelcollector.Last(time.Hour))
//
// *Client and *otelcollector.Collector both satisfy otelcollector.StatsSource.
//
// # Semantics
//
// A count is, per series, its value at End minus its value at Start,
// summed over series (over daemons): a series first seen inside the window
// counts from zero, and a counter that goes down (a daemon restart) counts
// from zero after the drop. Nothing is extrapolated: increase() and rate()
// are not used, because their extrapolation is never an exact count and
// differs between engines. The counts are exact integers to the scrape
// resolution. See AggregatedStats for every field and docs/fleet.md for the
// PromQL behind each.
//
// # Cost
//
// A call sends a bounded number of queries. First, concurrently: the
// window's raw sample counts per family and daemon, which also evaluate the
// sessions gauge and the native histogram at End, and the optimistic read,
// one raw read of the baseline's range and the window per group of families
// that differ only in their metric name, its answer cut at 4 MiB (and the
// native histogram at Start, one small query). A window whose raw samples,
// with the baseline's range, number at most 100,000 is then done: one round
// trip. Otherwise the optimistic read is abandoned (or it was refused: an
// engine's limit on the samples one query loads is not an error of the
// call; with WithMaxConcurrentQueries below 3 it is not sent) and the
// baseline follows; then, for a window of at most 250,000
// raw samples, raw reads of at most 100,000 samples each; for a larger
// window, three range queries and up to two instant queries per family for
// its grid of at most 16 intervals, and, for each interval holding a counter
// reset, a raw read of the restarted daemons (instances) in it (or a finer
// grid first, when the interval holds many samples). Orchestrators asks for
// the values of the instance label, then sends one query per group of
// daemons (at most WithMaxConcurrentQueries). The engine reads the raw
// samples of the window; the client holds a bounded number of points at a
// time, so its memory does not grow with the window's length.
//
// # Retention
//
// Where the engine's retention cuts a window, the result is Truncated and
// starts where the data begins. The client reads the retention from the
// engine (Prometheus, VictoriaMetrics) on the first call and every 5
// minutes, with two requests; an engine that does not tell it leaves
// Truncated false. See AggregatedStats.
//
// # Errors
//
// Bad input wraps otelcollector.ErrInvalidLabel or ErrInvalidTimeRange and
// sends nothing. An engine that is down, slow or answers garbage gives an
// error wrapping ErrEngine, naming the engine and the query, by the ctx's
// deadline (each query is also bounded by WithQueryTimeout). Warnings and
// infos returned with a successful answer go to WithWarningHandler (by
// default, the log).
//
// # Concurrency
//
// A Client's methods are safe for concurrent use.
package fleet
