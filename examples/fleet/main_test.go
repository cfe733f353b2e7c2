package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/internal/enginepeer"
	"github.com/wundr-io/orchestrator-otel/internal/testpeer"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/fleet"
)

func TestPeriodStart(t *testing.T) {
	now := time.Date(2026, 12, 2, 15, 4, 5, 0, time.UTC) // a Wednesday
	testCases := []struct {
		p    otelcollector.BudgetPeriod
		want time.Time
	}{
		{otelcollector.PeriodDaily, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
		{otelcollector.PeriodWeekly, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
		{otelcollector.PeriodMonthly, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range testCases {
		if got := periodStart(tc.p, now); !got.Equal(tc.want) {
			t.Errorf("periodStart(%s) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := periodStart(otelcollector.PeriodWeekly, time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)); got.Day() != 30 {
		t.Errorf("a Monday starts its own week, got %v", got)
	}
}

// TestUpdate: a daemon records tokens, a real Prometheus scrapes it, and
// one round of the example reports the fleet-wide utilization.
func TestUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts Prometheus")
	}
	addr := testpeer.ClosedAddr(t)
	exp, err := prometheus.New(prometheus.WithServer(addr))
	if err != nil {
		t.Fatal(err)
	}
	d, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	prom := enginepeer.StartPrometheus(t, enginepeer.Options{ScrapeConfigs: enginepeer.ScrapeJob("orchestrator-daemon", false, addr)})
	// Let the first scrape see the daemon before the record, so that the
	// record falls inside today's window whatever the time of day.
	time.Sleep(1500 * time.Millisecond)
	if err := d.RecordTokenUsage(context.Background(), "orch-a", "m", 500); err != nil {
		t.Fatal(err)
	}
	q, err := fleet.New(prom.URL, fleet.WithSelector(`job="orchestrator-daemon"`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := otelcollector.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	o := options{budgets: map[otelcollector.BudgetPeriod]int64{otelcollector.PeriodDaily: 1000, otelcollector.PeriodMonthly: 10000}}
	testpeer.Eventually(t, 30*time.Second, func() error {
		var out bytes.Buffer
		if err := update(context.Background(), q, c, o, time.Now().UTC(), &out); err != nil {
			return err
		}
		for _, want := range []string{"orch-a daily   500 of 1000 tokens = 50.0 %", "orch-a monthly 500 of 10000 tokens = 5.0 %"} {
			if !strings.Contains(out.String(), want) {
				return &mismatch{out.String(), want}
			}
		}
		return nil
	})
}

type mismatch struct{ got, want string }

func (m *mismatch) Error() string { return "output " + m.got + " lacks " + m.want }

func TestRunRejectsNegativeBudget(t *testing.T) {
	err := run(context.Background(), options{engine: "http://127.0.0.1:1", budgets: map[otelcollector.BudgetPeriod]int64{otelcollector.PeriodDaily: -1}}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("negative budget accepted")
	}
}
