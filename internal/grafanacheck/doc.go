// Package grafanacheck checks docs/grafana/orchestrator-overview.json
// against Grafana's own published types, those of
// github.com/grafana/grafana-foundation-sdk/go v0.0.22. It is test support
// only, a module of its own so that the library's go.mod does not require
// the SDK; run it with
//
//	cd internal/grafanacheck && go test ./...
//
// (make test does). The test decodes the dashboard strictly (an unknown or
// misspelt field anywhere, in a panel's options or a query too, is an
// error), runs the SDK's Validate, and checks that every panel type is one
// the SDK knows, every unit is one of its units constants, and every
// variable a query or title uses is defined by the dashboard or built into
// Grafana.
//
// # Hand-written JSON, checked, rather than generated
//
// The dashboard stays hand-written JSON and this module checks it; it is
// not generated from Go with the SDK's builders. The JSON is what users
// import, and a reviewer reads its diff; docs/e2e_test.go runs every query
// in it against a real Prometheus straight from the file. Generating it
// would put a pre-1.0 SDK (v0.0.x, whose builders change between releases)
// between the queries and the file, add a generator and a check that the
// committed output is current, and still need this test to catch fields
// Grafana ignores. The strict decode gives the same guarantee a generator
// would (every field is one Grafana's schema has) without either.
package grafanacheck
