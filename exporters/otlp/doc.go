// Package otlp pushes the orchestrator metrics over OTLP to an
// OpenTelemetry Collector or any OTLP backend, over gRPC (the default) or
// HTTP.
//
// New returns an Exporter whose reader, the SDK's PeriodicReader around the
// OTel OTLP exporter, joins the Collector's MeterProvider:
//
//	exp, err := otlp.New(ctx, otlp.WithEndpoint("127.0.0.1:4317"), otlp.WithInsecure())
//	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp))
//	defer c.Close(ctx) // pushes what is left, then closes the connection
//
// It can run beside the Prometheus exporter (pass both to WithExporter).
// Only programs that import this package link gRPC.
//
// # Batching and delivery
//
// Records are aggregated in memory and pushed every interval (WithInterval,
// default 10 s); Flush and Close on the Collector push at once. A Record
// call never waits for the network: the reader exports from its own
// goroutine. With the default cumulative temporality each export carries
// the totals since start, so when the receiver is down the next export that
// arrives makes good every one that failed. With WithTemporality(Delta)
// each export carries only its interval, and what a failed export carried
// is lost.
//
// # Failures
//
// New does not contact the receiver, so a daemon starts while its backend
// is down. A failed export is
//   - counted: FailedExports, and the counter
//     orchestrator_collector_otlp_failed_exports_total (no labels) pushed with
//     the data, so the count of an outage arrives when it ends;
//   - logged to the WithLogger logger at most once per minute per kind of
//     failure (a gRPC code such as "unavailable" or "unauthenticated",
//     "http_401", "http_503", "partial_success", "unreachable", "timeout",
//     ...; told apart by the errors' types, gRPC status codes and the
//     status the HTTP transport saw, never by their text), each line saying how many
//     failures it stands for; header values are never logged;
//   - returned by Flush and Close on the Collector (and by Shutdown), with
//     the exporter named: "exporters/otlp: flush: ...",
//     "exporters/otlp: shutdown: ...".
//
// The logger is the only place the exporter reports errors that have no
// caller: it never writes to the process-global otel.Handle, which prints
// to stderr by default. (The SDK's PeriodicReader would pass every failed
// periodic export there, and the one a Close interrupts; this exporter runs
// the periodic loop itself so that it does not.) An export that Close
// interrupts is logged at Debug level and not counted: the final export
// carries its data. To have the failures on otel.Handle too, pass a logger
// whose handler forwards them.
//
// # Environment variables
//
// The standard variables apply to whatever no option sets, as read by the
// OTel exporters (otlpmetricgrpc, otlpmetrichttp) and the SDK:
// OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT, _INSECURE, _HEADERS, _TIMEOUT,
// _COMPRESSION, _CERTIFICATE, _CLIENT_CERTIFICATE, _CLIENT_KEY,
// OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
// OTEL_METRIC_EXPORT_INTERVAL and OTEL_METRIC_EXPORT_TIMEOUT. This package
// itself reads OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, then
// OTEL_EXPORTER_OTLP_PROTOCOL ("grpc" or "http/protobuf") when WithProtocol
// is not given, and OTEL_METRIC_EXPORT_INTERVAL (it runs the periodic loop
// itself). For OTLP/HTTP it builds the HTTP client itself, to see the
// status of each response, and so reads the variables the OTel HTTP
// exporter would read for it: _TIMEOUT, _CERTIFICATE, _CLIENT_CERTIFICATE
// and _CLIENT_KEY (the METRICS_ form first); a certificate file named there
// that cannot be loaded makes New fail. An option always wins over its
// variable.
//
// # Concurrency
//
// All methods of Exporter are safe for concurrent use.
package otlp
