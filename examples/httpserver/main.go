// Command httpserver is an HTTP API of an orchestrator whose handlers are
// wrapped in otelcollector/httpmetrics: every request to /v1/messages is
// recorded as a message (latency, and an error on a 5xx) for the
// orchestrator named in its X-Orchestrator-ID header. The metrics are served
// on the same server at /metrics.
//
//	go run ./examples/httpserver
//	curl -s -X POST -H 'X-Orchestrator-ID: orch-1' http://127.0.0.1:8080/v1/messages
//	curl -s http://127.0.0.1:8080/metrics
//
// See README.md beside this file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/httpmetrics"
)

// idHeader names the orchestrator a request is for.
const idHeader = "X-Orchestrator-ID"

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address of the API and /metrics")
	duration := flag.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("serving the API and /metrics on http://%s (Ctrl-C to stop)\n", ln.Addr())
	if err := run(ctx, ln); err != nil {
		log.Fatal(err)
	}
}

// run serves on ln until ctx is done, then shuts the server down and
// closes the Collector, which flushes.
func run(ctx context.Context, ln net.Listener) error {
	exp, err := prometheus.New() // no server of its own: mounted below
	if err != nil {
		return err
	}
	c, err := otelcollector.New(context.Background(),
		otelcollector.WithExporter(exp),
		otelcollector.WithRuntimeMetrics(),
	)
	if err != nil {
		return errors.Join(err, exp.Shutdown(context.Background()))
	}
	mw, err := httpmetrics.New(c, func(r *http.Request) string { return r.Header.Get(idHeader) })
	if err != nil {
		return errors.Join(err, c.Close(context.Background()))
	}

	mux := http.NewServeMux()
	mux.Handle("POST /v1/messages", mw.Handler(messages(c)))
	mux.Handle("GET /metrics", exp.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = errors.Join(err, srv.Shutdown(shutCtx))
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, c.Close(shutCtx))
}

// messages answers a message: it pretends to call a model (a short random
// wait), records the tokens it spent, and fails with 503 now and then as an
// overloaded model would. The middleware records the latency and the 503s.
func messages(c *otelcollector.Collector) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(idHeader)
		if id == "" {
			http.Error(w, idHeader+" header required", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(time.Duration(5+rand.IntN(50)) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		if rand.IntN(20) == 0 {
			http.Error(w, "model overloaded", http.StatusServiceUnavailable)
			return
		}
		in, out := int64(200+rand.IntN(2000)), int64(50+rand.IntN(500))
		if err := c.RecordTokenUsage(r.Context(), id, "claude-sonnet", in+out); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = fmt.Fprintf(w, `{"orchestrator_id":%q,"tokens":%d}`+"\n", id, in+out)
	})
}
