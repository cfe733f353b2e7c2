// Package docs_test checks the artefacts in docs/ against the real thing:
// the Grafana dashboard's queries, the Prometheus rules and every query of
// promql.md run on a real Prometheus server that scrapes the quickstart.
package docs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

const (
	dashboardPath = "grafana/orchestrator-overview.json"
	rulesPath     = "prometheus/rules.yml"
	rulesTestPath = "prometheus/rules_test.yml"
	rulesLongPath = "prometheus/rules_long_test.yml"
	promqlPath    = "promql.md"
)

// Grafana's built-in variables, replaced by short windows so that rate()
// has samples a few seconds after Prometheus starts (it scrapes every
// second). The docs themselves use 5m windows.
var builtins = strings.NewReplacer(
	"${__rate_interval}", "30s", "$__rate_interval", "30s",
	"${__interval}", "5s", "$__interval", "5s",
	"${__range}", "1m", "$__range", "1m",
)

// TestE2EDashboardRulesAndQueries starts a fleet: the quickstart binary
// twice (two instances of one job, so that the dashboard's instance
// variable has something to tell apart), a third in-process target with
// the GenAI metrics and a cardinality overflow, and one Prometheus server
// with rules.yml loaded that scrapes all three. Then every
// query of the dashboard (with its variables resolved the way Grafana
// would, both for one value and for All), every recording rule and every
// query of promql.md must be valid and return data. promtool checks and
// unit-tests the rules.
func TestE2EDashboardRulesAndQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus and the quickstart")
	}
	// Its own engines and daemons on ports of their own: it runs beside
	// the package's other end-to-end tests, which mostly wait on scrapes.
	t.Parallel()
	rules := absPath(t, rulesPath)

	// The static checks first: they need no server.
	if out, err := testpeer.Promtool(t, nil, "check", "rules", rules); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := testpeer.Promtool(t, nil, "test", "rules", absPath(t, rulesTestPath), absPath(t, rulesLongPath)); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	dash := loadDashboard(t)
	docQueries := promqlBlocks(t, promqlPath, 20)
	// The runbook's queries name placeholders (HOST:PORT, ID), so they
	// need not return data, but they must parse.
	runbookQueries := promqlBlocks(t, runbookPath, 8)
	recorded := recordingRules(t, rules)
	for _, q := range append(dash.exprs(), docQueries...) {
		if err := lintPromQL(q); err != nil {
			t.Errorf("%v in\n%s", err, q)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	quickstart := startQuickstart(t)
	quickstart2 := startQuickstart(t)
	side := startSideTarget(t)
	checkQuickstartScrape(t, quickstart)
	prom := testpeer.StartPrometheus(t, testpeer.PrometheusOptions{
		Targets:   []string{quickstart, quickstart2, side},
		RuleFiles: []string{rules},
	})

	// Syntax errors do not depend on data: report them at once.
	var all []string
	all = append(all, recorded...)
	all = append(all, docQueries...)
	all = append(all, runbookQueries...)
	for _, q := range all {
		if _, err := prom.Query(q); err != nil {
			t.Errorf("invalid query: %v", err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("recording rules produce series", func(t *testing.T) {
		eventuallyAllReturnData(t, prom, recorded)
	})
	t.Run("dashboard", func(t *testing.T) {
		// Resolve the variables as Grafana does, in order (instance
		// depends on job, orchestrator_id on both, model on all three),
		// with the first value of each, except that the instance chosen
		// is the third target, which records into every panel's metric
		// (the quickstart overflows nothing)...
		one := map[string]string{}
		for _, v := range dash.queryVariables() {
			vals := eventuallyLabelValues(t, prom, v, one)
			if v.Name == "instance" {
				if !slices.Contains(vals, side) {
					t.Fatalf("variable instance: %v lacks %s", vals, side)
				}
				vals = []string{side}
			}
			one[v.Name] = promRegex(vals[0])
		}
		// ...and with All.
		allValues := map[string]string{}
		for _, v := range dash.queryVariables() {
			allValues[v.Name] = v.AllValue
		}
		var qs []string
		for _, vars := range []map[string]string{one, allValues} {
			for _, e := range dash.exprs() {
				qs = append(qs, substitute(t, e, vars))
			}
		}
		eventuallyAllReturnData(t, prom, qs)
	})
	t.Run("promql.md", func(t *testing.T) {
		eventuallyAllReturnData(t, prom, docQueries)
	})
	t.Run("dashboard tells instances apart", func(t *testing.T) {
		checkInstances(t, prom, dash, []string{quickstart, quickstart2, side})
	})
	t.Run("dashboard panel fixes", func(t *testing.T) {
		checkPanelFixes(t, prom, dash, side)
	})
}

// checkInstances: with instance = All the library's own panels (rejected
// records, overflow) show one series per daemon; with one instance chosen,
// no panel shows a series of another.
func checkInstances(t *testing.T, prom *testpeer.Prometheus, dash *dashboard, instances []string) {
	t.Helper()
	all := map[string]string{"job": ".*", "instance": ".*", "orchestrator_id": ".*", "model": ".*"}
	rejected := substitute(t, dash.panel(t, "Rejected records by reason").Targets[0].Expr, all)
	testpeer.Eventually(t, 60*time.Second, func() error {
		s, err := prom.Query(rejected)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, x := range s {
			seen[x.Labels["instance"]] = true
		}
		for _, in := range instances {
			if !seen[in] {
				return fmt.Errorf("rejected panel shows no series of %s (has %v)", in, seen)
			}
		}
		return nil
	})
	for _, in := range instances {
		one := map[string]string{"job": "orchestrator", "instance": promRegex(in), "orchestrator_id": ".*", "model": ".*"}
		for _, e := range dash.exprs() {
			q := substitute(t, e, one)
			s, err := prom.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range s {
				if got, ok := x.Labels["instance"]; ok && got != in {
					t.Errorf("instance %s selected, but %s shows a series of %s", in, q, got)
				}
			}
		}
	}
}

// checkPanelFixes: the stat "Tool failure ratio" shows 0, not no data, for
// an orchestrator that never failed; "Errors by type" labels its overflow
// series; no panel uses unit none; the budget bargauge does not clip values
// above 100.
func checkPanelFixes(t *testing.T, prom *testpeer.Prometheus, dash *dashboard, side string) {
	t.Helper()
	vars := map[string]string{"job": ".*", "instance": promRegex(side), "orchestrator_id": "orch-spotless", "model": ".*"}
	ratio := substitute(t, dash.panel(t, "Tool failure ratio").Targets[0].Expr, vars)
	testpeer.Eventually(t, 60*time.Second, func() error {
		s, err := prom.Query(ratio)
		if err != nil {
			return err
		}
		if len(s) != 1 || s[0].Value != 0 {
			return fmt.Errorf("tool failure ratio of orch-spotless: got %v, want one sample of 0", s)
		}
		return nil
	})
	// The overflow series has no orchestrator_id (every label is folded
	// into otel_metric_overflow="true"), so it shows under All.
	vars["orchestrator_id"] = ".*"
	errs := substitute(t, dash.panel(t, "Errors by type").Targets[0].Expr, vars)
	testpeer.Eventually(t, 60*time.Second, func() error {
		s, err := prom.Query(errs)
		if err != nil {
			return err
		}
		var overflow bool
		for _, x := range s {
			if x.Labels["error_type"] == "" {
				return fmt.Errorf("errors by type: a series with no error_type (an empty legend): %v", x.Labels)
			}
			overflow = overflow || x.Labels["otel_metric_overflow"] == "true"
		}
		if !overflow {
			return fmt.Errorf("errors by type shows no overflow series yet: %v", s)
		}
		return nil
	})
	for _, p := range dash.allPanels() {
		if p.FieldConfig.Defaults.Unit == "none" {
			t.Errorf("panel %q: unit none (shows 26553 for 26.6 K); use short", p.Title)
		}
	}
	if m := dash.panel(t, "Budget utilization").FieldConfig.Defaults.Max; m != nil && *m <= 100 {
		t.Errorf("budget panel: max %v clips over-budget values", *m)
	}
}

func absPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.FromSlash(rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// eventuallyAllReturnData polls until every query returns at least one
// sample, then reports the ones that never did.
func eventuallyAllReturnData(t *testing.T, prom *testpeer.Prometheus, queries []string) {
	t.Helper()
	pending := slices.Clone(queries)
	testpeer.Eventually(t, 60*time.Second, func() error {
		var errs []error
		next := pending[:0]
		for _, q := range pending {
			s, err := prom.Query(q)
			switch {
			case err != nil:
				errs = append(errs, err)
			case len(s) == 0:
				errs = append(errs, fmt.Errorf("no data: %s", q))
			default:
				continue
			}
			next = append(next, q)
		}
		pending = next
		return errors.Join(errs...)
	})
	t.Logf("%d queries returned data", len(queries))
}

// quickstartBuild is examples/quickstart built once for the test process:
// the tests that run it (three quickstarts in two tests) share the binary.
// TestMain removes it.
var quickstartBuild struct {
	once     sync.Once
	dir, bin string
	out      []byte
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if quickstartBuild.dir != "" {
		os.RemoveAll(quickstartBuild.dir)
	}
	os.Exit(code)
}

// quickstartBinary builds examples/quickstart on its first call.
func quickstartBinary(t *testing.T) string {
	t.Helper()
	goTool := testpeer.GoTool(t)
	b := &quickstartBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "docs-quickstart-"); b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, "quickstart")
		if runtime.GOOS == "windows" {
			b.bin += ".exe"
		}
		b.out, b.err = exec.Command(goTool, "build", "-o", b.bin, "../examples/quickstart").CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("building the quickstart: %v\n%s", b.err, b.out)
	}
	return b.bin
}

// startQuickstart runs examples/quickstart (built once, quickstartBinary)
// on a loopback port; it is interrupted (a clean shutdown) when the test
// ends.
func startQuickstart(t *testing.T) string {
	t.Helper()
	bin := quickstartBinary(t)
	var out syncBuffer
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-every", "1h")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("quickstart exited with %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("quickstart did not stop within 10 s of an interrupt")
		}
		if t.Failed() {
			t.Logf("quickstart output:\n%s", out.String())
		}
	})
	// It binds port 0 and prints the address it got.
	var addr string
	testpeer.Eventually(t, 30*time.Second, func() error {
		m := servingLine.FindStringSubmatch(out.String())
		if m == nil {
			return fmt.Errorf("quickstart printed no %q line yet", "serving metrics on")
		}
		addr = m[1]
		return nil
	})
	return addr
}

// servingLine is what the quickstart prints once it listens.
var servingLine = regexp.MustCompile(`serving metrics on http://(\S+)/metrics`)

// checkQuickstartScrape: the quickstart serves the Go runtime metrics too,
// and its whole scrape passes promtool check metrics.
func checkQuickstartScrape(t *testing.T, addr string) {
	t.Helper()
	var body []byte
	// The simulation records its first step 100 ms after start.
	testpeer.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if body, err = io.ReadAll(resp.Body); err != nil {
			return err
		}
		for _, want := range []string{"# TYPE go_goroutines gauge", "go_memory_used_bytes{", "# TYPE orchestrator_tokens_used_total counter"} {
			if !bytes.Contains(body, []byte(want)) {
				return fmt.Errorf("quickstart scrape lacks %q", want)
			}
		}
		return nil
	})
	// The whole scrape, runtime metrics included, passes promtool's lint
	// (go.goroutine.count is served as go_goroutines, not as a gauge with
	// a _count suffix).
	if out, err := testpeer.Promtool(t, body, "check", "metrics"); err != nil {
		t.Errorf("promtool check metrics on the quickstart scrape: %v\n%s", err, out)
	}
}

// startSideTarget serves, from this process, what the quickstart does not
// record: the GenAI metrics (WithGenAIMetrics, RecordTokenUsageDetailed)
// and a cardinality overflow (five error types with a limit of 4: three
// series and the overflow series).
func startSideTarget(t *testing.T) string {
	t.Helper()
	exp, err := prometheus.New(prometheus.WithServer("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcollector.New(context.Background(),
		otelcollector.WithExporter(exp),
		otelcollector.WithGenAIMetrics(),
		otelcollector.WithCardinalityLimit(4),
	)
	if err != nil {
		t.Fatal(errors.Join(err, exp.Shutdown(context.Background())))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, u := range []otelcollector.TokenUsage{
				{Model: "claude-sonnet", Provider: "anthropic", Input: int64(800 + i%400), Output: 150, Duration: 900 * time.Millisecond},
				{Model: "gpt-4o", Provider: "openai", Input: 300, Output: int64(50 + i%100), Duration: 400 * time.Millisecond},
			} {
				if err := c.RecordTokenUsageDetailed(ctx, "orch-genai", u); err != nil {
					t.Error(err)
					return
				}
			}
			if err := c.RecordError(ctx, "orch-genai", fmt.Sprintf("type-%d", i%5)); err != nil {
				t.Error(err)
				return
			}
			// The rest of the eight metrics, so that every panel has data
			// when this instance is the one chosen; orch-spotless's tools
			// never fail.
			status := otelcollector.ToolSuccess
			if i%4 == 0 {
				status = otelcollector.ToolError
			}
			errs := []error{
				c.RecordMessageLatency(ctx, "orch-genai", time.Duration(200+i%2000)*time.Millisecond),
				c.RecordToolInvocation(ctx, "orch-genai", "bash", status),
				c.RecordToolInvocation(ctx, "orch-spotless", "bash", otelcollector.ToolSuccess),
				c.RecordTokenUsage(ctx, "orch-spotless", "claude-haiku", 100),
				c.RecordDelegation(ctx, "orch-genai", "orch-spotless", otelcollector.DelegationSuccess),
				c.UpdateNodeLoad("node-side", 0.3),
				c.UpdateBudgetUtilization("orch-genai", otelcollector.PeriodDaily, 40),
			}
			if i == 0 {
				errs = append(errs, c.RecordSessionStart(ctx, "orch-genai", "claude-code"))
			}
			if err := errors.Join(errs...); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := c.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return exp.Addr()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// promqlBlocks returns the content of every ```promql block of the
// Markdown file at path, and fails if there are fewer than min.
func promqlBlocks(t *testing.T, path string, min int) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out   []string
		cur   []string
		in    bool
		start int
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case !in && strings.TrimSpace(line) == "```promql":
			in, cur, start = true, nil, n
		case in && strings.TrimSpace(line) == "```":
			in = false
			q := strings.TrimSpace(strings.Join(cur, "\n"))
			if q == "" {
				t.Errorf("%s:%d: empty promql block", path, start)
			}
			out = append(out, q)
		case in:
			cur = append(cur, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if in {
		t.Fatalf("%s:%d: promql block not closed", path, start)
	}
	if len(out) < min {
		t.Fatalf("%s has %d promql blocks; the extraction is probably broken", path, len(out))
	}
	return out
}

// recordingRules returns the name of every recording rule in rules.yml
// (each is queried by name and must produce a series).
func recordingRules(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- record:\s*(\S+)\s*$`).FindAllSubmatch(b, -1) {
		if n := string(m[1]); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) < 5 {
		t.Fatalf("found %d recording rules in %s, want at least 5", len(names), path)
	}
	return names
}

var (
	// rate() and friends take a counter: a _total, or a histogram's
	// _bucket, _count or _sum series (or a go_* runtime counter, _total).
	rangeCounterFunc = regexp.MustCompile(`\b(rate|irate|increase)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	counterSuffix    = regexp.MustCompile(`(_total|_bucket|_count|_sum)$`)
	// histogram_quantile over an aggregation must keep le.
	quantileAgg = regexp.MustCompile(`histogram_quantile\(\s*[0-9.]+\s*,\s*(sum|max|min|avg)\s+by\s*\(([^)]*)\)`)
)

// lintPromQL catches the classic mistakes Prometheus accepts silently:
// rate() over a gauge, histogram_quantile over an aggregation without le.
func lintPromQL(q string) error {
	for _, m := range rangeCounterFunc.FindAllStringSubmatch(q, -1) {
		if !counterSuffix.MatchString(m[2]) {
			return fmt.Errorf("%s() over %s, which is not a counter", m[1], m[2])
		}
	}
	if strings.Contains(q, "histogram_quantile(") {
		ms := quantileAgg.FindAllStringSubmatch(q, -1)
		if len(ms) != strings.Count(q, "histogram_quantile(") {
			return errors.New("histogram_quantile not directly over a sum by (le, ...)")
		}
		for _, m := range ms {
			if !slices.Contains(strings.FieldsFunc(m[2], func(r rune) bool { return r == ',' || r == ' ' }), "le") {
				return fmt.Errorf("histogram_quantile over %s by (%s) without le", m[1], m[2])
			}
		}
	}
	return nil
}

// dashboard is the part of a Grafana dashboard model the test reads.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	AllValue   string          `json:"allValue"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	Datasource *datasource     `json:"datasource"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels      []panel `json:"panels"` // a collapsed row's panels
	FieldConfig struct {
		Defaults struct {
			Unit string   `json:"unit"`
			Max  *float64 `json:"max"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

// panel returns the panel titled title.
func (d *dashboard) panel(t *testing.T, title string) panel {
	t.Helper()
	for _, p := range d.allPanels() {
		if p.Title == title {
			return p
		}
	}
	t.Fatalf("no panel %q", title)
	return panel{}
}

func (d *dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func (d *dashboard) exprs() []string {
	var out []string
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

func (d *dashboard) queryVariables() []variable {
	var out []variable
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, v)
		}
	}
	return out
}

// loadDashboard parses the dashboard and checks what an import needs: a
// Prometheus datasource variable that every panel and target uses, the
// orchestrator_id and model variables, the panels the dashboard promises,
// unique panel ids and a layout within Grafana's 24 columns.
func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard needs a uid and a title")
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if ds, ok := vars["datasource"]; !ok || ds.Type != "datasource" || string(ds.Query) != `"prometheus"` {
		t.Errorf("want a datasource variable of type prometheus, got %+v", ds)
	}
	for _, name := range []string{"job", "instance", "orchestrator_id", "model"} {
		v, ok := vars[name]
		if !ok {
			t.Errorf("no %s variable", name)
			continue
		}
		if _, _, err := parseLabelValues(v.Definition); err != nil {
			t.Errorf("variable %s: %v", name, err)
		}
		if !v.Multi || !v.IncludeAll || v.AllValue != ".*" {
			t.Errorf("variable %s: want multi-value with All = .*", name)
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s does not use the datasource variable", name)
		}
	}

	ids := map[int]bool{}
	var titles []string
	for _, p := range d.allPanels() {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X < 0 || p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos x=%d w=%d outside 24 columns", p.Title, p.GridPos.X, p.GridPos.W)
		}
		if p.Type == "row" {
			continue
		}
		titles = append(titles, p.Title)
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s: empty expr", p.Title, tg.RefID)
			}
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q target %s does not use the datasource variable", p.Title, tg.RefID)
			}
		}
	}
	for _, want := range []string{
		"Active sessions", "Token rate by model", "Message latency p50 / p95 / p99",
		"Tool invocations by status", "Tool failure ratio by tool", "Delegations between orchestrators",
		"Errors by type", "Node load", "Budget utilization",
		"Rejected records by reason", "Cardinality overflow by metric",
	} {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel %q", want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return &d
}

var labelValuesRe = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// parseLabelValues splits Grafana's label_values(selector, label).
func parseLabelValues(def string) (selector, label string, err error) {
	m := labelValuesRe.FindStringSubmatch(strings.TrimSpace(def))
	if m == nil {
		return "", "", fmt.Errorf("%q is not label_values(selector, label)", def)
	}
	return m[1], m[2], nil
}

// eventuallyLabelValues answers a label_values variable the way Grafana
// does, through the series it selects, and waits until it has values.
func eventuallyLabelValues(t *testing.T, prom *testpeer.Prometheus, v variable, vars map[string]string) []string {
	t.Helper()
	sel, label, err := parseLabelValues(v.Definition)
	if err != nil {
		t.Fatal(err)
	}
	q := substitute(t, fmt.Sprintf("group by (%s) (%s)", label, sel), vars)
	var vals []string
	testpeer.Eventually(t, 60*time.Second, func() error {
		s, err := prom.Query(q)
		if err != nil {
			return err
		}
		vals = vals[:0]
		for _, x := range s {
			vals = append(vals, x.Labels[label])
		}
		if len(vals) == 0 {
			return fmt.Errorf("variable %s: no values for %s", v.Name, q)
		}
		return nil
	})
	slices.Sort(vals)
	return vals
}

// substitute replaces Grafana's built-in and the dashboard's variables;
// anything left starting with $ is an unknown variable.
func substitute(t *testing.T, expr string, vars map[string]string) string {
	t.Helper()
	s := builtins.Replace(expr)
	for name, val := range vars {
		s = strings.ReplaceAll(s, "${"+name+"}", val)
		s = strings.ReplaceAll(s, "$"+name, val)
	}
	if strings.Contains(s, "$") {
		t.Fatalf("unresolved variable in %q", s)
	}
	return s
}

// promRegex quotes s as Grafana does for a regex variable in a Prometheus
// query: regex metacharacters escaped, then the backslashes escaped for the
// double-quoted PromQL string.
func promRegex(s string) string {
	return strings.ReplaceAll(regexp.QuoteMeta(s), `\`, `\\`)
}
