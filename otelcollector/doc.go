// Package otelcollector records the metrics of an AI-agent orchestrator:
// sessions, LLM tokens, message latency, tool invocations, federation
// delegations, node load, errors and budget utilization.
//
// Each metric is an OpenTelemetry instrument on a MeterProvider that the
// Collector owns; the SDK aggregates in memory and the readers given with
// WithExporter or WithReader export it. The exporters live in separate
// packages (exporters/prometheus for a pull endpoint, exporters/otlp for
// push), so a program links only those it uses:
//
//	exp, err := prometheus.New(prometheus.WithServer("127.0.0.1:9464"))
//	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp))
//	defer c.Close(ctx)
//	err = c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", 1200)
//
// # Metrics emitted
//
// Prometheus names as scraped through exporters/prometheus (the OTel name
// and unit are in internal/schema):
//
//	orchestrator_sessions_active                 gauge (UpDownCounter)  orchestrator_id, session_type
//	orchestrator_tokens_used_total               counter                orchestrator_id, model
//	orchestrator_message_latency_seconds         histogram, seconds     orchestrator_id
//	orchestrator_tool_invocations_total          counter                orchestrator_id, tool_name, status
//	orchestrator_federation_delegations_total    counter                from_orchestrator, to_orchestrator, status
//	orchestrator_node_load                       gauge, 0..1            node_id
//	orchestrator_errors_total                    counter                orchestrator_id, error_type
//	orchestrator_budget_utilization_percent      gauge, percent         orchestrator_id, period
//	orchestrator_collector_rejected_total        counter                reason
//	orchestrator_collector_overflow_total        counter                metric (only once a limit is reached)
//
// Optional, beside those and never instead: WithSessionCounters adds
// orchestrator_sessions_started_total and orchestrator_sessions_ended_total
// (counters, orchestrator_id, session_type); WithGenAIMetrics adds the
// OpenTelemetry GenAI client metrics gen_ai.client.token.usage and
// gen_ai.client.operation.duration, fed by RecordTokenUsageDetailed;
// WithRuntimeMetrics adds the Go runtime metrics of
// go.opentelemetry.io/contrib/instrumentation/runtime (go_memory_used_bytes,
// go_goroutines, ...). When the ctx of a latency record carries a
// sampled span, the latency bucket carries its trace id as an exemplar.
// The subpackage otelcollector/httpmetrics records HTTP requests as messages.
//
// # Errors
//
// A record with bad input returns an error wrapping ErrInvalidLabel,
// ErrInvalidValue or ErrUnknownStatus, naming the offending parameter; after
// Close every record returns ErrClosed. A rejected record changes nothing
// but orchestrator_collector_rejected_total{reason}, and never panics. Label
// values must be non-empty, valid UTF-8 and at most MaxLabelBytes long. A
// gauge update that would start a series past the cardinality limit returns
// ErrCardinalityLimit (see Cardinality). A token record that would take its
// series past the largest int64 is rejected with ErrInvalidValue
// (reason value_overflow). A method called on a nil *Collector or a nil
// handle returns ErrNilHandle.
//
// Errors that have no caller to return to (a record made by WithMetrics or
// httpmetrics, a failed statistics sample) are logged at Warn level through
// the logger of WithLogger, at most one line per source every 10 s with the
// number suppressed in between; WithErrorHandler sends them elsewhere, for
// example to the process-global otel.Handle, which the Collector otherwise
// never calls.
//
// # Cardinality
//
// A label explosion (a bug or a hostile peer sending millions of distinct
// tool names, models or orchestrator IDs) cannot grow the process without
// bound. With a cardinality limit n (WithCardinalityLimit, default
// DefaultCardinalityLimit = 2000):
//
//   - each counter and the latency histogram keep n-1 label sets, the first
//     ones seen, exactly as the SDK does; every record with another label
//     set is added to one overflow series, which carries only the label
//     otel_metric_overflow="true" in Prometheus (otel.metric.overflow=true in
//     OTLP), so totals stay exact while the detail is lost:
//
//     orchestrator_tool_invocations_total{otel_metric_overflow="true"} 998001
//
//   - each gauge keeps at most n-1 series; an update that would start
//     another is rejected with ErrCardinalityLimit (a merged last value means
//     nothing). Existing series keep updating, and ForgetNode or ForgetBudget
//     frees a slot;
//
//   - both are counted, per metric (the OTel instrument name), in
//     orchestrator_collector_overflow_total{metric} and by Overflowed. Every
//     metric's series is exported from the start at 0, like the rejection
//     counter, so increase() sees the first overflow across scrape gaps and
//     restarts. Alert on it:
//     increase(orchestrator_collector_overflow_total[15m]) > 0.
//
// Binding a handle takes no slot; the first record does. A departed
// orchestrator's slots are freed by ForgetOrchestrator (see Departed
// orchestrators).
//
// Memory stays bounded: with the default limit, 1,000,000 distinct values
// of one label leave the heap about 5 MiB above a fresh Collector's for a
// label that feeds one counter, 13 to 28 MiB for orchestrator IDs (a counter
// and the histogram), and the values past the limit add nothing
// (docs/reliability.md). Handles bound past the limit record
// into the overflow series too. AggregatedStats see only the kept series:
// records in the overflow series belong to no orchestrator.
//
// # Departed orchestrators
//
// ForgetOrchestrator stops exporting every series that carries an
// orchestrator ID (all its counters, the latency histogram, its budget
// series, delegations in both directions), frees its cardinality slots and
// drops its AggregatedStats history; a later record starts a new series
// from 0. The SDK cannot delete a series of a synchronous instrument, so
// the instruments record into a MeterProvider of the Collector's own whose
// readers have delta temporality, and a store merges the deltas into the
// cumulative series the exporters read (as an sdkmetric.Producer, through
// ProducerExporter) and forget deletes from. The export is the same as the
// SDK's own, byte for byte (TestStoreIdenticalExport); readers given with
// WithReader read the SDK directly and do not forget. 20,000 orchestrators
// through a limit of 100 leave under 1 MiB of heap (TestForgetOrchestratorChurn).
//
// # Performance
//
// Every record method allocates nothing once a tuple has been seen, and
// nothing past the cardinality limit either (the GenAI metrics included):
// the Collector caches the tuple's attribute options in a map read without a
// lock, bounded by the cardinality limit, and validates labels only when a
// tuple is new. For the hottest paths, bind the labels once with
// Collector.Orchestrator and then Orchestrator.Model, Tool, SessionType or
// ErrorType; the handles skip the lookup. By default each counter record is
// one SDK measurement per reader of the recording MeterProvider: the
// Collector's store (when an exporter reads it) and each WithReader reader;
// the statistics behind AggregatedStats add no SDK measurement (they read
// the series' running totals, one atomic add, and a per-orchestrator
// latency histogram). WithAtomicCounters makes counter records a single
// atomic add, read by observable instruments at collection, with the same
// cumulative export. docs/benchmarks.md has the measurements.
//
// # Concurrency
//
// All methods of Collector, Timer and the handles are safe for concurrent
// use. A record that returns nil is never lost, even when Close runs at the
// same time: Close first makes new records return ErrClosed, then waits for
// the records already under way, and only then lets every reader collect
// and export one last time. Waiting costs each record two atomic additions
// on a counter sharded by goroutine stack, a few nanoseconds.
//
// # Lifecycle
//
//   - New with a context that is already done fails and starts nothing. The
//     Collector owns the exporters and readers it is given: a New that fails
//     shuts them down, and one already used by another Collector is
//     rejected with ErrInvalidOption, as is a typed-nil exporter or reader.
//   - Close is idempotent: later calls return the first call's result.
//     Without a deadline on ctx it gives up after 30 s; with a ctx that is
//     already done (a signal context in a deferred Close) the final export
//     gets a deadline of its own of 5 s. If the deadline passes while a
//     reader's final export or an exporter's Shutdown hangs, Close still
//     returns, with an error that names it and wraps ctx.Err(); an exporter
//     that honours ctx (those in exporters/ do) then leaves no goroutine
//     behind. Stop serving a mounted scrape handler before Close.
//   - Flush is bounded the same way: at ctx's deadline (30 s without one)
//     it returns an error wrapping ctx.Err(), even if an exporter hangs.
//   - After Close, every record, bind, Flush and AggregatedStats returns
//     ErrClosed; ForgetNode and ForgetBudget are harmless.
//   - WithMetrics records the latency and a function_execution_error when fn
//     panics, then panics again with fn's value.
//   - Timer.Stop only reads the clock: stopping twice returns two durations
//     from the same start.
package otelcollector
