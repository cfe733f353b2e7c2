package otelcollector_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// Sizes of TestStressConcurrentSafe: 64 goroutines of 100,000 records each,
// or 2,000 each under the race detector, which slows every record more than
// tenfold (the race run then takes about 5 to 15 s per counter mode on two
// cores).
const stressGoroutines = 64

func stressRecords() int {
	if raceDetector {
		return 2_000
	}
	return 100_000
}

const stressOrchestrators = 8

// Label values, built once so that the workers format nothing.
var (
	stressOrchIDs = func() (ids [stressOrchestrators]string) {
		for k := range ids {
			ids[k] = fmt.Sprintf("orch-%d", k)
		}
		return ids
	}()
	stressNodes = func() (n [stressGoroutines]string) {
		for g := range n {
			n[g] = fmt.Sprintf("node-%02d", g)
		}
		return n
	}()
)

var (
	stressModels   = []string{"claude-opus", "claude-sonnet", "gpt-4o", "llama-3"}
	stressTools    = []string{"bash", "grep", "edit"}
	stressStatuses = []otelcollector.ToolStatus{otelcollector.ToolSuccess, otelcollector.ToolError, otelcollector.ToolTimeout}
	stressDelegSt  = []otelcollector.DelegationStatus{otelcollector.DelegationSuccess, otelcollector.DelegationError, otelcollector.DelegationRejected}
	stressErrTypes = []string{"rate_limit", "timeout"}
)

// stressKey names one exported series: the Prometheus metric name and its
// labels in the text format's order (sorted by name).
type stressKey struct{ metric, labels string }

func labelString(kv ...string) string {
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", kv[i], kv[i+1])
	}
	return b.String()
}

// stressTotals is what a set of records must add up to: counter values by
// series, and per orchestrator the figures AggregatedStats reports.
type stressTotals struct {
	series map[stressKey]float64
	orch   map[string]*otelcollector.AggregatedStats
	load   map[string]float64
}

func newStressTotals() *stressTotals {
	return &stressTotals{series: map[stressKey]float64{}, orch: map[string]*otelcollector.AggregatedStats{}, load: map[string]float64{}}
}

func (s *stressTotals) stats(id string) *otelcollector.AggregatedStats {
	if s.orch[id] == nil {
		s.orch[id] = &otelcollector.AggregatedStats{}
	}
	return s.orch[id]
}

// stressOp performs, or (with c nil) only accounts for, record i of
// goroutine g. Every kind of record appears: the Collector's methods, bound
// handles, WithMetrics and both gauges.
func stressOp(ctx context.Context, c *otelcollector.Collector, h *stressHandles, tot *stressTotals, g, i int) error {
	orch := stressOrchIDs[g%stressOrchestrators]
	switch i % 12 {
	case 0, 1:
		m, n := stressModels[(i/12)%len(stressModels)], int64(i%7+1)
		if c != nil {
			return c.RecordTokenUsage(ctx, orch, m, n)
		}
		tot.series[stressKey{"orchestrator_tokens_used_total", labelString("model", m, "orchestrator_id", orch)}] += float64(n)
		tot.stats(orch).TotalTokens += n
	case 2:
		tool, st := stressTools[(i/12)%len(stressTools)], stressStatuses[(i/36)%len(stressStatuses)]
		if c != nil {
			return c.RecordToolInvocation(ctx, orch, tool, st)
		}
		tot.series[stressKey{"orchestrator_tool_invocations_total", labelString("orchestrator_id", orch, "status", string(st), "tool_name", tool)}]++
		tot.stats(orch).ToolInvocations++
	case 3:
		d := time.Duration(i%5) * 100 * time.Millisecond
		if c != nil {
			return c.RecordMessageLatency(ctx, orch, d)
		}
		tot.series[stressKey{"orchestrator_message_latency_seconds_count", labelString("orchestrator_id", orch)}]++
		tot.stats(orch).Messages++
	case 4:
		to, st := stressOrchIDs[(g+1)%stressOrchestrators], stressDelegSt[(i/12)%len(stressDelegSt)]
		if c != nil {
			return c.RecordDelegation(ctx, orch, to, st)
		}
		tot.series[stressKey{"orchestrator_federation_delegations_total", labelString("from_orchestrator", orch, "status", string(st), "to_orchestrator", to)}]++
		tot.stats(orch).DelegationsOut++
		tot.stats(to).DelegationsIn++
	case 5:
		et := stressErrTypes[(i/12)%len(stressErrTypes)]
		if c != nil {
			return c.RecordError(ctx, orch, et)
		}
		tot.series[stressKey{"orchestrator_errors_total", labelString("error_type", et, "orchestrator_id", orch)}]++
		tot.stats(orch).Errors++
	case 6:
		if c != nil {
			return c.RecordSessionStart(ctx, orch, "claude-code")
		}
		tot.series[stressKey{"orchestrator_sessions_active", labelString("orchestrator_id", orch, "session_type", "claude-code")}]++
		tot.stats(orch).SessionsStarted++
	case 7:
		// Ends the session this goroutine started in case 6; a goroutine's
		// last record may leave one open.
		if c != nil {
			return c.RecordSessionEnd(ctx, orch, "claude-code")
		}
		tot.series[stressKey{"orchestrator_sessions_active", labelString("orchestrator_id", orch, "session_type", "claude-code")}]--
		tot.stats(orch).SessionsEnded++
	case 8:
		if c != nil {
			return h.tokens[g%stressOrchestrators].Add(ctx, 3)
		}
		tot.series[stressKey{"orchestrator_tokens_used_total", labelString("model", "bound-model", "orchestrator_id", orch)}] += 3
		tot.stats(orch).TotalTokens += 3
	case 9:
		if c != nil {
			return h.tools[g%stressOrchestrators].Inc(ctx, otelcollector.ToolSuccess)
		}
		tot.series[stressKey{"orchestrator_tool_invocations_total", labelString("orchestrator_id", orch, "status", "success", "tool_name", "bound-tool")}]++
		tot.stats(orch).ToolInvocations++
	case 10:
		if c != nil {
			_, err := otelcollector.WithMetrics(ctx, c, orch, func(context.Context) (int, error) { return i, nil })
			return err
		}
		tot.series[stressKey{"orchestrator_message_latency_seconds_count", labelString("orchestrator_id", orch)}]++
		tot.stats(orch).Messages++
	case 11:
		node, v := stressNodes[g], float64(i%101)/100
		if c != nil {
			if err := c.UpdateNodeLoad(node, v); err != nil {
				return err
			}
			return c.UpdateBudgetUtilization(orch, otelcollector.PeriodDaily, 50)
		}
		tot.load[node] = v
	}
	return nil
}

// stressWant returns what the records of TestStressConcurrentSafe add up
// to. A goroutine's records depend on g only through g%stressOrchestrators
// (and its node, whose last value does not depend on g), so the first
// stressOrchestrators goroutines are replayed and their sums scaled.
func stressWant(perG int) *stressTotals {
	tot := newStressTotals()
	for g := range stressOrchestrators {
		for i := range perG {
			_ = stressOp(context.Background(), nil, nil, tot, g, i)
		}
	}
	const k = stressGoroutines / stressOrchestrators
	for key, v := range tot.series {
		tot.series[key] = v * k
	}
	for _, st := range tot.orch {
		st.TotalTokens *= k
		st.ToolInvocations *= k
		st.Messages *= k
		st.Errors *= k
		st.DelegationsOut *= k
		st.DelegationsIn *= k
		st.SessionsStarted *= k
		st.SessionsEnded *= k
	}
	last := tot.load[stressNodes[0]]
	for _, node := range stressNodes {
		tot.load[node] = last
	}
	return tot
}

type stressHandles struct {
	tokens [stressOrchestrators]*otelcollector.TokenCounter
	tools  [stressOrchestrators]*otelcollector.ToolCounter
}

// TestStressConcurrentSafe has stressGoroutines goroutines make
// stressRecords records each, of every kind, while other goroutines Flush,
// scrape through the Prometheus exporter, ask AggregatedStats and churn
// other gauge series with UpdateNodeLoad, ForgetNode and ForgetBudget. At
// the end every exported total, read from a ManualReader-backed scrape and
// from AggregatedStats, must equal the exact sum of what was recorded.
func TestStressConcurrentSafe(t *testing.T) {
	for _, m := range counterModes {
		t.Run(m.name, func(t *testing.T) { stress(t, m.opts...) })
	}
}

func stress(t *testing.T, opts ...otelcollector.Option) {
	ctx := context.Background()
	perG := stressRecords()
	exp, err := prometheus.New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcollector.New(ctx, append(opts, otelcollector.WithExporter(exp),
		otelcollector.WithReader(sdkmetric.NewManualReader()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	var h stressHandles
	for k := range stressOrchestrators {
		o, err := c.Orchestrator(fmt.Sprintf("orch-%d", k))
		if err != nil {
			t.Fatal(err)
		}
		if h.tokens[k], err = o.Model("bound-model"); err != nil {
			t.Fatal(err)
		}
		if h.tools[k], err = o.Tool("bound-tool"); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	stop := make(chan struct{})
	var side sync.WaitGroup
	var flushes, scrapes, statsCalls, churns atomic.Int64
	// pause spaces the background calls out a little, so that they run
	// throughout the test without taking a core from the recorders.
	background := func(name string, n *atomic.Int64, pause time.Duration, f func() error) {
		side.Add(1)
		go func() {
			defer side.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := f(); err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				n.Add(1)
				time.Sleep(pause)
			}
		}()
	}
	background("Flush", &flushes, time.Millisecond, func() error { return c.Flush(ctx) })
	background("scrape", &scrapes, 10*time.Millisecond, func() error {
		rec := httptest.NewRecorder()
		exp.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			return fmt.Errorf("status %d", rec.Code)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		_, err := p.TextToMetricFamilies(rec.Body)
		return err
	})
	background("AggregatedStats", &statsCalls, 10*time.Millisecond, func() error {
		_, err := c.AggregatedStats(ctx, "orch-0", otelcollector.Last(time.Hour))
		return err
	})
	background("gauge churn", &churns, 100*time.Microsecond, func() error {
		k := churns.Load() % 50
		node := fmt.Sprintf("churn-%d", k)
		if err := c.UpdateNodeLoad(node, 0.5); err != nil {
			return err
		}
		if err := c.UpdateBudgetUtilization(node, otelcollector.PeriodWeekly, 10); err != nil {
			return err
		}
		c.ForgetNode(node)
		c.ForgetBudget(node, otelcollector.PeriodWeekly)
		return nil
	})

	var workers sync.WaitGroup
	var failed atomic.Int64
	for g := range stressGoroutines {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range perG {
				if err := stressOp(ctx, c, &h, nil, g, i); err != nil {
					if failed.Add(1) == 1 {
						t.Errorf("goroutine %d record %d: %v", g, i, err)
					}
					return
				}
			}
		}()
	}
	workers.Wait()
	recordTime := time.Since(start)
	close(stop)
	side.Wait()

	checkStart := time.Now()
	want := stressWant(perG)

	// The scrape: every series the records made, exactly.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(scrapeHandler(t, exp.Handler())))
	if err != nil {
		t.Fatal(err)
	}
	got := map[stressKey]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var kv []string
			for _, lp := range m.GetLabel() {
				kv = append(kv, lp.GetName(), lp.GetValue())
			}
			switch {
			case m.GetCounter() != nil:
				got[stressKey{name, labelString(kv...)}] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[stressKey{name + "_count", labelString(kv...)}] = float64(m.GetHistogram().GetSampleCount())
			case m.GetGauge() != nil:
				got[stressKey{name, labelString(kv...)}] = m.GetGauge().GetValue()
			}
		}
	}
	for k, v := range want.series {
		if got[k] != v {
			t.Errorf("scrape %s{%s} = %v, want %v", k.metric, k.labels, got[k], v)
		}
	}
	for node, v := range want.load {
		if g := got[stressKey{"orchestrator_node_load", labelString("node_id", node)}]; g != v {
			t.Errorf("node load %s = %v, want %v (the goroutine's last update)", node, g, v)
		}
	}
	for k := range got {
		if k.metric == "orchestrator_node_load" && strings.Contains(k.labels, "churn") {
			t.Errorf("forgotten series %s still exported", k.labels)
		}
	}
	for _, reason := range []string{"closed", "empty_label", "negative_value", "unknown_status"} {
		if v := got[stressKey{"orchestrator_collector_rejected_total", labelString("reason", reason)}]; v != 0 {
			t.Errorf("rejected{%s} = %v, want 0", reason, v)
		}
	}

	// The in-memory stats of every orchestrator.
	for id, w := range want.orch {
		st := statsOf(t, c, id)
		active := w.SessionsStarted - w.SessionsEnded
		if st.TotalTokens != w.TotalTokens || st.ToolInvocations != w.ToolInvocations || st.Messages != w.Messages ||
			st.Errors != w.Errors || st.DelegationsOut != w.DelegationsOut || st.DelegationsIn != w.DelegationsIn ||
			st.ActiveSessions != active {
			t.Errorf("stats of %s:\n got tokens %d tools %d messages %d errors %d deleg out/in %d/%d active %d\nwant tokens %d tools %d messages %d errors %d deleg out/in %d/%d active %d",
				id, st.TotalTokens, st.ToolInvocations, st.Messages, st.Errors, st.DelegationsOut, st.DelegationsIn, st.ActiveSessions,
				w.TotalTokens, w.ToolInvocations, w.Messages, w.Errors, w.DelegationsOut, w.DelegationsIn, active)
		}
	}
	t.Logf("%d goroutines x %d records = %d records in %v (read-back and checks %v), alongside %d Flush, %d scrapes, %d AggregatedStats, %d gauge churns; %d series and %d orchestrators' stats checked",
		stressGoroutines, perG, stressGoroutines*perG, recordTime.Round(time.Millisecond), time.Since(checkStart).Round(time.Millisecond),
		flushes.Load(), scrapes.Load(), statsCalls.Load(), churns.Load(), len(want.series), len(want.orch))
}
