package fleet_test

import (
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/internal/enginepeer"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector/fleet"
)

// TestPushExact: three daemon processes push OTLP to the test Collector,
// which exposes them to one Prometheus 2.42 through its prometheus exporter
// (scraped with honor_labels) and writes them into another through
// prometheusremotewrite (--web.enable-remote-write-receiver). One daemon
// restarts, one stops for good, and the Collector restarts in the middle of
// a window: the fleet stats of every window equal the ground truth and the
// daemons' own stats on both engines. ActiveSessions honours the gone
// daemon on the scraped path (the Collector's exporter expires its series);
// remote write carries no staleness, so there every sessions series keeps
// its last written value within the lookback (5 minutes), a stopped or
// restarted process's too, and the test asserts exactly that. The daemons
// run with WithSessionCounters: SessionsStarted and SessionsEnded are exact
// on both paths.
func TestPushExact(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts the test Collector, two Prometheus servers and three daemons")
	}
	// Its own engines and daemons on ports of their own: it runs beside
	// the package's other end-to-end tests, which mostly wait on scrapes.
	t.Parallel()
	grpc, promAddr := testpeer.ClosedAddr(t), testpeer.ClosedAddr(t)
	scraped := enginepeer.StartPrometheus(t, enginepeer.Options{ScrapeConfigs: enginepeer.ScrapeJob("otel-collector", true, promAddr)})
	written := enginepeer.StartPrometheus(t, enginepeer.Options{Flags: []string{"--web.enable-remote-write-receiver"}})
	written.Name = "prometheus-remote-write"
	col := enginepeer.StartCollector(t, enginepeer.CollectorOptions{
		// The exporter expires a series 5 s after its latest push: well
		// past the daemons' 500 ms push interval, so that a live daemon
		// delayed on a loaded machine keeps its series (a gap at a
		// boundary would drop its sessions gauge there); the boundaries
		// wait until a stopped daemon's series have expired.
		GRPCAddr: grpc, PrometheusAddr: promAddr, MetricExpiration: 5 * time.Second,
		RemoteWriteURL: written.URL + "/api/v1/write",
	})
	daemons := map[string]*daemon{}
	for _, n := range []string{"A", "B", "C"} {
		addr := testpeer.ClosedAddr(t)
		daemons[n] = startDaemon(t, n, addr, "FLEET_DAEMON_OTLP="+grpc, sessionCountersEnv,
			"OTEL_SERVICE_NAME=orchestrator-daemon", "OTEL_RESOURCE_ATTRIBUTES=service.instance.id="+addr)
	}
	r := newFleetRun(t, []*enginepeer.Engine{scraped, written}, daemons)
	r.sessionCounters = true
	r.flush = func(d *daemon) { d.Flush() }
	r.midPhase2 = col.Restart
	r.lookbackSessions = map[*enginepeer.Engine]bool{written: true}
	r.play()
	r.check(fleet.WithSelector(`job="orchestrator-daemon"`))
}
