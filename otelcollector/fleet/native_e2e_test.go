package fleet_test

import (
	"bufio"
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/enginepeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// scrapeLines returns the text exposition lines of a daemon that start
// with prefix.
func scrapeLines(t *testing.T, addr, prefix string) []string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// TestNativeHistogram: daemons with WithNativeLatencyHistogram, scraped by a
// Prometheus 2.42 with --enable-feature=native-histograms and by one
// without. With the feature the fleet percentiles are within 2 % of the
// exact nearest-rank values; without it the engine holds only the native
// stream's _count, _sum and +Inf bucket, and the client falls back to the
// classic buckets. The legacy series are byte-identical to those of a
// daemon without the option.
func TestNativeHistogram(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts two Prometheus servers and three daemons")
	}
	// Its own engines and daemons on ports of their own: it runs beside
	// the package's other end-to-end tests, which mostly wait on scrapes.
	t.Parallel()
	a := startDaemon(t, "native-A", "", "FLEET_DAEMON_NATIVE=1")
	b := startDaemon(t, "native-B", "", "FLEET_DAEMON_NATIVE=1")
	plain := startDaemon(t, "plain", "")
	job := enginepeer.ScrapeJob("orchestrator-daemon", false, a.Addr, b.Addr)
	withFlag := enginepeer.StartPrometheus(t, enginepeer.Options{ScrapeConfigs: job, Flags: []string{"--enable-feature=native-histograms"}})
	without := enginepeer.StartPrometheus(t, enginepeer.Options{ScrapeConfigs: job})

	r := newFleetRun(t, []*enginepeer.Engine{withFlag, without}, map[string]*daemon{"A": a, "B": b})
	r.boundary()
	rng := rand.New(rand.NewPCG(5, 5))
	for i, name := range []string{"A", "B"} {
		ops := []op{{Op: "tokens", Orch: "orch-1", Model: "m", N: int64(10 + i)}}
		for range 2500 {
			us := int64(math.Exp(rng.NormFloat64()*0.9+math.Log(1.2e6))) + 1
			ops = append(ops, op{Op: "latency", Orch: "orch-1", Micros: us})
		}
		r.record(name, 1, ops)
		if name == "A" {
			plain.Record(ops...)
		}
	}
	r.boundary()

	// Legacy series: the same bytes with and without the option.
	legacyA := scrapeLines(t, a.Addr, "orchestrator_message_latency_seconds")
	legacyPlain := scrapeLines(t, plain.Addr, "orchestrator_message_latency_seconds")
	if strings.Join(legacyA, "\n") != strings.Join(legacyPlain, "\n") || len(legacyA) == 0 {
		t.Errorf("legacy latency series differ with the native option:\n%s\nwithout:\n%s", strings.Join(legacyA, "\n"), strings.Join(legacyPlain, "\n"))
	}
	if n := scrapeLines(t, a.Addr, "orchestrator_message_latency_native_seconds"); len(n) == 0 {
		t.Errorf("no native stream in the text exposition")
	}

	want := r.tr.expect("orch-1", 0, 1)
	tw := otelcollector.TimeRange{Start: r.bounds[0], End: r.bounds[1]}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	got, err := newClient(t, withFlag.URL).AggregatedStats(ctx, "orch-1", tw)
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, "native", got, want.AggregatedStats)
	if got.LatencyRelativeError <= 0 || got.LatencyRelativeError > 0.011 {
		t.Errorf("native: LatencyRelativeError = %v, want the scale-6 bound 0.0109", got.LatencyRelativeError)
	}
	for _, p := range []struct {
		q   float64
		got time.Duration
	}{{0.50, got.P50Latency}, {0.95, got.P95Latency}, {0.99, got.P99Latency}} {
		exact := nearestRank(want.latencies, p.q)
		rel := math.Abs(p.got.Seconds()-exact.Seconds()) / exact.Seconds()
		t.Logf("native P%v: %v, exact %v, error %.3f %%", p.q*100, p.got, exact, rel*100)
		if rel > 0.02 || rel > got.LatencyRelativeError {
			t.Errorf("native P%v = %v, exact %v: error %.2f %% over 2 %% or over the bound %.2f %%", p.q*100, p.got, exact, rel*100, got.LatencyRelativeError*100)
		}
	}

	// Without the feature flag: classic buckets.
	got, err = newClient(t, without.URL).AggregatedStats(ctx, "orch-1", tw)
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, "no feature flag", got, want.AggregatedStats)
	checkClassicPercentiles(t, "no feature flag", got, want)
	ids := scrapeLines(t, a.Addr, "orchestrator_message_latency_native_seconds")
	sort.Strings(ids)
	t.Logf("native stream in the text exposition: %q", ids)
}
