package httpmetrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/httpmetrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newCollector(t *testing.T) (*otelcollector.Collector, *sdkmetric.ManualReader) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	c, err := otelcollector.New(context.Background(), otelcollector.WithReader(r))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c, r
}

// recorded is what the reader holds: latency counts per orchestrator and
// error counts per orchestrator and error type.
type recorded struct {
	latency map[string]uint64
	errors  map[[2]string]int64
}

func read(t *testing.T, r *sdkmetric.ManualReader) recorded {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := recorded{latency: map[string]uint64{}, errors: map[[2]string]int64{}}
	get := func(s attribute.Set, k string) string {
		v, _ := s.Value(attribute.Key(k))
		return v.AsString()
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch m.Name {
			case "orchestrator.message.latency":
				for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
					out.latency[get(dp.Attributes, "orchestrator_id")] = dp.Count
				}
			case "orchestrator.errors":
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					out.errors[[2]string{get(dp.Attributes, "orchestrator_id"), get(dp.Attributes, "error_type")}] = dp.Value
				}
			}
		}
	}
	return out
}

func fromHeader(r *http.Request) string { return r.Header.Get("X-Orchestrator-ID") }

func TestHandler(t *testing.T) {
	testCases := []struct {
		name       string
		id         string
		opts       []httpmetrics.Option
		handler    http.HandlerFunc
		wantStatus int
		wantPanic  bool
		latency    map[string]uint64
		errors     map[[2]string]int64
	}{
		{
			name:       "200 by writing a body",
			id:         "orch-1",
			handler:    func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") },
			wantStatus: 200,
			latency:    map[string]uint64{"orch-1": 1},
		},
		{
			name:       "200 by writing nothing",
			id:         "orch-1",
			handler:    func(http.ResponseWriter, *http.Request) {},
			wantStatus: 200,
			latency:    map[string]uint64{"orch-1": 1},
		},
		{
			name:       "404 is not an error by default",
			id:         "orch-1",
			handler:    func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
			wantStatus: 404,
			latency:    map[string]uint64{"orch-1": 1},
		},
		{
			name:       "503 is an error",
			id:         "orch-2",
			handler:    func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
			wantStatus: 503,
			latency:    map[string]uint64{"orch-2": 1},
			errors:     map[[2]string]int64{{"orch-2", "http_503"}: 1},
		},
		{
			name: "1xx then 500: the final status counts",
			id:   "orch-2",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusEarlyHints)
				w.WriteHeader(http.StatusInternalServerError)
			},
			wantStatus: 0, // the recorder keeps the first code, 103; a real server sends both
			latency:    map[string]uint64{"orch-2": 1},
			errors:     map[[2]string]int64{{"orch-2", "http_500"}: 1},
		},
		{
			name:      "panic is recorded and re-panics",
			id:        "orch-3",
			handler:   func(http.ResponseWriter, *http.Request) { panic("boom") },
			wantPanic: true,
			latency:   map[string]uint64{"orch-3": 1},
			errors:    map[[2]string]int64{{"orch-3", "http_panic"}: 1},
		},
		{
			name:       "no orchestrator: nothing recorded",
			id:         "",
			handler:    func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
			wantStatus: 500,
		},
		{
			name: "WithErrorType counts 4xx too",
			id:   "orch-4",
			opts: []httpmetrics.Option{httpmetrics.WithErrorType(func(status int) string {
				if status >= 400 {
					return "http_failure"
				}
				return ""
			})},
			handler:    func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTooManyRequests) },
			wantStatus: 429,
			latency:    map[string]uint64{"orch-4": 1},
			errors:     map[[2]string]int64{{"orch-4", "http_failure"}: 1},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			c, r := newCollector(t)
			m, err := httpmetrics.New(c, fromHeader, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/messages", nil)
			if tc.id != "" {
				req.Header.Set("X-Orchestrator-ID", tc.id)
			}
			rec := httptest.NewRecorder()
			func() {
				defer func() {
					if p := recover(); (p != nil) != tc.wantPanic {
						t.Errorf("panic %v, want panic %v", p, tc.wantPanic)
					}
				}()
				m.Handler(tc.handler).ServeHTTP(rec, req)
			}()
			if tc.wantStatus != 0 && rec.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			got := read(t, r)
			if !equalMaps(got.latency, tc.latency) {
				t.Errorf("latency counts %v, want %v", got.latency, tc.latency)
			}
			if !equalMaps(got.errors, tc.errors) {
				t.Errorf("errors %v, want %v", got.errors, tc.errors)
			}
		})
	}
}

func equalMaps[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestFlushAndResponseController: a handler that asserts http.Flusher, or
// uses http.ResponseController, reaches the writer underneath.
func TestFlushAndResponseController(t *testing.T) {
	c, _ := newCollector(t)
	m, err := httpmetrics.New(c, fromHeader)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]http.HandlerFunc{
		"Flusher": func(w http.ResponseWriter, _ *http.Request) { w.(http.Flusher).Flush() },
		"ResponseController": func(w http.ResponseWriter, _ *http.Request) {
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Error(err)
			}
		},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-Orchestrator-ID", "orch-1")
		m.Handler(h).ServeHTTP(rec, req)
		if !rec.Flushed {
			t.Errorf("%s: not flushed", name)
		}
	}
}

// TestRejectedRecordGoesToErrorHandler: an ID the Collector rejects does not
// change the response and reaches the error handler.
func TestRejectedRecordGoesToErrorHandler(t *testing.T) {
	c, r := newCollector(t)
	var mu sync.Mutex
	var got []error
	m, err := httpmetrics.New(c, fromHeader, httpmetrics.WithErrorHandler(func(err error) {
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Orchestrator-ID", strings.Repeat("x", otelcollector.MaxLabelBytes+1))
	rec := httptest.NewRecorder()
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})).ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", rec.Code)
	}
	if len(got) != 1 || !errors.Is(got[0], otelcollector.ErrInvalidLabel) {
		t.Fatalf("error handler got %v, want one ErrInvalidLabel", got)
	}
	if rd := read(t, r); len(rd.latency) != 0 || len(rd.errors) != 0 {
		t.Errorf("recorded %v for a rejected ID", rd)
	}
}

func TestNewInvalid(t *testing.T) {
	c, _ := newCollector(t)
	testCases := []struct {
		name string
		c    *otelcollector.Collector
		id   func(*http.Request) string
		opts []httpmetrics.Option
	}{
		{"nil Collector", nil, fromHeader, nil},
		{"nil id func", c, nil, nil},
		{"nil WithErrorType", c, fromHeader, []httpmetrics.Option{httpmetrics.WithErrorType(nil)}},
		{"nil WithErrorHandler", c, fromHeader, []httpmetrics.Option{httpmetrics.WithErrorHandler(nil)}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := httpmetrics.New(tc.c, tc.id, tc.opts...); err == nil || m != nil {
				t.Fatalf("New = %v, %v; want an error", m, err)
			}
		})
	}
}

// TestLoopbackServerConcurrentSafe serves real requests on 127.0.0.1 from
// several goroutines and checks the exact counts.
func TestLoopbackServerConcurrentSafe(t *testing.T) {
	c, r := newCollector(t)
	m, err := httpmetrics.New(c, func(r *http.Request) string { return r.URL.Query().Get("orch") })
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "unavailable", http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("server not on loopback: %s", srv.URL)
	}

	const goroutines, perG = 4, 25
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				url := srv.URL + "/?orch=orch-a"
				if g%2 == 1 {
					url = srv.URL + "/?orch=orch-b"
				}
				if i%5 == 0 {
					url += "&fail=1"
				}
				resp, err := http.Get(url)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	srv.CloseClientConnections()

	got := read(t, r)
	wantLatency := map[string]uint64{"orch-a": 2 * perG, "orch-b": 2 * perG}
	wantErrors := map[[2]string]int64{{"orch-a", "http_502"}: 2 * perG / 5, {"orch-b", "http_502"}: 2 * perG / 5}
	if !equalMaps(got.latency, wantLatency) || !equalMaps(got.errors, wantErrors) {
		t.Errorf("got %v %v, want %v %v", got.latency, got.errors, wantLatency, wantErrors)
	}
}

// TestDefaultErrorsGoToCollector (issue 10 item 11): without
// WithErrorHandler a rejected record goes to the Collector's own error
// path (here its WithErrorHandler), never to the global otel.Handle.
func TestDefaultErrorsGoToCollector(t *testing.T) {
	var mu sync.Mutex
	var global, collector []error
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		global = append(global, err)
		mu.Unlock()
	}))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	c, err := otelcollector.New(context.Background(), otelcollector.WithReader(sdkmetric.NewManualReader()),
		otelcollector.WithErrorHandler(func(err error) {
			mu.Lock()
			collector = append(collector, err)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	m, err := httpmetrics.New(c, fromHeader)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("X-Orchestrator-ID", "\xff")
	m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(httptest.NewRecorder(), req)
	mu.Lock()
	defer mu.Unlock()
	if len(global) != 0 {
		t.Errorf("otel.Handle got %v; want nothing", global)
	}
	if len(collector) != 1 || !errors.Is(collector[0], otelcollector.ErrInvalidLabel) {
		t.Errorf("the Collector's handler got %v; want one ErrInvalidLabel", collector)
	}
}
