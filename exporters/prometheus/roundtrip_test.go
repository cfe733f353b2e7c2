package prometheus_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// parseScrape parses a text-format scrape with the Prometheus text parser.
func parseScrape(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects the scrape: %v\n%s", err, body)
	}
	return mfs
}

// findSeries returns the metric of family name whose labels include want.
func findSeries(mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
				break
			}
		}
		if match {
			return m
		}
	}
	return nil
}

// TestLabelEscapingRoundTrip records label values that the text format must
// escape, scrapes, parses the scrape with expfmt and finds each value again,
// byte for byte, on a series of its own with its exact value.
func TestLabelEscapingRoundTrip(t *testing.T) {
	testCases := []struct {
		name, value string
	}{
		{"double quote", `say "hi"`},
		{"lone quote", `"`},
		{"backslash", `C:\tools\grep`},
		{"lone backslash", `\`},
		{"trailing backslash", `model\`},
		{"escaped-looking", `a\"b\n`},
		{"newline", "line1\nline2"},
		{"lone newline", "\n"},
		{"carriage return", "a\rb"},
		{"tab", "a\tb"},
		{"braces and comma", `x{a="1",b="2"}`},
		{"hash", "# HELP fake"},
		{"equals", "k=v"},
		{"space only", " "},
		{"unicode", "größe-日本語-🚀"},
		{"combining", "e\u0301"},
		{"right-to-left", "\u202egpt"},
		{"NUL", "a\x00b"},
		{"max length", strings.Repeat("é", otelcollector.MaxLabelBytes/2)},
	}
	c, exp := newCollector(t)
	ctx := context.Background()
	for i, tc := range testCases {
		if err := c.RecordTokenUsage(ctx, "orch-esc", tc.value, int64(i+1)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := c.UpdateNodeLoad(tc.value, float64(i)/float64(len(testCases))); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	mfs := parseScrape(t, scrape(t, exp.Handler()))
	for i, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			m := findSeries(mfs, "orchestrator_tokens_used_total", map[string]string{"orchestrator_id": "orch-esc", "model": tc.value})
			if m == nil {
				t.Fatalf("no tokens series with model %q", tc.value)
			}
			if got := m.GetCounter().GetValue(); got != float64(i+1) {
				t.Errorf("tokens = %v, want %d", got, i+1)
			}
			g := findSeries(mfs, "orchestrator_node_load", map[string]string{"node_id": tc.value})
			if g == nil {
				t.Fatalf("no node load series with node_id %q", tc.value)
			}
			if got, want := g.GetGauge().GetValue(), float64(i)/float64(len(testCases)); got != want {
				t.Errorf("load = %v, want %v", got, want)
			}
		})
	}
	if n := len(mfs["orchestrator_tokens_used_total"].GetMetric()); n != len(testCases) {
		t.Errorf("%d token series, want %d (two values collapsed into one)", n, len(testCases))
	}
}

// FuzzExpositionRoundTrip records an arbitrary orchestrator ID, model and
// node ID with arbitrary values and scrapes: either the record returns an
// error wrapping an otelcollector sentinel (and the scrape is unchanged), or
// the scrape parses with the Prometheus text parser and carries exactly
// those labels and values. It never panics.
func FuzzExpositionRoundTrip(f *testing.F) {
	f.Add("orch-1", "claude-sonnet", int64(1200), 0.5)
	f.Add(`o"1`, "a\\b\nc", int64(0), 1.0)
	f.Add("日本", "🚀", int64(math.MaxInt64), 0.0)
	f.Add("", "m", int64(-1), math.NaN())
	f.Add("o", "\xff", int64(7), 1.5)
	f.Add("o", strings.Repeat("x", 257), int64(7), 0.25)
	f.Add("\x00", "\r\t", int64(1<<53+1), 5e-324)
	f.Fuzz(func(t *testing.T, id, model string, tokens int64, load float64) {
		exp, err := prometheus.New()
		if err != nil {
			t.Fatal(err)
		}
		c, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		ctx := context.Background()

		tokErr := c.RecordTokenUsage(ctx, id, model, tokens)
		loadErr := c.UpdateNodeLoad(model, load)
		for _, err := range []error{tokErr, loadErr} {
			if err != nil && !errors.Is(err, otelcollector.ErrInvalidLabel) && !errors.Is(err, otelcollector.ErrInvalidValue) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
		}
		labelsOK := fuzzValidLabel(id) && fuzzValidLabel(model)
		if labelsOK && tokens >= 0 && tokErr != nil {
			t.Fatalf("RecordTokenUsage(%q, %q, %d): %v", id, model, tokens, tokErr)
		}
		if tokErr == nil && (!labelsOK || tokens < 0) {
			t.Fatalf("RecordTokenUsage(%q, %q, %d) accepted bad input", id, model, tokens)
		}
		loadOK := fuzzValidLabel(model) && !math.IsNaN(load) && load >= 0 && load <= 1
		if (loadErr == nil) != loadOK {
			t.Fatalf("UpdateNodeLoad(%q, %v): %v", model, load, loadErr)
		}

		mfs := parseScrape(t, scrape(t, exp.Handler()))
		m := findSeries(mfs, "orchestrator_tokens_used_total", map[string]string{"orchestrator_id": id, "model": model})
		switch {
		case tokErr == nil && m == nil:
			t.Fatalf("accepted tokens for (%q, %q) missing from the scrape", id, model)
		case tokErr == nil && m.GetCounter().GetValue() != float64(tokens):
			t.Fatalf("tokens = %v, want %v", m.GetCounter().GetValue(), float64(tokens))
		case tokErr != nil && len(mfs["orchestrator_tokens_used_total"].GetMetric()) != 0:
			t.Fatalf("a rejected record created a series")
		}
		g := findSeries(mfs, "orchestrator_node_load", map[string]string{"node_id": model})
		switch {
		case loadErr == nil && (g == nil || g.GetGauge().GetValue() != load):
			t.Fatalf("node load for %q: %v, want %v", model, g, load)
		case loadErr != nil && len(mfs["orchestrator_node_load"].GetMetric()) != 0:
			t.Fatalf("a rejected load created a series")
		}
	})
}

func fuzzValidLabel(s string) bool {
	return s != "" && len(s) <= otelcollector.MaxLabelBytes && utf8.ValidString(s)
}
