package httpmetrics_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/httpmetrics"
)

// Example wraps a handler so that each request records a message latency,
// and a 5xx response an error, for the orchestrator named in a header.
func Example() {
	ctx := context.Background()
	c, err := otelcollector.New(ctx) // in a program: otelcollector.WithExporter(exp)
	if err != nil {
		panic(err)
	}
	defer c.Close(ctx)

	m, err := httpmetrics.New(c, func(r *http.Request) string { return r.Header.Get("X-Orchestrator-ID") })
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/messages", m.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "model overloaded", http.StatusServiceUnavailable)
	})))

	req := httptest.NewRequest(http.MethodPost, "/v1/messages", nil)
	req.Header.Set("X-Orchestrator-ID", "orch-1")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)

	st, err := c.AggregatedStats(ctx, "orch-1", otelcollector.Last(time.Hour))
	fmt.Println(rec.Code, st.Messages, st.ErrorsByType, err)
	// Output: 503 1 map[http_503:1] <nil>
}
