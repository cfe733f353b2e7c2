package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
)

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestNewRejectsBadServerOptions checks the options that only mean
// something with WithServer, and paths the ServeMux cannot take: New
// returns ErrInvalidOption, never panics, and leaves the address free. On
// the old code WithPath("/a b") panicked in http.ServeMux.Handle after
// net.Listen had bound the port, and WithPath without WithServer was
// silently ignored.
func TestNewRejectsBadServerOptions(t *testing.T) {
	testCases := []struct {
		name string
		opts []prometheus.Option
		want string
	}{
		{"path with a space", []prometheus.Option{prometheus.WithPath("/a b")}, "path"},
		{"path with a tab", []prometheus.Option{prometheus.WithPath("/a\tb")}, "path"},
		{"path with a wildcard", []prometheus.Option{prometheus.WithPath("/{x}")}, "path"},
		{"path with a method", []prometheus.Option{prometheus.WithPath("GET /metrics")}, "path"},
		{"path not clean", []prometheus.Option{prometheus.WithPath("/a//b")}, "path"},
		{"path with dot segment", []prometheus.Option{prometheus.WithPath("/a/../b")}, "path"},
		{"path with query", []prometheus.Option{prometheus.WithPath("/metrics?x=1")}, "path"},
		{"path with percent", []prometheus.Option{prometheus.WithPath("/a%20b")}, "path"},
		{"relative path", []prometheus.Option{prometheus.WithPath("metrics")}, "path"},
		{"empty path", []prometheus.Option{prometheus.WithPath("")}, "path"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			opts := append([]prometheus.Option{prometheus.WithServer(addr)}, tc.opts...)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("New panicked: %v", r)
					}
				}()
				exp, err := prometheus.New(opts...)
				if err == nil {
					_ = exp.Shutdown(context.Background())
					t.Fatal("New succeeded")
				}
				if !errors.Is(err, prometheus.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %q: want ErrInvalidOption naming %q", err, tc.want)
				}
			}()
			// Nothing may still listen on the address.
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("address still bound after a failed New: %v", err)
			}
			_ = ln.Close()
		})
	}

	t.Run("server options without WithServer", func(t *testing.T) {
		certFile, keyFile, _ := writeSelfSigned(t)
		for _, opt := range []struct {
			name string
			opt  prometheus.Option
		}{
			{"WithPath", prometheus.WithPath("/custom")},
			{"WithTLS", prometheus.WithTLS(certFile, keyFile)},
		} {
			exp, err := prometheus.New(opt.opt)
			if err == nil {
				_ = exp.Shutdown(context.Background())
				t.Errorf("%s without WithServer: New succeeded", opt.name)
				continue
			}
			if !errors.Is(err, prometheus.ErrInvalidOption) || !strings.Contains(err.Error(), "needs WithServer") {
				t.Errorf("%s without WithServer: %q, want ErrInvalidOption saying it needs WithServer", opt.name, err)
			}
		}
	})
}

// TestHandlerAfterCloseIs503 mounts Handler in the application's own
// server and scrapes it over HTTP after the Collector is closed. On the old
// code it answered 200 with an empty body, which Prometheus takes for a
// healthy target without series.
func TestHandlerAfterCloseIs503(t *testing.T) {
	c, exp := newCollector(t)
	recordKnownValues(t, c)
	srv := httptest.NewServer(exp.Handler())
	defer srv.Close()

	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(); code != http.StatusOK || !strings.Contains(body, "orchestrator_tokens_used_total") {
		t.Fatalf("before Close: %d %q", code, body)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, body := get()
	if code != http.StatusServiceUnavailable {
		t.Fatalf("after Close: %d %q, want 503", code, body)
	}
	if strings.Contains(body, "orchestrator_") {
		t.Fatalf("after Close the body has series: %q", body)
	}
}

// TestShutdownErrorNamesExporter holds a request half sent while Shutdown
// runs with a context that is already done: the error must name the
// exporter and wrap the cause.
func TestShutdownErrorNamesExporter(t *testing.T) {
	exp, err := prometheus.New(prometheus.WithServer("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	slow, err := net.Dial("tcp", exp.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_ = slow.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(slow, "GET /metrics HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	// The server accepts connections in order: once a later one has been
	// answered, the slow one is tracked by the server. (A path that is not
	// served: without a MeterProvider a scrape has nothing to collect.)
	resp, err := http.Get("http://" + exp.Addr() + "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = exp.Shutdown(ctx)
	if err == nil {
		t.Fatal("Shutdown with a done context and an open request returned nil")
	}
	if !strings.HasPrefix(err.Error(), "exporters/prometheus: shutdown: ") || !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown error %q: want it to start with %q and wrap context.Canceled", err, "exporters/prometheus: shutdown: ")
	}
	// The slow connection is cut.
	if _, err := io.Copy(io.Discard, slow); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the slow connection was not closed by Shutdown")
		}
	}
	if again := exp.Shutdown(context.Background()); again == nil || again.Error() != err.Error() {
		t.Fatalf("second Shutdown: %v, want the first result %v", again, err)
	}
}

// TestHandlerDuringCloseConcurrentSafe scrapes from 8 goroutines while the
// Collector closes: every answer is a 200 with the series or a 503, and
// after Close only 503.
func TestHandlerDuringCloseConcurrentSafe(t *testing.T) {
	c, exp := newCollector(t)
	recordKnownValues(t, c)
	h := exp.Handler()
	stop := make(chan struct{})
	bad := make(chan string, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				switch {
				case rec.Code == http.StatusServiceUnavailable:
				case rec.Code == http.StatusOK && strings.Contains(rec.Body.String(), "orchestrator_tokens_used_total"):
				default:
					select {
					case bad <- fmt.Sprintf("%d %q", rec.Code, rec.Body.String()):
					default:
					}
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := c.Close(context.Background()); err != nil {
		t.Error(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(bad)
	for b := range bad {
		t.Errorf("answer during Close: %s", b)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("after Close: %d", rec.Code)
	}
}
