package fleet_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/fleet"
)

func TestNew(t *testing.T) {
	testCases := []struct {
		name string
		addr string
		opts []fleet.Option
		ok   bool
	}{
		{"http", "http://127.0.0.1:9090", nil, true},
		{"https with path", "https://mimir.example/prometheus", nil, true},
		{"trailing slash", "http://127.0.0.1:9090/", nil, true},
		{"no scheme", "127.0.0.1:9090", nil, false},
		{"ftp", "ftp://127.0.0.1", nil, false},
		{"no host", "http://", nil, false},
		{"query", "http://127.0.0.1:9090/?x=1", nil, false},
		{"empty", "", nil, false},
		{"bad escape", "http://%zz", nil, false},
		{"selector", "http://h", []fleet.Option{fleet.WithSelector(`job="orchestrator-daemon"`)}, true},
		{"selector list", "http://h", []fleet.Option{fleet.WithSelector(`env="prod", region=~"eu-.*"`)}, true},
		{"selector escaped quote", "http://h", []fleet.Option{fleet.WithSelector(`a="x\"y"`)}, true},
		{"selector braces", "http://h", []fleet.Option{fleet.WithSelector(`{job="x"}`)}, false},
		{"selector injection", "http://h", []fleet.Option{fleet.WithSelector(`job="x"}) or vector(1`)}, false},
		{"selector bare word", "http://h", []fleet.Option{fleet.WithSelector(`job`)}, false},
		{"header", "http://h", []fleet.Option{fleet.WithHeader("X-Scope-OrgID", "tenant-1")}, true},
		{"header bad name", "http://h", []fleet.Option{fleet.WithHeader("X Bad", "v")}, false},
		{"header newline", "http://h", []fleet.Option{fleet.WithHeader("X-A", "v\r\nX-B: w")}, false},
		{"token", "http://h", []fleet.Option{fleet.WithBearerToken("s3cret")}, true},
		{"empty token", "http://h", []fleet.Option{fleet.WithBearerToken("")}, false},
		{"timeout", "http://h", []fleet.Option{fleet.WithQueryTimeout(time.Second)}, true},
		{"zero timeout", "http://h", []fleet.Option{fleet.WithQueryTimeout(0)}, false},
		{"concurrency 0", "http://h", []fleet.Option{fleet.WithMaxConcurrentQueries(0)}, false},
		{"nil options", "http://h", []fleet.Option{nil, fleet.WithHTTPClient(nil), fleet.WithRoundTripper(nil), fleet.WithLogger(nil)}, true},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := fleet.New(tc.addr, tc.opts...)
			if tc.ok {
				if err != nil || c == nil {
					t.Fatalf("New(%q) = %v, %v; want a client", tc.addr, c, err)
				}
				return
			}
			if !errors.Is(err, otelcollector.ErrInvalidOption) {
				t.Fatalf("New(%q) error = %v, want ErrInvalidOption", tc.addr, err)
			}
		})
	}
}

// New contacts nothing: a client for an address where nothing listens is
// made without error.
func TestNewContactsNothing(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits++ }))
	defer srv.Close()
	if _, err := fleet.New(srv.URL); err != nil {
		t.Fatal(err)
	}
	if hits != 0 {
		t.Fatalf("New sent %d requests", hits)
	}
}

func TestBadInput(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits++ }))
	defer srv.Close()
	c := newClient(t, srv.URL)
	ctx := context.Background()
	now := time.Now()
	testCases := []struct {
		name string
		id   string
		r    otelcollector.TimeRange
		want error
	}{
		{"empty id", "", otelcollector.Last(time.Hour), otelcollector.ErrInvalidLabel},
		{"long id", strings.Repeat("x", 257), otelcollector.Last(time.Hour), otelcollector.ErrInvalidLabel},
		{"bad utf-8", "orch-\xff", otelcollector.Last(time.Hour), otelcollector.ErrInvalidLabel},
		{"negative last", "orch-1", otelcollector.Last(-time.Second), otelcollector.ErrInvalidTimeRange},
		{"end before start", "orch-1", otelcollector.TimeRange{Start: now, End: now.Add(-time.Second)}, otelcollector.ErrInvalidTimeRange},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AggregatedStats(ctx, tc.id, tc.r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("AggregatedStats error = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := c.Orchestrators(ctx, otelcollector.Last(-time.Second)); !errors.Is(err, otelcollector.ErrInvalidTimeRange) {
		t.Fatalf("Orchestrators(Last(-1s)) error = %v", err)
	}
	if hits != 0 {
		t.Fatalf("bad input sent %d queries", hits)
	}
}

// An engine that is down, slow, or answers garbage gives an error naming
// the engine and the query, by the ctx deadline, and nothing panics.
func TestEngineFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()

	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	// Runs before slow.Close, which waits for the handlers.
	defer once.Do(func() { close(release) })
	answer := func(status int, body string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}))
	}
	servers := map[string]*httptest.Server{
		"html":         answer(200, "<html>not an API</html>"),
		"truncated":    answer(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{}`),
		"error status": answer(422, `{"status":"error","errorType":"bad_data","error":"parse error"}`),
		"wrong type":   answer(200, `{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}`),
		"no tags":      answer(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"x":"y"},"value":[1,"5"]}]}}`),
		"negative":     answer(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"fleet_m":"0","fleet_fn":"last_over_time"},"value":[1,"-5"]}]}}`),
		"bad number":   answer(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"fleet_m":"0"},"value":[1,"abc"]}]}}`),
		"500":          answer(500, `oops`),
	}
	for _, s := range servers {
		defer s.Close()
	}
	type tc struct {
		name, url string
		timeout   time.Duration
	}
	cases := []tc{{"down", down, 5 * time.Second}, {"slow", slow.URL, 300 * time.Millisecond}}
	for name, s := range servers {
		cases = append(cases, tc{name, s.URL, 5 * time.Second})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := newClient(t, c.url)
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			start := time.Now()
			_, err := cl.AggregatedStats(ctx, "orch-1", otelcollector.Last(time.Hour))
			if !errors.Is(err, fleet.ErrEngine) {
				t.Fatalf("AggregatedStats error = %v, want ErrEngine", err)
			}
			if !strings.Contains(err.Error(), c.url) || !strings.Contains(err.Error(), "query ") {
				t.Errorf("error %q does not name the engine and the query", err)
			}
			if c.name == "slow" && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("slow engine: error %v does not wrap the deadline", err)
			}
			// Generous: the call must not outlive its deadline by much.
			if d := time.Since(start); d > c.timeout+10*time.Second {
				t.Errorf("returned after %v", d)
			}
			_, err = cl.Orchestrators(ctx, otelcollector.Last(time.Hour))
			if !errors.Is(err, fleet.ErrEngine) {
				t.Fatalf("Orchestrators error = %v, want ErrEngine", err)
			}
		})
	}
}

// Headers and the bearer token reach the engine on every query.
func TestHeadersAndToken(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	var queries int // the rest asks for the retention (and gets no warnings)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		if strings.HasPrefix(r.URL.Path, "/api/v1/query") {
			queries++
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["partial answer"],"infos":["an info"]}`))
	}))
	defer srv.Close()
	var warns []fleet.Warning
	c := newClient(t, srv.URL,
		fleet.WithHeader("X-Scope-OrgID", "tenant-1"),
		fleet.WithBearerToken("s3cret"),
		fleet.WithWarningHandler(func(w fleet.Warning) { mu.Lock(); warns = append(warns, w); mu.Unlock() }))
	st, err := c.AggregatedStats(context.Background(), "orch-1", otelcollector.Last(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if st.OrchestratorID != "orch-1" || st.TotalTokens != 0 {
		t.Fatalf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("no query sent")
	}
	for _, h := range seen {
		if h.Get("X-Scope-OrgID") != "tenant-1" || h.Get("Authorization") != "Bearer s3cret" {
			t.Fatalf("headers %v", h)
		}
	}
	var w, i int
	for _, x := range warns {
		if x.Engine != srv.URL || x.Query == "" {
			t.Errorf("warning %+v does not name the engine and query", x)
		}
		if x.Info {
			i++
		} else {
			w++
		}
	}
	if w != queries || i != queries || queries == 0 {
		t.Errorf("got %d warnings and %d infos for %d queries", w, i, queries)
	}
}

func FuzzSelector(f *testing.F) {
	for _, s := range []string{`job="x"`, `a=~"b.*", c!="d"`, `a="\""`, `{}`, `a="x"}) or vector(1`, "", `a="x",`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := fleet.New("http://127.0.0.1:1", fleet.WithSelector(s))
		if err != nil {
			if !errors.Is(err, otelcollector.ErrInvalidOption) {
				t.Fatalf("error %v does not wrap ErrInvalidOption", err)
			}
			return
		}
		if c == nil {
			t.Fatal("nil client without error")
		}
		// An accepted selector never closes the braces it goes into.
		depth := 0
		inStr, esc := false, false
		for _, r := range s {
			switch {
			case esc:
				esc = false
			case inStr && r == '\\':
				esc = true
			case r == '"':
				inStr = !inStr
			case !inStr && (r == '{' || r == '}' || r == '(' || r == ')'):
				depth++
			}
		}
		if depth != 0 || inStr {
			t.Fatalf("accepted selector %q escapes its braces", s)
		}
	})
}

// TestSessionsGaugeInCountQuery: the sessions gauge, an instant query at
// End like the sample counts, is evaluated in the counts' query and read
// from its fleet_m="sessions" sample, and the native histogram's instant
// selector in the baseline's (at Start) and the counts' (at End) queries:
// two queries fewer per call. Without the counts (WithWholeBudget(0)) they
// are queries of their own, as before.
func TestSessionsGaugeInCountQuery(t *testing.T) {
	const (
		gauge  = `sum(orchestrator_sessions_active{orchestrator_id="orch-1"})`
		native = `orchestrator_message_latency_native_seconds{orchestrator_id="orch-1"}`
	)
	var mu sync.Mutex
	var qs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.FormValue("query")
		mu.Lock()
		qs = append(qs, q)
		mu.Unlock()
		result := `[]`
		switch {
		case strings.Contains(q, "count_over_time") && strings.Contains(q, gauge):
			result = `[{"metric":{"fleet_m":"sessions"},"value":[1,"3"]}]`
		case q == gauge:
			result = `[{"metric":{},"value":[1,"4"]}]`
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":` + result + `}}`))
	}))
	defer srv.Close()
	// The native histogram at Start rides in the baseline's query; with
	// the optimistic read (the default), which replaces that query, it is
	// a query of its own.
	testCases := []struct {
		name                         string
		opts                         []fleet.Option
		sessions                     int64
		standalone, nativeStandalone bool
	}{
		{"in the count query", nil, 3, false, true},
		{"in the count and the baseline query", []fleet.Option{fleet.WithOptimisticLimit(0)}, 3, false, false},
		{"no count: its own query", []fleet.Option{fleet.WithWholeBudget(0)}, 4, true, true},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			qs = nil
			mu.Unlock()
			st, err := newClient(t, srv.URL, tc.opts...).AggregatedStats(context.Background(), "orch-1", otelcollector.Last(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if st.ActiveSessions != tc.sessions {
				t.Errorf("ActiveSessions = %d, want %d", st.ActiveSessions, tc.sessions)
			}
			mu.Lock()
			defer mu.Unlock()
			if standalone := slices.Contains(qs, gauge); standalone != tc.standalone {
				t.Errorf("%s sent as its own query: %v, want %v (queries: %q)", gauge, standalone, tc.standalone, qs)
			}
			if standalone := slices.Contains(qs, native); standalone != tc.nativeStandalone {
				t.Errorf("%s sent as its own query: %v, want %v (queries: %q)", native, standalone, tc.nativeStandalone, qs)
			}
			inBaseline := false
			for _, q := range qs {
				if strings.Contains(q, "last_over_time") && strings.Contains(q, native) {
					inBaseline = true
				}
			}
			if inBaseline == tc.nativeStandalone {
				t.Errorf("native selector in the baseline query: %v, want %v (queries: %q)", inBaseline, !tc.nativeStandalone, qs)
			}
		})
	}
}
