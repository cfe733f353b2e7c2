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
//
// # Errors
//
// A record with bad input returns an error wrapping ErrInvalidLabel,
// ErrInvalidValue or ErrUnknownStatus, naming the offending parameter; after
// Close every record returns ErrClosed. A rejected record changes nothing
// but orchestrator_collector_rejected_total{reason}, and never panics. Label
// values must be non-empty, valid UTF-8 and at most MaxLabelBytes long.
//
// # Cardinality
//
// Each instrument keeps at most WithCardinalityLimit distinct label sets
// (default DefaultCardinalityLimit); further ones are summed into the SDK's
// overflow series, labelled otel_metric_overflow="true".
//
// # Concurrency
//
// All methods of Collector and Timer are safe for concurrent use.
package otelcollector
