package fleet_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/fleet"
)

func TestParseRetention(t *testing.T) {
	const day = 24 * time.Hour
	vm := []struct {
		in   string
		want time.Duration
	}{
		{"1", 31 * day}, {"3", 93 * day}, {"0.5", 372 * time.Hour}, {"1d", day}, {"24h", day},
		{"2w", 14 * day}, {"100y", 100 * 365 * day}, {"1.5D", 36 * time.Hour},
		{"", 0}, {"0", 0}, {"-1", 0}, {"1m", 0}, {"abc", 0}, {"1e300y", 0}, {"NaN", 0},
	}
	for _, tc := range vm {
		if got := fleet.ParseVMRetention(tc.in); got != tc.want {
			t.Errorf("ParseVMRetention(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	prom := []struct {
		in   string
		keep time.Duration
		size bool
	}{
		{"15d", 15 * day, false}, {"6h", 6 * time.Hour, false}, {"1y", 365 * day, false},
		{"10GiB", 0, true}, {"15d or 10GiB", 15 * day, true}, {"", 0, false}, {"garbage", 0, false},
	}
	for _, tc := range prom {
		if k, s := fleet.ParsePromRetention(tc.in); k != tc.keep || s != tc.size {
			t.Errorf("ParsePromRetention(%q) = %v, %v, want %v, %v", tc.in, k, s, tc.keep, tc.size)
		}
	}
	flags := []struct {
		name string
		in   map[string]string
		keep time.Duration
		size bool
	}{
		{"time", map[string]string{"storage.tsdb.retention.time": "6h", "storage.tsdb.retention.size": "0B"}, 6 * time.Hour, false},
		{"default", map[string]string{"storage.tsdb.retention.time": "0s", "storage.tsdb.retention.size": "0B"}, 15 * day, false},
		{"size only", map[string]string{"storage.tsdb.retention.time": "0s", "storage.tsdb.retention.size": "1GB"}, 0, true},
		{"old flag", map[string]string{"storage.tsdb.retention": "2d", "storage.tsdb.retention.time": "0s"}, 2 * day, false},
		{"not prometheus", map[string]string{}, 0, false},
	}
	for _, tc := range flags {
		if k, s := fleet.PromRetentionFlags(tc.in); k != tc.keep || s != tc.size {
			t.Errorf("%s: PromRetentionFlags = %v, %v, want %v, %v", tc.name, k, s, tc.keep, tc.size)
		}
	}
}

func FuzzParseVMRetention(f *testing.F) {
	for _, s := range []string{"1", "1d", "0.5w", "100y", "", "1m", "9e999y", "-3h", "NaNd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d := fleet.ParseVMRetention(s); d < 0 {
			t.Fatalf("ParseVMRetention(%q) = %v", s, d)
		}
	})
}

// The retention is asked for once per Client and cached, not on New and
// not on every call; an engine that answers it with nothing usable is not
// an error.
func TestRetentionAskedOnce(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if !strings.HasPrefix(r.URL.Path, "/api/v1/query") {
			asked[r.URL.Path]++
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/status/runtimeinfo":
			_, _ = w.Write([]byte(`{"status":"success","data":{"storageRetention":"1h"}}`))
		case "/metrics":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("# a page without the lines the client reads\nup 1\n"))
		case "/api/v1/query_range":
			_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`))
		default:
			_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	for i := range 3 {
		st, err := c.AggregatedStats(context.Background(), "orch-1", otelcollector.Last(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Truncated {
			t.Errorf("call %d: Truncated = false for Last(2h) on an engine keeping 1h", i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if asked["/api/v1/status/runtimeinfo"] != 1 || asked["/metrics"] != 1 || len(asked) != 2 {
		t.Errorf("asked %v, want runtimeinfo and /metrics once each", asked)
	}
}
