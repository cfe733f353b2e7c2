// Package schema holds the one definition of the metrics this module emits:
// instrument names, units, descriptions, attribute keys and default buckets.
//
// The OTel names and units are chosen so that the OTel Prometheus exporter's
// default translation (underscore escaping with suffixes) yields exactly the
// legacy Prometheus names that existing dashboards query; the comment on each
// name states the Prometheus name it produces.
package schema

// MeterName is the instrumentation scope of every instrument. A single Meter
// is used on purpose: with scope info switched off, the same name from two
// Meters would make a Prometheus scrape fail.
const MeterName = "github.com/wundr-io/orchestrator-otel"

// Instrument names (OTel style) and the Prometheus names they translate to.
const (
	SessionsActive    = "orchestrator.sessions.active"        // orchestrator_sessions_active
	TokensUsed        = "orchestrator.tokens.used"            // orchestrator_tokens_used_total
	MessageLatency    = "orchestrator.message.latency"        // orchestrator_message_latency_seconds
	ToolInvocations   = "orchestrator.tool.invocations"       // orchestrator_tool_invocations_total
	Delegations       = "orchestrator.federation.delegations" // orchestrator_federation_delegations_total
	NodeLoad          = "orchestrator.node.load"              // orchestrator_node_load
	Errors            = "orchestrator.errors"                 // orchestrator_errors_total
	BudgetUtilization = "orchestrator.budget.utilization"     // orchestrator_budget_utilization_percent
	CollectorRejected = "orchestrator.collector.rejected"     // orchestrator_collector_rejected_total
	CollectorOverflow = "orchestrator.collector.overflow"     // orchestrator_collector_overflow_total
)

// The opt-in session counters (otelcollector.WithSessionCounters): every
// start and end of a session, labelled like SessionsActive. Counters of unit
// UnitSessions, so that the translation adds only _total.
const (
	SessionsStarted     = "orchestrator.sessions.started" // orchestrator_sessions_started_total
	SessionsEnded       = "orchestrator.sessions.ended"   // orchestrator_sessions_ended_total
	DescSessionsStarted = "Agent sessions started, by orchestrator and session type."
	DescSessionsEnded   = "Agent sessions ended, by orchestrator and session type."
)

// OTLPFailedExports counts the periodic exports of exporters/otlp that
// failed. That exporter adds it to its own pushes (a Producer on its reader),
// scope OTLPScopeName; the Prometheus name is
// orchestrator_collector_otlp_failed_exports_total.
const (
	OTLPFailedExports     = "orchestrator.collector.otlp.failed_exports"
	OTLPScopeName         = MeterName + "/exporters/otlp"
	UnitExports           = "{export}"
	DescOTLPFailedExports = "OTLP metric exports that failed (the data of a failed export arrives with the next successful one under cumulative temporality)."
)

// Units. Curly-brace annotations are dropped by the Prometheus translation,
// "s" adds _seconds and "%" adds _percent. Node load has no unit on purpose:
// unit "1" would add a _ratio suffix that breaks the legacy name.
const (
	UnitSessions    = "{session}"
	UnitTokens      = "{token}"
	UnitSeconds     = "s"
	UnitInvocations = "{invocation}"
	UnitDelegations = "{delegation}"
	UnitErrors      = "{error}"
	UnitPercent     = "%"
	UnitRecords     = "{record}"
)

// Descriptions become the Prometheus HELP text.
const (
	DescSessionsActive    = "Number of agent sessions currently active, by orchestrator and session type."
	DescTokensUsed        = "LLM tokens consumed, by orchestrator and model."
	DescMessageLatency    = "Time taken to answer a message, in seconds."
	DescToolInvocations   = "Tool invocations, by orchestrator, tool and outcome status."
	DescDelegations       = "Work delegated from one orchestrator to another, by outcome status."
	DescNodeLoad          = "Last reported load of a node, from 0 (idle) to 1 (saturated)."
	DescErrors            = "Errors, by orchestrator and error type."
	DescBudgetUtilization = "Last reported budget utilization of an orchestrator for a budget period, in percent."
	DescCollectorRejected = "Records the collector rejected as invalid, by reason; a rejected record changes no other series."
	DescCollectorOverflow = "Records that got no series of their own because their metric (the OTel instrument name) had reached the cardinality limit: counter and histogram records went to the series labelled otel_metric_overflow=\"true\", gauge updates were rejected."
)

// Attribute keys; these are the Prometheus label names.
const (
	KeyOrchestratorID   = "orchestrator_id"
	KeySessionType      = "session_type"
	KeyModel            = "model"
	KeyToolName         = "tool_name"
	KeyStatus           = "status"
	KeyFromOrchestrator = "from_orchestrator"
	KeyToOrchestrator   = "to_orchestrator"
	KeyNodeID           = "node_id"
	KeyErrorType        = "error_type"
	KeyPeriod           = "period"
	KeyReason           = "reason"
	KeyMetric           = "metric"
)

// DefaultLatencyBuckets are the explicit histogram bounds, in seconds, of
// orchestrator_message_latency_seconds. OTel's own defaults (0..10000) are
// meant for milliseconds and would put every message in the first buckets.
func DefaultLatencyBuckets() []float64 {
	return []float64{0.1, 0.5, 1, 2, 5, 10}
}

// GenAI semantic conventions (otelcollector.WithGenAIMetrics). The instrument
// names, units and attribute keys come from go.opentelemetry.io/otel/semconv
// v1.41.0, the newest semconv package of otel v1.47.0 that still holds the
// GenAI namespace; it sets no bucket advice, so the bounds the conventions
// recommend are given here. In Prometheus the metrics scrape as
// gen_ai_client_token_usage and gen_ai_client_operation_duration_seconds.

// The GenAI instruments' names, as orchestrator_collector_overflow_total's
// metric label gives them.
const (
	GenAITokenUsage        = "gen_ai.client.token.usage"
	GenAIOperationDuration = "gen_ai.client.operation.duration"
)

// GenAITokenUsageBuckets are the bounds, in tokens, that the conventions
// recommend for gen_ai.client.token.usage.
func GenAITokenUsageBuckets() []float64 {
	return []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
}

// GenAIOperationDurationBuckets are the bounds, in seconds, that the
// conventions recommend for gen_ai.client.operation.duration.
func GenAIOperationDurationBuckets() []float64 {
	return []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
}
