package fleet_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/enginepeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/fleet"
)

// TestFleetScale measures the scale goals of docs/benchmarks.md against a
// backfilled Prometheus. It runs only with FLEET_SCALE=1 (make fleet-scale):
// it writes hundreds of MiB and takes minutes. Nothing is asserted about
// time; the figures are logged.
func TestFleetScale(t *testing.T) {
	if os.Getenv("FLEET_SCALE") == "" {
		t.Skip("scale measurement: run with FLEET_SCALE=1 (make fleet-scale)")
	}
	end := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Hour)
	ctx := context.Background()
	// The calls are timed first, then three more sample the heap: the
	// sampler reads the heap every 2 ms, and each read stops the world
	// (on this machine it added 15–50 ms to a call of about 150 ms).
	measure := func(t *testing.T, name string, n int, f func() error) {
		var took []time.Duration
		for range n {
			began := time.Now()
			err := f()
			took = append(took, time.Since(began))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		var peak uint64
		for range 3 {
			var err error
			peak = max(peak, peakHeap(func() { err = f() }))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		t.Logf("%s: p50 %v, max %v over %d calls; peak client heap %.1f MiB over 3 more",
			name, took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), n, float64(peak)/(1<<20))
	}

	t.Run("24h/100daemons/1000orchestrators", func(t *testing.T) {
		sp := histSpec{orchs: 1000, daemons: 100, detailed: 1, step: time.Hour, start: end.Add(-25 * time.Hour), end: end, seed: 1}
		h, prom := backfill(t, sp)
		waitCompacted(t, prom)
		c := newClient(t, prom.URL)
		var got otelcollector.AggregatedStats
		measure(t, "AggregatedStats(orch-0000, Last(24h))", 21, func() (err error) {
			got, err = c.AggregatedStats(ctx, "orch-0000", otelcollector.Last(24*time.Hour))
			return err
		})
		n := time.Now()
		if want := h.want("orch-0000", "tokens", n.Add(-24*time.Hour), n); got.TotalTokens != want {
			t.Errorf("TotalTokens %d, want %d", got.TotalTokens, want)
		}
		measure(t, "AggregatedStats(orch-0500, Last(24h)) (tokens only)", 21, func() (err error) {
			_, err = c.AggregatedStats(ctx, "orch-0500", otelcollector.Last(24*time.Hour))
			return err
		})
	})
	t.Run("30d/100daemons", func(t *testing.T) {
		// Blocks of at most 7 days, as TestLongWindows writes them: promtool
		// writes one per 2 h otherwise (373 here, 8 min 45 s), which Prometheus
		// then compacts into larger ones anyway.
		sp := histSpec{orchs: 10, daemons: 100, detailed: 1, step: time.Hour, start: end.Add(-31 * 24 * time.Hour), end: end, seed: 2, maxBlock: 7 * 24 * time.Hour}
		h, prom := backfill(t, sp)
		waitCompacted(t, prom)
		c := newClient(t, prom.URL)
		var got otelcollector.AggregatedStats
		measure(t, "AggregatedStats(orch-0000, Last(30d))", 5, func() (err error) {
			got, err = c.AggregatedStats(ctx, "orch-0000", otelcollector.Last(30*24*time.Hour))
			return err
		})
		n := time.Now()
		if want := h.want("orch-0000", "tokens", n.Add(-30*24*time.Hour), n); got.TotalTokens != want {
			t.Errorf("TotalTokens %d, want %d", got.TotalTokens, want)
		}
		if want := h.want("orch-0000", "messages", n.Add(-30*24*time.Hour), n); got.Messages != want {
			t.Errorf("Messages %d, want %d", got.Messages, want)
		}
	})
	t.Run("Orchestrators/10000", func(t *testing.T) {
		// Its own end: the subtests before take many minutes.
		end := time.Now().UTC().Truncate(15 * time.Minute)
		sp := histSpec{orchs: 10000, daemons: 2, step: 15 * time.Minute, start: end.Add(-3 * time.Hour), end: end, seed: 3}
		_, prom := backfill(t, sp)
		waitCompacted(t, prom)
		c := newClient(t, prom.URL, fleet.WithQueryTimeout(time.Minute))
		var ids []string
		measure(t, "Orchestrators(Last(1h)) over 10000 IDs", 11, func() (err error) {
			ids, err = c.Orchestrators(ctx, otelcollector.Last(time.Hour))
			return err
		})
		if len(ids) < 9000 {
			t.Errorf("%d IDs, want nearly 10000", len(ids))
		}
		t.Logf("%d IDs", len(ids))
	})
}

// waitCompacted waits until Prometheus has compacted the backfilled 2-hour
// blocks (it starts about a minute after it opens them), the number of
// blocks steady for 30 s: a Prometheus that
// has held the history for that long has compacted it, and a compaction
// running during the measurement competes for the same two cores. At most
// 5 minutes; the number of blocks is logged.
func waitCompacted(t *testing.T, prom *enginepeer.Engine) {
	t.Helper()
	read := func() (blocks, compactions float64) {
		resp, err := http.Get(prom.URL + "/metrics")
		if err != nil {
			return -1, -1
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			v, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "prometheus_tsdb_blocks_loaded":
				blocks = v
			case "prometheus_tsdb_compactions_total":
				compactions = v
			}
		}
		return blocks, compactions
	}
	began := time.Now()
	before, _ := read()
	last, stable := -1.0, 0
	for time.Since(began) < 5*time.Minute {
		b, c := read()
		// Prometheus plans its first compaction about a minute after it
		// opens the blocks; a set it does not compact stays as it is.
		if b == last && (c > 0 || time.Since(began) > 90*time.Second) {
			stable++
			if stable >= 3 {
				break
			}
		} else {
			stable = 0
		}
		last = b
		time.Sleep(10 * time.Second)
	}
	t.Logf("Prometheus compacted %v blocks into %v in %v", before, last, time.Since(began).Round(time.Second))
}
