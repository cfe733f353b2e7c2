package fleet_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/enginepeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/fleet"
)

// TestTruncatedByRetention backfills 30 hours of hourly history into a
// Prometheus that keeps 6 hours, so that Prometheus deletes the older
// blocks when it opens them. A window reaching past what it holds is
// Truncated, starts where the data begins, and counts exactly from there; a
// window inside the retention is not truncated and is exact as before; a
// window wholly before the data is empty and truncated.
func TestTruncatedByRetention(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: promtool backfill and Prometheus")
	}
	// Its own engine on a port of its own: it runs beside the other
	// end-to-end tests.
	t.Parallel()
	end := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Hour)
	sp := histSpec{orchs: 3, daemons: 2, detailed: 1, step: time.Hour, start: end.Add(-30 * time.Hour), end: end, seed: 13}
	h, prom := backfill(t, sp, enginepeer.Options{Retention: "6h"})
	c := newClient(t, prom.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	check := func(t *testing.T, id string, got otelcollector.AggregatedStats, s, e time.Time) {
		t.Helper()
		for _, f := range []struct {
			name  string
			got   int64
			field string
		}{{"TotalTokens", got.TotalTokens, "tokens"}, {"Messages", got.Messages, "messages"}, {"ToolInvocations", got.ToolInvocations, "tools"}, {"Errors", got.Errors, "errors"}} {
			if want := h.want(id, f.field, s, e); f.got != want {
				t.Errorf("%s: %s = %d, want %d over (%v, %v]", id, f.name, f.got, want, s, e)
			}
		}
	}

	t.Run("Last(24h) reaches past the retention", func(t *testing.T) {
		for _, id := range []string{"orch-0000", "orch-0002"} {
			asked := time.Now().Add(-24 * time.Hour)
			got, err := c.AggregatedStats(ctx, id, otelcollector.Last(24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Truncated {
				t.Errorf("%s: Truncated = false, want true (the engine keeps 6h)", id)
			}
			// Prometheus deletes whole 2-hour blocks, counting its 6 hours
			// back from its newest block: the data begins 6 to 10 hours
			// before the backfill's end.
			if got.Start.Before(end.Add(-10*time.Hour)) || got.Start.After(end.Add(-5*time.Hour)) || !got.Start.After(asked) {
				t.Errorf("%s: Start %v, want where the data begins, 5 to 10 hours before %v", id, got.Start, end)
			}
			check(t, id, got, got.Start, got.End)
			if got.TotalTokens == 0 {
				t.Errorf("%s: no tokens at all", id)
			}
		}
	})
	t.Run("Last(3h) inside the retention", func(t *testing.T) {
		n := time.Now()
		got, err := c.AggregatedStats(ctx, "orch-0000", otelcollector.Last(3*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got.Truncated {
			t.Errorf("Truncated = true for a window the engine holds whole")
		}
		if d := got.Start.Sub(n.Add(-3 * time.Hour)); d < -time.Second || d > time.Second {
			t.Errorf("Start %v, want the asked %v", got.Start, n.Add(-3*time.Hour))
		}
		check(t, "orch-0000", got, n.Add(-3*time.Hour), n)
	})
	t.Run("a window before the data", func(t *testing.T) {
		r := otelcollector.TimeRange{Start: end.Add(-28 * time.Hour), End: end.Add(-20 * time.Hour)}
		got, err := c.AggregatedStats(ctx, "orch-0000", r)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Truncated || got.TotalTokens != 0 || !got.Start.Equal(r.End) || !got.End.Equal(r.End) {
			t.Errorf("got Truncated %v, %d tokens, %v..%v; want truncated, empty, Start = End = %v", got.Truncated, got.TotalTokens, got.Start, got.End, r.End)
		}
	})
	t.Run("an engine that tells nothing", func(t *testing.T) {
		// The same Prometheus behind a proxy that forwards only the query
		// API, as a gateway in front of Thanos or Mimir may: the retention
		// is unknown, Truncated stays false, and nothing fails.
		u, _ := url.Parse(prom.URL)
		proxy := httputil.NewSingleHostReverseProxy(u)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, "/api/v1/query") {
				http.NotFound(w, r)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		defer srv.Close()
		got, err := newClient(t, srv.URL).AggregatedStats(ctx, "orch-0000", otelcollector.Last(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got.Truncated {
			t.Errorf("Truncated = true from an engine that tells no retention")
		}
	})
}

// TestTruncatedVictoriaMetrics: VictoriaMetrics tells its -retentionPeriod
// on its own /metrics page; a window reaching past it is Truncated and
// starts at now − retention.
func TestTruncatedVictoriaMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: VictoriaMetrics")
	}
	// Its own engine on a port of its own: it runs beside the other
	// end-to-end tests.
	t.Parallel()
	vm := enginepeer.StartVictoriaMetrics(t, enginepeer.Options{Retention: "1d"})
	now := time.Now()
	c := newClient(t, vm.URL, fleet.WithClock(func() time.Time { return now }))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testCases := []struct {
		name      string
		r         otelcollector.TimeRange
		truncated bool
		start     time.Time
	}{
		{"Last(48h)", otelcollector.Last(48 * time.Hour), true, now.Add(-24 * time.Hour)},
		{"Last(12h)", otelcollector.Last(12 * time.Hour), false, now.Add(-12 * time.Hour)},
		{"before the retention", otelcollector.TimeRange{Start: now.Add(-72 * time.Hour), End: now.Add(-48 * time.Hour)}, true, now.Add(-48 * time.Hour)},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.AggregatedStats(ctx, "orch-1", tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if got.Truncated != tc.truncated {
				t.Errorf("Truncated = %v, want %v", got.Truncated, tc.truncated)
			}
			if d := got.Start.Sub(tc.start); d < -50*time.Millisecond || d > 50*time.Millisecond {
				t.Errorf("Start %v, want %v", got.Start, tc.start)
			}
		})
	}
}
