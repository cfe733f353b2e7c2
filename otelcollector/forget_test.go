package otelcollector_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// forgetChurnHeapBound bounds the heap growth from the 1,000th to the
// 20,000th departed orchestrator (measured: see docs/reliability.md). A
// Collector that kept anything per forgotten orchestrator would grow by
// several KB per orchestrator, about 50 MB here.
const forgetChurnHeapBound = 2 << 20

// parseScrape parses a text exposition into its metric families.
func parseScrape(t *testing.T, body string) map[string]*dtoFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing scrape: %v\n%s", err, body)
	}
	out := map[string]*dtoFamily{}
	for name, f := range fams {
		df := &dtoFamily{}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			df.series = append(df.series, dtoSeries{labels: labels, value: v})
		}
		out[name] = df
	}
	return out
}

type dtoFamily struct{ series []dtoSeries }

type dtoSeries struct {
	labels map[string]string
	value  float64
}

// TestForgetOrchestratorChurn is the long-running daemon: 20,000
// orchestrators pass through a Collector with a cardinality limit of 100,
// at most 50 alive at once, each recording every metric and then forgotten.
// At the end the scrape holds exactly the live orchestrators' series and no
// overflow series, for every metric; the heap did not grow with the
// departed; and the stats of every live orchestrator are exact.
func TestForgetOrchestratorChurn(t *testing.T) {
	const alive = 50
	total := 20_000
	if raceDetector {
		total = 3_000 // the race detector makes each record ~10x slower
	}
	ctx := context.Background()
	exp, err := prometheus.New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcollector.New(ctx, otelcollector.WithExporter(exp), otelcollector.WithCardinalityLimit(100))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	scrape := func() string {
		rec := httptest.NewRecorder()
		exp.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("scrape: HTTP %d: %s", rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	id := func(i int) string { return fmt.Sprintf("orch-%05d", i) }
	node := func(i int) string { return fmt.Sprintf("node-%05d", i) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// record makes orchestrator i record every metric; its handle is used
	// for half of the records, so that handles are forgotten too.
	record := func(i int) {
		o, err := c.Orchestrator(id(i))
		must(err)
		must(o.RecordSessionStart(ctx, "claude-code"))
		must(c.RecordSessionStart(ctx, id(i), "claude-code"))
		must(o.RecordSessionEnd(ctx, "claude-code"))
		m, err := o.Model("sonnet")
		must(err)
		must(m.Add(ctx, int64(i%7+1)))
		must(c.RecordTokenUsage(ctx, id(i), "sonnet", 10))
		must(o.RecordMessageLatency(ctx, time.Duration(i%900+100)*time.Millisecond))
		must(c.RecordMessageLatency(ctx, id(i), 3*time.Second))
		tool, err := o.Tool("bash")
		must(err)
		must(tool.Inc(ctx, otelcollector.ToolSuccess))
		must(c.RecordToolInvocation(ctx, id(i), "bash", otelcollector.ToolSuccess))
		if i > 0 {
			must(o.RecordDelegation(ctx, id(i-1), otelcollector.DelegationSuccess))
		}
		e, err := o.ErrorType("timeout")
		must(err)
		must(e.Inc(ctx))
		must(c.UpdateNodeLoad(node(i), 0.5))
		must(c.UpdateBudgetUtilization(id(i), otelcollector.PeriodDaily, 12))
	}
	var heap1000 uint64
	for i := range total {
		record(i)
		if j := i - alive; j >= 0 {
			must(c.ForgetOrchestrator(id(j)))
			c.ForgetNode(node(j))
		}
		if i%97 == 0 {
			_ = scrape()
		}
		if i == total/20 {
			heap1000 = heapAfterGC()
		}
	}
	_ = scrape()
	heapEnd := heapAfterGC()
	growth := int64(heapEnd) - int64(heap1000)
	t.Logf("heap after %d orchestrators %.2f MiB, after %d %.2f MiB: %+.3f MiB (%.1f bytes per departed orchestrator)",
		total/20, mib(int64(heap1000)), total, mib(int64(heapEnd)), mib(growth), float64(growth)/float64(total-total/20))
	if growth > forgetChurnHeapBound {
		t.Errorf("heap grew by %d bytes from the 1,000th to the %dth orchestrator, bound %d", growth, total, forgetChurnHeapBound)
	}

	live := map[string]bool{}
	for i := total - alive; i < total; i++ {
		live[id(i)] = true
	}
	fams := parseScrape(t, scrape())
	wantSeries := map[string]int{
		"orchestrator_sessions_active":              alive,
		"orchestrator_tokens_used_total":            alive,
		"orchestrator_message_latency_seconds":      alive,
		"orchestrator_tool_invocations_total":       alive,
		"orchestrator_federation_delegations_total": alive - 1, // the oldest live one's target is gone
		"orchestrator_node_load":                    alive,
		"orchestrator_errors_total":                 alive,
		"orchestrator_budget_utilization_percent":   alive,
	}
	for name, want := range wantSeries {
		f := fams[name]
		if f == nil {
			t.Errorf("%s: not in the scrape", name)
			continue
		}
		if len(f.series) != want {
			t.Errorf("%s: %d series, want %d", name, len(f.series), want)
		}
		for _, s := range f.series {
			if s.labels["otel_metric_overflow"] != "" {
				t.Errorf("%s: overflow series %v", name, s.labels)
			}
			for _, k := range []string{"orchestrator_id", "from_orchestrator", "to_orchestrator"} {
				if v, ok := s.labels[k]; ok && !live[v] {
					t.Errorf("%s: series of departed %s=%s: %v", name, k, v, s.labels)
				}
			}
		}
	}
	if n := c.Overflowed(); n != 0 {
		t.Errorf("Overflowed() = %d, want 0", n)
	}
	for name := range live {
		var i int
		fmt.Sscanf(name, "orch-%05d", &i)
		st, err := c.AggregatedStats(ctx, name, otelcollector.TimeRange{})
		must(err)
		wantTokens := int64(i%7+1) + 10
		if st.TotalTokens != wantTokens || st.TokensByModel["sonnet"] != wantTokens ||
			st.Messages != 2 || st.ToolInvocations != 2 || st.SuccessfulToolCalls != 2 || st.FailedToolCalls != 0 ||
			st.Errors != 1 || st.ActiveSessions != 1 || st.SessionsStarted != 2 || st.SessionsEnded != 1 ||
			// Every live orchestrator delegated once to the one before it;
			// forgetting that one drops its history, not the live one's
			// (stats.Store.Forget), so the delegation out stays counted.
			st.DelegationsOut != 1 || st.DelegationsIn != b2i(i < total-1) {
			t.Errorf("%s: stats %+v", name, st)
		}
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// TestForgetOrchestrator checks one forget in both counter modes: the
// orchestrator's series go, others stay, delegations go in both
// directions, a later record starts from 0, and bad input is rejected.
func TestForgetOrchestrator(t *testing.T) {
	for _, mode := range counterModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			exp, err := prometheus.New()
			if err != nil {
				t.Fatal(err)
			}
			c, err := otelcollector.New(ctx, append(mode.opts, otelcollector.WithExporter(exp), otelcollector.WithCardinalityLimit(5))...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			scrape := func() map[string]*dtoFamily {
				rec := httptest.NewRecorder()
				exp.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				return parseScrape(t, rec.Body.String())
			}
			value := func(fams map[string]*dtoFamily, name string, kv ...string) (float64, bool) {
				f := fams[name]
				if f == nil {
					return 0, false
				}
			next:
				for _, s := range f.series {
					for i := 0; i < len(kv); i += 2 {
						if s.labels[kv[i]] != kv[i+1] {
							continue next
						}
					}
					return s.value, true
				}
				return 0, false
			}
			_ = c.RecordTokenUsage(ctx, "a", "m", 100)
			_ = c.RecordTokenUsage(ctx, "b", "m", 7)
			_ = c.RecordDelegation(ctx, "b", "a", otelcollector.DelegationSuccess)
			_ = c.RecordDelegation(ctx, "a", "b", otelcollector.DelegationSuccess)
			_ = c.RecordMessageLatency(ctx, "a", time.Second)
			o, err := c.Orchestrator("a")
			if err != nil {
				t.Fatal(err)
			}
			m, _ := o.Model("m2")
			_ = m.Add(ctx, 5)
			if v, ok := value(scrape(), "orchestrator_tokens_used_total", "orchestrator_id", "a", "model", "m"); !ok || v != 100 {
				t.Fatalf("before: a = %v, %v", v, ok)
			}
			if err := o.ForgetOrchestrator(); err != nil {
				t.Fatal(err)
			}
			fams := scrape()
			for _, name := range []string{"orchestrator_tokens_used_total", "orchestrator_federation_delegations_total", "orchestrator_message_latency_seconds"} {
				for _, k := range []string{"orchestrator_id", "from_orchestrator", "to_orchestrator"} {
					if _, ok := value(fams, name, k, "a"); ok {
						t.Errorf("after forget: %s{%s=a} still exported", name, k)
					}
				}
			}
			if v, ok := value(fams, "orchestrator_tokens_used_total", "orchestrator_id", "b"); !ok || v != 7 {
				t.Errorf("after forget: b = %v, %v; want 7", v, ok)
			}
			// The freed slots take new series without overflow.
			for _, id := range []string{"c", "d"} {
				_ = c.RecordTokenUsage(ctx, id, "m", 1)
			}
			_ = m.Add(ctx, 3) // the handle binds again and starts from 0
			fams = scrape()
			if v, ok := value(fams, "orchestrator_tokens_used_total", "orchestrator_id", "a", "model", "m2"); !ok || v != 3 {
				t.Errorf("after re-record: a = %v, %v; want 3", v, ok)
			}
			if n := c.Overflowed(); n != 0 {
				t.Errorf("Overflowed() = %d after freeing slots, want 0", n)
			}
			st, err := c.AggregatedStats(ctx, "a", otelcollector.TimeRange{})
			if err != nil {
				t.Fatal(err)
			}
			if st.TotalTokens != 3 || st.DelegationsIn != 0 || st.Messages != 0 {
				t.Errorf("stats after forget: %+v", st)
			}
			if err := c.ForgetOrchestrator(""); !errors.Is(err, otelcollector.ErrInvalidLabel) {
				t.Errorf("ForgetOrchestrator(\"\") = %v", err)
			}
			if err := c.ForgetOrchestrator("never-seen"); err != nil {
				t.Errorf("ForgetOrchestrator(never-seen) = %v", err)
			}
			_ = c.Close(ctx)
			if err := c.ForgetOrchestrator("b"); !errors.Is(err, otelcollector.ErrClosed) {
				t.Errorf("after Close: %v", err)
			}
		})
	}
}
