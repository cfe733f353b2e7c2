package otelcollector_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// sessionCounterLines are the scrape lines of the two session counters
// (series, HELP and TYPE).
func sessionCounterLines(scrape string) []string {
	var out []string
	for _, l := range strings.Split(scrape, "\n") {
		if strings.Contains(l, "orchestrator_sessions_started") || strings.Contains(l, "orchestrator_sessions_ended") {
			out = append(out, l)
		}
	}
	return out
}

// withoutSessionCounters is scrape without sessionCounterLines.
func withoutSessionCounters(scrape string) string {
	var out []string
	for _, l := range strings.Split(scrape, "\n") {
		if !strings.Contains(l, "orchestrator_sessions_started") && !strings.Contains(l, "orchestrator_sessions_ended") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// sessionWorkload starts and ends sessions on three orchestrators and two
// session types, through the Collector and a bound SessionCounter, with one
// rejected end; with a cardinality limit of 3 the third (orchestrator,
// session type) pair goes to the overflow series.
func sessionWorkload(t *testing.T, c *otelcollector.Collector) {
	t.Helper()
	ctx := context.Background()
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		ok(c.RecordSessionStart(ctx, "orch-1", "chat"))
	}
	ok(c.RecordSessionEnd(ctx, "orch-1", "chat"))
	o, err := c.Orchestrator("orch-2")
	ok(err)
	s, err := o.SessionType("review")
	ok(err)
	ok(s.Start(ctx))
	ok(s.Start(ctx))
	ok(s.End(ctx))
	ok(s.End(ctx))
	// None active: rejected, counted nowhere.
	if err := s.End(ctx); !errors.Is(err, otelcollector.ErrInvalidValue) {
		t.Fatalf("end without an active session: %v, want ErrInvalidValue", err)
	}
	// The third pair: past the limit, into the overflow series.
	ok(c.RecordSessionStart(ctx, "orch-3", "chat"))
	ok(c.RecordSessionStart(ctx, "orch-3", "chat"))
	ok(c.RecordSessionEnd(ctx, "orch-3", "chat"))
}

// TestSessionCounters: without WithSessionCounters the scrape has no
// session counter series (the legacy scrape is unchanged); with it, the
// scrape is the same plus orchestrator_sessions_started_total and
// orchestrator_sessions_ended_total, exact per series and in the overflow
// series, forgotten with ForgetOrchestrator, in both counter modes; and the
// in-process SessionsStarted and SessionsEnded are exact in both modes.
func TestSessionCounters(t *testing.T) {
	for _, mode := range counterModes {
		t.Run(mode.name, func(t *testing.T) {
			limit := otelcollector.WithCardinalityLimit(3)
			plain := newPathRig(t, append(mode.opts, limit)...)
			counted := newPathRig(t, append(mode.opts, limit, otelcollector.WithSessionCounters())...)
			sessionWorkload(t, plain.c)
			sessionWorkload(t, counted.c)

			plainScrape, countedScrape := plain.scrape(t), counted.scrape(t)
			if l := sessionCounterLines(plainScrape); len(l) != 0 {
				t.Errorf("default scrape has session counter lines:\n%s", strings.Join(l, "\n"))
			}
			if got := withoutSessionCounters(countedScrape); got != plainScrape {
				t.Errorf("with WithSessionCounters the other series differ:\n%s\nwithout the option:\n%s", got, plainScrape)
			}
			want := []string{
				"# HELP orchestrator_sessions_ended_total Agent sessions ended, by orchestrator and session type.",
				"# TYPE orchestrator_sessions_ended_total counter",
				`orchestrator_sessions_ended_total{orchestrator_id="orch-1",session_type="chat"} 1`,
				`orchestrator_sessions_ended_total{orchestrator_id="orch-2",session_type="review"} 2`,
				`orchestrator_sessions_ended_total{otel_metric_overflow="true"} 1`,
				"# HELP orchestrator_sessions_started_total Agent sessions started, by orchestrator and session type.",
				"# TYPE orchestrator_sessions_started_total counter",
				`orchestrator_sessions_started_total{orchestrator_id="orch-1",session_type="chat"} 3`,
				`orchestrator_sessions_started_total{orchestrator_id="orch-2",session_type="review"} 2`,
				`orchestrator_sessions_started_total{otel_metric_overflow="true"} 2`,
			}
			got := sessionCounterLines(countedScrape)
			// The exposition's series order differs between the modes.
			slices.Sort(got)
			slices.Sort(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("session counters:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}

			ctx := context.Background()
			for _, tc := range []struct {
				id              string
				started, ended  int64
				active          int64
				plainIsLowBound bool
			}{
				{"orch-1", 3, 1, 2, false},
				// Started and ended between two samples: the atomic
				// mode's net count sees neither without the option.
				{"orch-2", 2, 2, 0, true},
			} {
				for _, r := range []struct {
					name string
					c    *otelcollector.Collector
				}{{"default", plain.c}, {"WithSessionCounters", counted.c}} {
					st, err := r.c.AggregatedStats(ctx, tc.id, otelcollector.Last(time.Hour))
					if err != nil {
						t.Fatal(err)
					}
					if st.ActiveSessions != tc.active {
						t.Errorf("%s %s: ActiveSessions = %d, want %d", r.name, tc.id, st.ActiveSessions, tc.active)
					}
					if r.name == "default" && mode.name == "atomic" {
						if st.SessionsStarted > tc.started || st.SessionsEnded > tc.ended {
							t.Errorf("%s %s: SessionsStarted/Ended = %d/%d, above the true %d/%d", r.name, tc.id, st.SessionsStarted, st.SessionsEnded, tc.started, tc.ended)
						}
						continue
					}
					if st.SessionsStarted != tc.started || st.SessionsEnded != tc.ended {
						t.Errorf("%s %s: SessionsStarted/Ended = %d/%d, want %d/%d", r.name, tc.id, st.SessionsStarted, st.SessionsEnded, tc.started, tc.ended)
					}
				}
			}

			// Forgotten: the orchestrator's counter series go; a later
			// start begins a new series from 0.
			if err := counted.c.ForgetOrchestrator("orch-1"); err != nil {
				t.Fatal(err)
			}
			for _, l := range sessionCounterLines(counted.scrape(t)) {
				if strings.Contains(l, `"orch-1"`) {
					t.Errorf("after ForgetOrchestrator: %s", l)
				}
			}
			if err := counted.c.RecordSessionStart(ctx, "orch-1", "chat"); err != nil {
				t.Fatal(err)
			}
			if s := counted.scrape(t); !strings.Contains(s, `orchestrator_sessions_started_total{orchestrator_id="orch-1",session_type="chat"} 1`+"\n") ||
				strings.Contains(s, `orchestrator_sessions_ended_total{orchestrator_id="orch-1"`) {
				t.Errorf("after forget and one start:\n%s", strings.Join(sessionCounterLines(s), "\n"))
			}
		})
	}
}
