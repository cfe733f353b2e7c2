package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const sample = `groups:
  - name: g
    rules:
      - record: r:x:rate5m
        expr: sum(rate(x_total[5m])) > 1
      # A comment between rules.
      - alert: A
        expr: |
          sum by (job) (increase(x_total[15m])) > 0
          or
          max_over_time(y[1h] offset 30m) >= 20
        for: 10m
        labels:
          severity: warning
      - alert: B
        expr: z > 0.9 # a comment with > 5 in it
`

// TestMutations: every for, non-zero threshold, > and window of each alert
// is a site, in order; recording rules, comments and >= are left alone.
func TestMutations(t *testing.T) {
	var got []string
	for _, m := range mutations([]byte(sample)) {
		got = append(got, m.desc)
		if string(m.content) == sample {
			t.Errorf("%s: content unchanged", m.desc)
		}
	}
	want := []string{
		`A: > made >= in "sum by (job) (increase(x_total[15m])) > 0"`,
		`A: [15m] halved in "sum by (job) (increase(x_total[15m])) > 0"`,
		`A: threshold >= 20 raised by half`,
		`A: [1h] halved in "max_over_time(y[1h] offset 30m) >= 20"`,
		`A: offset 30m halved in "max_over_time(y[1h] offset 30m) >= 20"`,
		`A: for 10m lengthened by half`,
		`B: threshold > 0.9 raised by half`,
		`B: > made >= in "expr: z > 0.9"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("mutations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, m := range mutations([]byte(sample)) {
		c := string(m.content)
		switch m.desc {
		case `A: for 10m lengthened by half`:
			if !strings.Contains(c, "for: 900s") {
				t.Errorf("%s:\n%s", m.desc, c)
			}
		case `A: offset 30m halved in "max_over_time(y[1h] offset 30m) >= 20"`:
			if !strings.Contains(c, "y[1h] offset 900s") {
				t.Errorf("%s:\n%s", m.desc, c)
			}
		case `B: threshold > 0.9 raised by half`:
			if !strings.Contains(c, "z > 1.35") {
				t.Errorf("%s:\n%s", m.desc, c)
			}
		}
	}
}

func TestDurations(t *testing.T) {
	testCases := []struct {
		in   string
		want time.Duration
		out  string // formatDuration of half of it
	}{
		{"15m", 15 * time.Minute, "450s"},
		{"1h30m", 90 * time.Minute, "2700s"},
		{"1d", 24 * time.Hour, "43200s"},
		{"3s", 3 * time.Second, "1500ms"},
	}
	for _, tc := range testCases {
		d, err := parseDuration(tc.in)
		if err != nil || d != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, d, err, tc.want)
		}
		if got := formatDuration(d / 2); got != tc.out {
			t.Errorf("formatDuration(%v) = %q, want %q", d/2, got, tc.out)
		}
	}
	for _, bad := range []string{"", "m", "15", "15x"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) accepted", bad)
		}
	}
}

const sampleTests = `rule_files:
  - rules.yml
tests:
  # A comment of the first item.
  - interval: 1m
    alert_rule_test:
      - alertname: A
  - interval: 1m
    promql_expr_test:
      - expr: count(ALERTS)
  - interval: 1m
    alert_rule_test:
      - alertname: AB
`

// TestSplitTests: a mutant of alert A runs only the items that name A (as a
// word, not AB) or read ALERTS; a file whose layout split does not know is
// run whole.
func TestSplitTests(t *testing.T) {
	st := split([]byte(sampleTests))
	if st == nil || len(st.items) != 3 {
		t.Fatalf("split = %+v, want 3 items", st)
	}
	testCases := []struct {
		alert string
		want  []string // the items kept, by a line each contains
		drop  []string
	}{
		{"A", []string{"alertname: A\n", "count(ALERTS)"}, []string{"alertname: AB"}},
		{"AB", []string{"alertname: AB", "count(ALERTS)"}, []string{"alertname: A\n"}},
		{"C", []string{"count(ALERTS)"}, []string{"alertname: A\n", "alertname: AB"}},
	}
	for _, tc := range testCases {
		got := string(st.forAlert(tc.alert))
		if !strings.HasPrefix(got, "rule_files:\n  - rules.yml\ntests:\n") {
			t.Errorf("forAlert(%s) lost the header:\n%s", tc.alert, got)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("forAlert(%s) lacks %q:\n%s", tc.alert, w, got)
			}
		}
		for _, d := range tc.drop {
			if strings.Contains(got, d) {
				t.Errorf("forAlert(%s) keeps %q:\n%s", tc.alert, d, got)
			}
		}
	}
	noAlerts := strings.Replace(sampleTests, "count(ALERTS)", "up", 1)
	if got := split([]byte(noAlerts)).forAlert("C"); got != nil {
		t.Errorf("forAlert(C) with no item that can see it = %q, want nil", got)
	}
	for _, bad := range []string{
		"rule_files: [rules.yml]\n",               // no tests:
		sampleTests + "evaluation_interval: 1m\n", // a key after tests:
		"tests:\n# only a comment\n",              // no item
	} {
		if st := split([]byte(bad)); st != nil {
			t.Errorf("split(%q) = %+v, want nil (run whole)", bad, st)
		}
	}
}
