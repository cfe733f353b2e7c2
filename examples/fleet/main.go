// Command fleet is a budget-utilization daemon: every interval it asks a
// Prometheus-compatible engine for each orchestrator's fleet-wide token
// total today, this week and this month (calendar periods in UTC; weeks
// start on Monday), divides by the token budget given on the command line,
// and reports the percentage through UpdateBudgetUtilization as
// orchestrator_budget_utilization_percent{period="daily|weekly|monthly"},
// served on its own /metrics.
//
//	go run ./examples/fleet -engine http://127.0.0.1:9090 -daily-budget 2000000
//
// See README.md beside this file for the three-command setup.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wundr-io/orchestrator-otel/exporters/prometheus"
	"github.com/wundr-io/orchestrator-otel/otelcollector"
	"github.com/wundr-io/orchestrator-otel/otelcollector/fleet"
)

type options struct {
	engine   string
	selector string
	addr     string
	interval time.Duration
	budgets  map[otelcollector.BudgetPeriod]int64
	once     bool
}

func main() {
	var o options
	var daily, weekly, monthly int64
	flag.StringVar(&o.engine, "engine", "http://127.0.0.1:9090", "URL of the Prometheus-compatible query API")
	flag.StringVar(&o.selector, "selector", `job="orchestrator-daemon"`, "label matchers added to every query (empty for none)")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:9470", "address of this daemon's /metrics")
	flag.DurationVar(&o.interval, "interval", time.Minute, "how often to recompute the utilization")
	flag.Int64Var(&daily, "daily-budget", 1_000_000, "tokens per orchestrator per day (0: not reported)")
	flag.Int64Var(&weekly, "weekly-budget", 5_000_000, "tokens per orchestrator per week (0: not reported)")
	flag.Int64Var(&monthly, "monthly-budget", 20_000_000, "tokens per orchestrator per month (0: not reported)")
	flag.BoolVar(&o.once, "once", false, "compute once, print, and exit")
	flag.Parse()
	o.budgets = map[otelcollector.BudgetPeriod]int64{
		otelcollector.PeriodDaily: daily, otelcollector.PeriodWeekly: weekly, otelcollector.PeriodMonthly: monthly,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	for p, b := range o.budgets {
		if b < 0 {
			return fmt.Errorf("%s budget %d: must not be negative", p, b)
		}
	}
	q, err := fleet.New(o.engine, fleet.WithSelector(o.selector), fleet.WithQueryTimeout(20*time.Second))
	if err != nil {
		return err
	}
	exp, err := prometheus.New(prometheus.WithServer(o.addr))
	if err != nil {
		return err
	}
	c, err := otelcollector.New(context.Background(), otelcollector.WithExporter(exp))
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(cctx)
	}()

	if !o.once {
		fmt.Fprintf(out, "serving budget utilization on http://%s/metrics; asking %s every %v\n", o.addr, o.engine, o.interval)
	}
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for {
		now := time.Now().UTC()
		if !o.once {
			fmt.Fprintf(out, "-- %s\n", now.Format(time.TimeOnly))
		}
		err := update(ctx, q, c, o, now, out)
		if o.once {
			return err // main prints it
		}
		if err != nil {
			// The engine may be down for a while: report and try again.
			// The error names the engine and the query.
			fmt.Fprintln(out, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// periodStart is the start of the calendar period holding now (UTC).
func periodStart(p otelcollector.BudgetPeriod, now time.Time) time.Time {
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	switch p {
	case otelcollector.PeriodWeekly:
		return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	case otelcollector.PeriodMonthly:
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return day
}

// update computes every orchestrator's utilization for each period with a
// budget and reports it.
func update(ctx context.Context, q otelcollector.StatsSource, c *otelcollector.Collector, o options, now time.Time, out io.Writer) error {
	f, ok := q.(*fleet.Client)
	if !ok {
		return errors.New("need a *fleet.Client to list orchestrators")
	}
	from := periodStart(otelcollector.PeriodMonthly, now)
	if w := periodStart(otelcollector.PeriodWeekly, now); w.Before(from) {
		from = w // a week that began last month
	}
	ids, err := f.Orchestrators(ctx, otelcollector.TimeRange{Start: from, End: now})
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		for _, p := range []otelcollector.BudgetPeriod{otelcollector.PeriodDaily, otelcollector.PeriodWeekly, otelcollector.PeriodMonthly} {
			budget := o.budgets[p]
			if budget == 0 {
				continue
			}
			st, err := q.AggregatedStats(ctx, id, otelcollector.TimeRange{Start: periodStart(p, now), End: now})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			pct := 100 * float64(st.TotalTokens) / float64(budget)
			if err := c.UpdateBudgetUtilization(id, p, pct); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(out, "%s %-7s %d of %d tokens = %.1f %%\n", id, p, st.TotalTokens, budget, pct)
		}
	}
	return errors.Join(errs...)
}
