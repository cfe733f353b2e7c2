package otelcollector_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// The GenAI semantic conventions' recommended bucket bounds, written out
// here rather than taken from internal/schema so that a change there fails.
var (
	wantTokenBounds    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	wantDurationBounds = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
)

func TestRecordTokenUsageDetailedGenAI(t *testing.T) {
	c, r := newTestCollector(t, otelcollector.WithGenAIMetrics())
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.RecordTokenUsageDetailed(ctx, "orch-1", otelcollector.TokenUsage{
		Model: "claude-sonnet", Provider: "anthropic", Input: 1000, Output: 200, Duration: 1500 * time.Millisecond,
	}))
	must(c.RecordTokenUsageDetailed(ctx, "orch-1", otelcollector.TokenUsage{
		Model: "claude-sonnet", Provider: "anthropic", Input: 3, Output: 0, Duration: 0,
	}))
	// No provider: the attribute is left out. Another operation.
	must(c.RecordTokenUsageDetailed(ctx, "orch-2", otelcollector.TokenUsage{
		Model: "local-llama", Operation: "text_completion", Input: 10, Output: 20, Duration: 30 * time.Millisecond,
	}))

	ms := collect(t, r)

	// Legacy counter: Input+Output per orchestrator and model.
	if v, _ := intValue(ms["orchestrator.tokens.used"], set("orchestrator_id", "orch-1", "model", "claude-sonnet")); v != 1203 {
		t.Errorf("orchestrator.tokens.used orch-1 = %d, want 1203", v)
	}
	if v, _ := intValue(ms["orchestrator.tokens.used"], set("orchestrator_id", "orch-2", "model", "local-llama")); v != 30 {
		t.Errorf("orchestrator.tokens.used orch-2 = %d, want 30", v)
	}

	tok := ms["gen_ai.client.token.usage"]
	if tok.Unit != "{token}" {
		t.Errorf("token usage unit %q, want {token}", tok.Unit)
	}
	th, ok := tok.Data.(metricdata.Histogram[int64])
	if !ok {
		t.Fatalf("gen_ai.client.token.usage is %T, want Histogram[int64]", tok.Data)
	}
	anthropic := func(tt string) attribute.Set {
		return set("gen_ai.operation.name", "chat", "gen_ai.request.model", "claude-sonnet",
			"gen_ai.provider.name", "anthropic", "gen_ai.token.type", tt)
	}
	local := func(tt string) attribute.Set {
		return set("gen_ai.operation.name", "text_completion", "gen_ai.request.model", "local-llama", "gen_ai.token.type", tt)
	}
	wantTok := []struct {
		attrs      attribute.Set
		count, sum uint64
	}{
		{anthropic("input"), 2, 1003},
		{anthropic("output"), 2, 200},
		{local("input"), 1, 10},
		{local("output"), 1, 20},
	}
	if len(th.DataPoints) != len(wantTok) {
		t.Errorf("token usage has %d series, want %d", len(th.DataPoints), len(wantTok))
	}
	for _, w := range wantTok {
		dp, ok := findHist(th.DataPoints, w.attrs)
		if !ok {
			t.Errorf("no token usage series %v", w.attrs.Encoded(attribute.DefaultEncoder()))
			continue
		}
		if dp.Count != w.count || uint64(dp.Sum) != w.sum {
			t.Errorf("token usage %v: count %d sum %d, want %d %d", w.attrs.Encoded(attribute.DefaultEncoder()), dp.Count, dp.Sum, w.count, w.sum)
		}
		if !slices.Equal(dp.Bounds, wantTokenBounds) {
			t.Errorf("token usage bounds %v, want %v", dp.Bounds, wantTokenBounds)
		}
	}

	dur := ms["gen_ai.client.operation.duration"]
	if dur.Unit != "s" {
		t.Errorf("operation duration unit %q, want s", dur.Unit)
	}
	dh, ok := dur.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("gen_ai.client.operation.duration is %T, want Histogram[float64]", dur.Data)
	}
	// The call with Duration 0 recorded no duration.
	if len(dh.DataPoints) != 2 {
		t.Errorf("operation duration has %d series, want 2", len(dh.DataPoints))
	}
	for _, w := range []struct {
		attrs attribute.Set
		sum   float64
	}{
		{set("gen_ai.operation.name", "chat", "gen_ai.request.model", "claude-sonnet", "gen_ai.provider.name", "anthropic"), 1.5},
		{set("gen_ai.operation.name", "text_completion", "gen_ai.request.model", "local-llama"), 0.03},
	} {
		dp, ok := findHist(dh.DataPoints, w.attrs)
		if !ok {
			t.Errorf("no operation duration series %v", w.attrs.Encoded(attribute.DefaultEncoder()))
			continue
		}
		if dp.Count != 1 || math.Abs(dp.Sum-w.sum) > 1e-9 {
			t.Errorf("operation duration %v: count %d sum %v, want 1 %v", w.attrs.Encoded(attribute.DefaultEncoder()), dp.Count, dp.Sum, w.sum)
		}
		if !slices.Equal(dp.Bounds, wantDurationBounds) {
			t.Errorf("operation duration bounds %v, want %v", dp.Bounds, wantDurationBounds)
		}
	}
}

func findHist[N int64 | float64](dps []metricdata.HistogramDataPoint[N], attrs attribute.Set) (metricdata.HistogramDataPoint[N], bool) {
	for _, dp := range dps {
		if dp.Attributes.Equals(&attrs) {
			return dp, true
		}
	}
	return metricdata.HistogramDataPoint[N]{}, false
}

// TestRecordTokenUsageDetailedWithoutGenAI: without the option the call
// feeds only the legacy counter and no GenAI instrument exists.
func TestRecordTokenUsageDetailedWithoutGenAI(t *testing.T) {
	c, r := newTestCollector(t)
	err := c.RecordTokenUsageDetailed(context.Background(), "orch-1", otelcollector.TokenUsage{Model: "m", Input: 4, Output: 5, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ms := collect(t, r)
	if v, _ := intValue(ms["orchestrator.tokens.used"], set("orchestrator_id", "orch-1", "model", "m")); v != 9 {
		t.Errorf("orchestrator.tokens.used = %d, want 9", v)
	}
	for name := range ms {
		if strings.HasPrefix(name, "gen_ai.") {
			t.Errorf("%s emitted without WithGenAIMetrics", name)
		}
	}
}

func TestRecordTokenUsageDetailedBadInput(t *testing.T) {
	valid := otelcollector.TokenUsage{Model: "m", Provider: "openai", Input: 1, Output: 1, Duration: time.Second}
	with := func(f func(*otelcollector.TokenUsage)) otelcollector.TokenUsage {
		u := valid
		f(&u)
		return u
	}
	testCases := []struct {
		name  string
		orch  string
		usage otelcollector.TokenUsage
		want  error
		field string
	}{
		{"empty orchestrator", "", valid, otelcollector.ErrInvalidLabel, "orchestratorID"},
		{"empty model", "o", with(func(u *otelcollector.TokenUsage) { u.Model = "" }), otelcollector.ErrInvalidLabel, "model"},
		{"negative input", "o", with(func(u *otelcollector.TokenUsage) { u.Input = -1 }), otelcollector.ErrInvalidValue, "Input"},
		{"negative output", "o", with(func(u *otelcollector.TokenUsage) { u.Output = -1 }), otelcollector.ErrInvalidValue, "Output"},
		{"sum overflows", "o", with(func(u *otelcollector.TokenUsage) { u.Input, u.Output = math.MaxInt64, 1 }), otelcollector.ErrInvalidValue, "Input+Output"},
		{"negative duration", "o", with(func(u *otelcollector.TokenUsage) { u.Duration = -time.Nanosecond }), otelcollector.ErrInvalidValue, "Duration"},
		{"invalid UTF-8 provider", "o", with(func(u *otelcollector.TokenUsage) { u.Provider = "\xff" }), otelcollector.ErrInvalidLabel, "Provider"},
		{"long operation", "o", with(func(u *otelcollector.TokenUsage) { u.Operation = strings.Repeat("x", otelcollector.MaxLabelBytes+1) }), otelcollector.ErrInvalidLabel, "Operation"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			c, r := newTestCollector(t, otelcollector.WithGenAIMetrics())
			err := c.RecordTokenUsageDetailed(context.Background(), tc.orch, tc.usage)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v, want %v naming %s", err, tc.want, tc.field)
			}
			if c.Rejected() != 1 {
				t.Errorf("Rejected() = %d, want 1", c.Rejected())
			}
			ms := collect(t, r)
			if n := seriesCount(ms["orchestrator.tokens.used"]); n > 0 {
				t.Errorf("tokens counter has %d series after a rejected record", n)
			}
			for _, name := range []string{"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} {
				if h, ok := ms[name].Data.(metricdata.Histogram[int64]); ok && len(h.DataPoints) > 0 {
					t.Errorf("%s recorded a rejected record", name)
				}
				if h, ok := ms[name].Data.(metricdata.Histogram[float64]); ok && len(h.DataPoints) > 0 {
					t.Errorf("%s recorded a rejected record", name)
				}
			}
		})
	}

	t.Run("after Close", func(t *testing.T) {
		c, _ := newTestCollector(t, otelcollector.WithGenAIMetrics())
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := c.RecordTokenUsageDetailed(context.Background(), "o", valid); !errors.Is(err, otelcollector.ErrClosed) {
			t.Fatalf("after Close: %v, want ErrClosed", err)
		}
	})
}

// TestGenAILegacySeriesUnchanged scrapes two Collectors fed the same
// workload, one with WithGenAIMetrics and RecordTokenUsageDetailed, one
// without the option and with RecordTokenUsage: once the gen_ai_* families
// are removed, the two scrapes are byte for byte the same.
func TestGenAILegacySeriesUnchanged(t *testing.T) {
	workload := func(c *otelcollector.Collector, detailed bool) {
		ctx := context.Background()
		tokens := func(orch, model string, in, out int64) {
			var err error
			if detailed {
				err = c.RecordTokenUsageDetailed(ctx, orch, otelcollector.TokenUsage{
					Model: model, Provider: "anthropic", Input: in, Output: out, Duration: 700 * time.Millisecond,
				})
			} else {
				err = c.RecordTokenUsage(ctx, orch, model, in+out)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, err := range []error{
			c.RecordSessionStart(ctx, "orch-1", "claude-code"),
			c.RecordMessageLatency(ctx, "orch-1", 250*time.Millisecond),
			c.RecordToolInvocation(ctx, "orch-1", "bash", otelcollector.ToolTimeout),
			c.RecordDelegation(ctx, "orch-1", "orch-2", otelcollector.DelegationSuccess),
			c.RecordError(ctx, "orch-1", "rate_limit"),
			c.UpdateNodeLoad("node-a", 0.75),
			c.UpdateBudgetUtilization("orch-1", otelcollector.PeriodMonthly, 42.5),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		tokens("orch-1", "claude-sonnet", 1000, 500)
		tokens("orch-1", "claude-sonnet", 30, 0)
		tokens("orch-2", "claude-haiku", 7, 9)
		_ = c.RecordTokenUsage(ctx, "orch-1", "claude-sonnet", -1) // one rejection in both
	}
	scrapeOf := func(detailed bool, opts ...otelcollector.Option) string {
		exp, err := prometheus.New()
		if err != nil {
			t.Fatal(err)
		}
		c, err := otelcollector.New(context.Background(), append(opts, otelcollector.WithExporter(exp))...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		workload(c, detailed)
		return scrapeText(t, exp.Handler(), "")
	}

	legacy := scrapeOf(false)
	withGenAI := scrapeOf(true, otelcollector.WithGenAIMetrics())

	var kept, genai []string
	for _, line := range strings.SplitAfter(withGenAI, "\n") {
		if strings.HasPrefix(line, "gen_ai_") || strings.HasPrefix(line, "# HELP gen_ai_") || strings.HasPrefix(line, "# TYPE gen_ai_") ||
			strings.Contains(line, `{metric="gen_ai.`) {
			genai = append(genai, line)
			continue
		}
		kept = append(kept, line)
	}
	if got := strings.Join(kept, ""); got != legacy {
		t.Errorf("legacy series changed with WithGenAIMetrics:\n--- with, gen_ai_* removed\n%s\n--- without\n%s", got, legacy)
	}
	all := strings.Join(genai, "")
	for _, want := range []string{
		"# TYPE gen_ai_client_token_usage histogram",
		`gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet",gen_ai_token_type="input",le="64"} 1`,
		`gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet",gen_ai_token_type="input",le="1024"} 2`,
		`gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet",gen_ai_token_type="output"} 500`,
		`gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-haiku",gen_ai_token_type="input"} 1`,
		"# TYPE gen_ai_client_operation_duration_seconds histogram",
		`gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet",le="0.64"} 0`,
		`gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet",le="1.28"} 2`,
		`gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet",le="81.92"} 2`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("GenAI scrape lacks %s\n%s", want, all)
		}
	}
}

// scrapeText serves one scrape from h, with the given Accept header if not
// empty.
func scrapeText(t *testing.T, h http.Handler, accept string) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// TestRecordTokenUsageDetailedAllocs: once a tuple has been seen, a
// detailed record allocates nothing, with and without the GenAI metrics.
func TestRecordTokenUsageDetailedAllocs(t *testing.T) {
	if raceDetector {
		t.Skip("allocation counts are not meaningful under -race")
	}
	for _, opts := range [][]otelcollector.Option{nil, {otelcollector.WithGenAIMetrics()}} {
		c, _ := newTestCollector(t, opts...)
		ctx := context.Background()
		u := otelcollector.TokenUsage{Model: "claude-sonnet", Provider: "anthropic", Input: 100, Output: 20, Duration: time.Second}
		if err := c.RecordTokenUsageDetailed(ctx, "orch-1", u); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() { _ = c.RecordTokenUsageDetailed(ctx, "orch-1", u) }); n != 0 {
			t.Errorf("options %d: %v allocs per RecordTokenUsageDetailed, want 0", len(opts), n)
		}
	}
}

// FuzzRecordTokenUsageDetailed: no panic, nil exactly for valid input, and
// each rejection counted once.
func FuzzRecordTokenUsageDetailed(f *testing.F) {
	f.Add("orch-1", "claude-sonnet", "anthropic", "", int64(10), int64(5), int64(time.Second))
	f.Add("", "m", "", "chat", int64(-1), int64(0), int64(0))
	f.Add("o", "m", "\xff", "", int64(math.MaxInt64), int64(1), int64(-1))
	f.Add("o", "\xfe", "p", strings.Repeat("x", 257), int64(0), int64(0), int64(0))
	c, err := otelcollector.New(context.Background(), otelcollector.WithGenAIMetrics())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Close(context.Background()) })
	optional := func(s string) bool { return s == "" || validLabel(s) }
	// As in FuzzRecord: tokens add up across inputs in the one Collector, so
	// a record is rightly rejected when it may take its series past
	// MaxInt64; accepted bounds every series' value.
	var accepted atomic.Int64
	f.Fuzz(func(t *testing.T, id, model, provider, operation string, in, out, dur int64) {
		u := otelcollector.TokenUsage{Model: model, Provider: provider, Operation: operation, Input: in, Output: out, Duration: time.Duration(dur)}
		valid := validLabel(id) && validLabel(model) && optional(provider) && optional(operation) &&
			in >= 0 && out >= 0 && in <= math.MaxInt64-out && dur >= 0
		before := c.Rejected()
		err := c.RecordTokenUsageDetailed(context.Background(), id, u)
		if valid && errors.Is(err, otelcollector.ErrInvalidValue) && in+out > math.MaxInt64-accepted.Load() {
			valid = false // may overflow a series: rejecting is right, and counted
		} else if valid && err == nil {
			accepted.Store(satAdd(accepted.Load(), in+out))
		}
		if valid != (err == nil) {
			t.Fatalf("RecordTokenUsageDetailed(%q, %+v) = %v, valid %v", id, u, err, valid)
		}
		if err != nil && !errors.Is(err, otelcollector.ErrInvalidLabel) && !errors.Is(err, otelcollector.ErrInvalidValue) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		want := before
		if !valid {
			want++
		}
		if got := c.Rejected(); got != want {
			t.Fatalf("Rejected() went from %d to %d, want %d", before, got, want)
		}
	})
}

// TestRecordTokenUsageDetailedConcurrentSafe records from several
// goroutines over more (model, provider) tuples than the cardinality limit:
// the sums of the legacy counter and of the GenAI histogram, overflow
// series included, are exact.
func TestRecordTokenUsageDetailedConcurrentSafe(t *testing.T) {
	c, r := newTestCollector(t, otelcollector.WithGenAIMetrics(), otelcollector.WithCardinalityLimit(8))
	const goroutines, perG, models = 8, 500, 20
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				u := otelcollector.TokenUsage{
					Model: fmt.Sprintf("model-%02d", (g*perG+i)%models), Provider: "p",
					Input: 3, Output: 2, Duration: time.Millisecond,
				}
				if err := c.RecordTokenUsageDetailed(context.Background(), "orch-1", u); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	ms := collect(t, r)
	var legacy int64
	for _, dp := range ms["orchestrator.tokens.used"].Data.(metricdata.Sum[int64]).DataPoints {
		legacy += dp.Value
	}
	var genaiSum int64
	var genaiCount uint64
	for _, dp := range ms["gen_ai.client.token.usage"].Data.(metricdata.Histogram[int64]).DataPoints {
		genaiSum += dp.Sum
		genaiCount += dp.Count
	}
	var durCount uint64
	for _, dp := range ms["gen_ai.client.operation.duration"].Data.(metricdata.Histogram[float64]).DataPoints {
		durCount += dp.Count
	}
	const n = goroutines * perG
	if legacy != 5*n || genaiSum != 5*n || genaiCount != 2*n || durCount != n {
		t.Errorf("legacy %d, GenAI token sum %d count %d, duration count %d; want %d, %d, %d, %d",
			legacy, genaiSum, genaiCount, durCount, 5*n, 5*n, 2*n, n)
	}
}
