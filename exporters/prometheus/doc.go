// Package prometheus serves the orchestrator metrics to Prometheus scrapes.
//
// New returns an Exporter that supplies an OpenTelemetry SDK reader, the
// OTel Prometheus exporter registered on a private client_golang registry,
// and serves it as an http.Handler; hand it to otelcollector.WithExporter.
// A scrape shows exactly the legacy names and labels: no otel_scope_*
// labels and no target_info unless asked for (WithScopeInfo,
// WithTargetInfo).
//
//	exp, err := prometheus.New(prometheus.WithServer(""))   // 127.0.0.1:9464/metrics
//	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp))
//
// # Endpoint safety
//
// The endpoint runs inside someone else's daemon, so it is closed by
// default and bounded:
//
//   - WithServer listens on loopback (DefaultAddress) unless given another
//     address; any other interface is the caller's explicit choice.
//   - The server allows 5 s to send the request headers, 10 s for the
//     request, 30 s for the response, 60 s idle, and 16 KiB of headers
//     (431 beyond): a slow or oversized client holds a connection for 5 s
//     at most, and other scrapes are served meanwhile.
//   - Handler, and so the server, answers only GET and HEAD (405 Method Not
//     Allowed with "Allow: GET, HEAD" otherwise); the server serves only its
//     path (404 elsewhere).
//   - WithBearerToken or WithBasicAuth require a credential, compared in
//     constant time (401 with WWW-Authenticate otherwise, checked before
//     the method so that an anonymous client learns nothing else).
//   - WithTLS serves HTTPS, TLS 1.2 or later, from PEM certificate and key
//     files. Use it with WithBasicAuth or WithBearerToken on any interface
//     but loopback.
//
// Label values with quotes, backslashes, newlines or any UTF-8 are escaped
// in the exposition and round-trip through the Prometheus text parser.
//
// # Shutdown order
//
// Stop serving first, then Close: stop routing scrapes to Handler (or stop
// the application's own server), then call the Collector's Close, which
// shuts the reader and the Exporter down. A scrape that still arrives after
// Close gets 503 Service Unavailable, never a 200 with an empty body, so
// Prometheus marks the target down (up == 0) rather than reading a healthy
// target whose every series went stale. The built-in server (WithServer)
// is stopped by Close itself.
//
// # Sharing a registry
//
// WithRegistry and WithRegisterer serve the library's series beside the
// application's. The exporter claims the library's series names
// (orchestrator_*) on the registry, so a name collision fails loudly: New
// returns ErrRegistryConflict when the registry already holds such a name
// (a second exporter, or an application metric), and the application's
// own Register of such a name returns an error. Two Collectors share one
// registry by each registering through
// prometheus.WrapRegistererWith(prometheus.Labels{...}, reg) with a label
// of its own. Shutdown releases the names for a successor.
//
// # Errors
//
// New returns an error wrapping ErrInvalidOption for an option it cannot
// honour (WithPath and WithTLS without WithServer included) and
// ErrRegistryConflict for a name collision, before anything listens; a
// failed New leaves nothing registered or bound. Shutdown errors start
// with "exporters/prometheus: shutdown:" and wrap their cause. Errors of
// the built-in server and of scrapes go to the WithLogger logger; the OTel
// Prometheus exporter inside reports collection problems through
// otel.Handle.
//
// # Concurrency
//
// An Exporter's methods are safe for concurrent use; Shutdown is
// idempotent.
package prometheus
