package docs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// testRuleOverrides shortens, in the test copy of rules.yml, what takes too
// long for CI; everything else (expressions, thresholds, labels,
// annotations) is the production rule. The alerts not listed keep their
// production `for` (ToolFailureRatioHigh and MessageLatencyP95High 10m,
// NoActiveSessions 30m): longer than the test, so they cannot fire in it,
// and the test drives none of them.
var testRuleOverrides = map[string]struct {
	forDur  string            // replaces the `for`
	windows map[string]string // replaces ranges and offsets
}{
	"OrchestratorBudgetUtilizationHigh": {forDur: "2s"}, // production 5m
	// production 10m; 8 s keeps the quickstart's random loads (above 0.9
	// one time in ten) from firing by chance.
	"OrchestratorNodeLoadHigh": {forDur: "8s"},
	"OrchestratorDown":         {forDur: "2s"}, // production 5m
	// production 15m windows: the alert resolves 15 s after the last
	// rejection instead of 15 min.
	"OrchestratorCollectorRejectingRecords":    {windows: map[string]string{"[15m]": "[15s]", "[15m:]": "[15s:]", "offset 15m": "offset 15s"}},
	"OrchestratorCollectorCardinalityOverflow": {windows: map[string]string{"[15m]": "[15s]", "[15m:]": "[15s:]", "offset 15m": "offset 15s"}},
}

// testRules writes the test copy of rules.yml with testRuleOverrides
// applied, and fails if an override no longer matches the rules.
func testRules(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile(`(?m)^      - (alert|record): `).Split(string(b), -1)
	heads := regexp.MustCompile(`(?m)^      - (alert|record): `).FindAllString(string(b), -1)
	var out strings.Builder
	out.WriteString(blocks[0])
	applied := map[string]bool{}
	forLine := regexp.MustCompile(`(?m)^(\s*for: )\S+$`)
	for i, blk := range blocks[1:] {
		name := strings.Fields(blk)[0]
		if o, ok := testRuleOverrides[name]; ok && strings.HasPrefix(heads[i], "      - alert") {
			if o.forDur != "" {
				if !forLine.MatchString(blk) {
					t.Fatalf("%s has no for to override", name)
				}
				blk = forLine.ReplaceAllString(blk, "${1}"+o.forDur)
			}
			n := 0
			for from, to := range o.windows {
				n += strings.Count(blk, from)
				blk = strings.ReplaceAll(blk, from, to)
			}
			if len(o.windows) > 0 && n == 0 {
				t.Fatalf("%s has none of the windows %v to override", name, o.windows)
			}
			applied[name] = true
		}
		out.WriteString(heads[i] + blk)
	}
	for name := range testRuleOverrides {
		if !applied[name] {
			t.Fatalf("override for %s: no such alert in %s", name, rulesPath)
		}
	}
	p := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(p, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := testpeer.Promtool(t, nil, "check", "rules", p); err != nil {
		t.Fatalf("promtool check rules on the test copy: %v\n%s", err, out)
	}
	return p
}

// webhookAlert is one alert of an Alertmanager webhook notification
// (payload version 4), with the time it arrived.
type webhookAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	received    time.Time
}

// webhook is the receiver Alertmanager notifies: it keeps every alert.
type webhook struct {
	mu     sync.Mutex
	alerts []webhookAlert
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var n struct {
		Version string         `json:"version"`
		Alerts  []webhookAlert `json:"alerts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil || n.Version != "4" {
		http.Error(rw, fmt.Sprintf("bad notification (version %q): %v", n.Version, err), http.StatusBadRequest)
		return
	}
	now := time.Now()
	w.mu.Lock()
	for _, a := range n.Alerts {
		a.received = now
		w.alerts = append(w.alerts, a)
	}
	w.mu.Unlock()
}

func (w *webhook) all() []webhookAlert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.alerts)
}

// first returns the first alert of status with alertname and the given
// labels, if one arrived.
func (w *webhook) first(status, alertname string, labels map[string]string) (webhookAlert, bool) {
	for _, a := range w.all() {
		if a.Status != status || a.Labels["alertname"] != alertname {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && a.Labels[k] == v
		}
		if match {
			return a, true
		}
	}
	return webhookAlert{}, false
}

// driver is an in-process target whose metrics the test drives into each
// alert's condition and out of it.
type driver struct {
	c    *otelcollector.Collector
	addr string
}

func startDriver(t *testing.T, addr string, limit int) *driver {
	t.Helper()
	exp, err := prometheus.New(prometheus.WithServer(addr))
	if err != nil {
		t.Fatal(err)
	}
	opts := []otelcollector.Option{otelcollector.WithExporter(exp)}
	if limit > 0 {
		opts = append(opts, otelcollector.WithCardinalityLimit(limit))
	}
	c, err := otelcollector.New(context.Background(), opts...)
	if err != nil {
		t.Fatal(errors.Join(err, exp.Shutdown(context.Background())))
	}
	d := &driver{c: c, addr: exp.Addr()}
	ctx := context.Background()
	// A healthy daemon: a session, some traffic, a cool node, a small
	// budget share.
	if err := errors.Join(
		c.RecordSessionStart(ctx, "orch-driver", "claude-code"),
		c.RecordTokenUsage(ctx, "orch-driver", "claude-sonnet", 500),
		c.RecordMessageLatency(ctx, "orch-driver", 800*time.Millisecond),
		c.RecordToolInvocation(ctx, "orch-driver", "bash", otelcollector.ToolSuccess),
		c.UpdateNodeLoad("node-hot", 0.5),
		c.UpdateBudgetUtilization("orch-driver", otelcollector.PeriodDaily, 10),
	); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *driver) close(t *testing.T) {
	t.Helper()
	if err := d.c.Close(context.Background()); err != nil && !errors.Is(err, otelcollector.ErrClosed) {
		t.Error(err)
	}
}

// expectedAlert is one alert the test drives: which labels it must carry,
// how to raise it and how to end it.
type expectedAlert struct {
	name   string
	labels map[string]string // besides alertname, severity, job, instance
	raise  func() error
	end    func() error // nil: the condition ends by itself
}

// TestE2EAlertsThroughAlertmanager runs the rules of rules.yml (a test copy
// with shorter `for` and windows, testRuleOverrides) on a real Prometheus
// that sends its alerts to a real Alertmanager (clustering off), which
// notifies a webhook receiver in this test. It drives one target into the
// condition of each alert it can reach quickly (rejected records, overflow,
// node load, budget, a target down) and asserts that each alert arrives
// with its labels (severity, job, instance, and orchestrator_id where the
// alert has one) and annotations (summary, description, runbook_url), and
// that it resolves once the condition ends. A healthy quickstart, scraped
// by the same Prometheus, must raise nothing over the test's duration. The
// time from each trigger to the webhook is logged (docs/reliability.md);
// it is never asserted.
func TestE2EAlertsThroughAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus, Alertmanager and the quickstart")
	}
	// Its own engines and daemons on ports of their own: it runs beside
	// the package's other end-to-end tests, which mostly wait on scrapes.
	t.Parallel()
	rules := testRules(t)
	hook := &webhook{}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	am := testpeer.StartAlertmanager(t, testpeer.AlertmanagerOptions{WebhookURL: srv.URL + "/alerts"})

	quickstart := startQuickstart(t)
	drv := startDriver(t, "127.0.0.1:0", 4)
	t.Cleanup(func() { drv.close(t) })
	doomed := startDriver(t, "127.0.0.1:0", 0)
	doomedAddr := doomed.addr
	var reborn *driver
	t.Cleanup(func() {
		doomed.close(t)
		if reborn != nil {
			reborn.close(t)
		}
	})

	prom := testpeer.StartPrometheus(t, testpeer.PrometheusOptions{
		Targets:       []string{quickstart, drv.addr, doomedAddr},
		RuleFiles:     []string{rules},
		Alertmanagers: []string{am.Addr},
	})
	// Every target scraped, the library's counters of the driver seen at
	// 0, and the rules loaded and evaluated: the rejection and overflow
	// below are then increases of a known series.
	testpeer.Eventually(t, 60*time.Second, func() error {
		for _, q := range []string{
			`count(up == 1) == 3`,
			fmt.Sprintf(`orchestrator_collector_rejected_total{instance=%q}`, drv.addr),
			`job:orchestrator_daemons:count == 3`,
		} {
			s, err := prom.Query(q)
			if err != nil {
				return err
			}
			if len(s) == 0 {
				return fmt.Errorf("no result yet for %s", q)
			}
		}
		return nil
	})

	ctx := context.Background()
	alerts := []expectedAlert{
		{
			name:   "OrchestratorCollectorRejectingRecords",
			labels: map[string]string{"reason": ""}, // any reason, but one
			raise: func() error {
				if err := drv.c.RecordTokenUsage(ctx, "", "claude-sonnet", 1); err == nil {
					return errors.New("a record with an empty orchestrator ID was accepted")
				}
				return nil
			},
		},
		{
			name:   "OrchestratorCollectorCardinalityOverflow",
			labels: map[string]string{"metric": "orchestrator.errors"},
			raise: func() error {
				var errs []error
				for i := range 6 {
					errs = append(errs, drv.c.RecordError(ctx, "orch-driver", fmt.Sprintf("type-%d", i)))
				}
				return errors.Join(errs...)
			},
		},
		{
			name:   "OrchestratorNodeLoadHigh",
			labels: map[string]string{"node_id": "node-hot"},
			raise:  func() error { return drv.c.UpdateNodeLoad("node-hot", 0.95) },
			end:    func() error { return drv.c.UpdateNodeLoad("node-hot", 0.2) },
		},
		{
			name:   "OrchestratorBudgetUtilizationHigh",
			labels: map[string]string{"orchestrator_id": "orch-driver", "period": "daily"},
			raise: func() error {
				return drv.c.UpdateBudgetUtilization("orch-driver", otelcollector.PeriodDaily, 95)
			},
			end: func() error { return drv.c.UpdateBudgetUtilization("orch-driver", otelcollector.PeriodDaily, 10) },
		},
		{
			name:  "OrchestratorDown",
			raise: func() error { doomed.close(t); return nil },
			end: func() error {
				// The same address again: the target is back.
				reborn = startDriver(t, doomedAddr, 0)
				return nil
			},
		},
	}
	instanceOf := func(a expectedAlert) string {
		if a.name == "OrchestratorDown" {
			return doomedAddr
		}
		return drv.addr
	}
	wantLabels := func(a expectedAlert) map[string]string {
		l := map[string]string{"job": "orchestrator", "instance": instanceOf(a)}
		for k, v := range a.labels {
			if v != "" {
				l[k] = v
			}
		}
		return l
	}

	raised := map[string]time.Time{}
	for _, a := range alerts {
		raised[a.name] = time.Now()
		if err := a.raise(); err != nil {
			t.Fatalf("%s: raising: %v", a.name, err)
		}
	}
	fired := map[string]webhookAlert{}
	testpeer.Eventually(t, 120*time.Second, func() error {
		var missing []string
		for _, a := range alerts {
			if _, ok := fired[a.name]; ok {
				continue
			}
			if w, ok := hook.first("firing", a.name, wantLabels(a)); ok {
				fired[a.name] = w
				continue
			}
			missing = append(missing, a.name)
		}
		if len(missing) > 0 {
			return fmt.Errorf("not notified yet: %v (received %d alerts)", missing, len(hook.all()))
		}
		return nil
	})
	for _, a := range alerts {
		w := fired[a.name]
		checkAlert(t, a, w)
		t.Logf("%s: trigger to webhook (firing) %v", a.name, w.received.Sub(raised[a.name]).Round(100*time.Millisecond))
	}

	ended := map[string]time.Time{}
	for _, a := range alerts {
		ended[a.name] = time.Now()
		if a.end != nil {
			if err := a.end(); err != nil {
				t.Fatalf("%s: ending: %v", a.name, err)
			}
		}
	}
	resolved := map[string]webhookAlert{}
	testpeer.Eventually(t, 120*time.Second, func() error {
		var missing []string
		for _, a := range alerts {
			if _, ok := resolved[a.name]; ok {
				continue
			}
			if w, ok := hook.first("resolved", a.name, wantLabels(a)); ok {
				resolved[a.name] = w
				continue
			}
			missing = append(missing, a.name)
		}
		if len(missing) > 0 {
			return fmt.Errorf("not resolved yet: %v", missing)
		}
		return nil
	})
	for _, a := range alerts {
		from, at := "its end", ended[a.name]
		if a.end == nil {
			// The condition ends by itself once the last bad record
			// leaves the (test copy's) 15 s window.
			from, at = "the last bad record, 15 s window", raised[a.name]
		}
		t.Logf("%s: from %s to webhook (resolved) %v", a.name, from, resolved[a.name].received.Sub(at).Round(100*time.Millisecond))
	}

	// Nothing else: no alert for the healthy quickstart, and none but the
	// driven ones for the driven targets.
	var unexpected []string
	for _, w := range hook.all() {
		ok := false
		for _, a := range alerts {
			if w.Labels["alertname"] == a.name && w.Labels["instance"] == instanceOf(a) {
				ok = true
			}
		}
		if !ok {
			unexpected = append(unexpected, fmt.Sprintf("%s %s %v", w.Status, w.Labels["alertname"], w.Labels))
		}
	}
	sort.Strings(unexpected)
	if len(unexpected) > 0 {
		t.Errorf("alerts nobody drove (the quickstart is %s):\n%s", quickstart, strings.Join(unexpected, "\n"))
	}
}

// checkAlert checks a firing notification's labels and annotations against
// the rule: the severity, the labels the test expects, an annotation
// summary and description with every template resolved, and a runbook_url
// to the alert's section of runbook.md.
func checkAlert(t *testing.T, a expectedAlert, w webhookAlert) {
	t.Helper()
	wantSeverity := map[string]string{"OrchestratorDown": "critical"}[a.name]
	if wantSeverity == "" {
		wantSeverity = "warning"
	}
	if got := w.Labels["severity"]; got != wantSeverity {
		t.Errorf("%s: severity %q, want %q", a.name, got, wantSeverity)
	}
	for k, v := range a.labels {
		if got, ok := w.Labels[k]; !ok || (v != "" && got != v) || got == "" {
			t.Errorf("%s: label %s = %q, want %q", a.name, k, got, v)
		}
	}
	for _, k := range []string{"summary", "description"} {
		s := w.Annotations[k]
		if s == "" || strings.Contains(s, "{{") || strings.Contains(s, "<no value>") {
			t.Errorf("%s: annotation %s = %q", a.name, k, s)
		}
		if !strings.Contains(s, w.Labels["instance"]) && k == "description" {
			t.Errorf("%s: description does not name the instance: %q", a.name, s)
		}
	}
	if want := "https://github.com/wundr-io/orchestrator-otel/blob/main/docs/runbook.md#" + strings.ToLower(a.name); w.Annotations["runbook_url"] != want {
		t.Errorf("%s: runbook_url %q, want %q", a.name, w.Annotations["runbook_url"], want)
	}
	if w.StartsAt.IsZero() {
		t.Errorf("%s: no startsAt", a.name)
	}
}
