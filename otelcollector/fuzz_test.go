package otelcollector_test

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

// FuzzRecord drives every validating entry point with arbitrary labels and
// values: no panic, and either nil or an error wrapping the sentinel the
// input deserves.
func FuzzRecord(f *testing.F) {
	f.Add("orch-1", "claude-sonnet", int64(10), 0.5, "success")
	f.Add("", "m", int64(-1), math.NaN(), "")
	f.Add("\xff\xfe", "m", int64(0), math.Inf(1), "timeout")
	f.Add("o", "a\"b\\c\nd", int64(math.MaxInt64), math.Copysign(0, -1), "rejected")
	c, err := otelcollector.New(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Close(context.Background()) })
	ctx := context.Background()
	// One Collector serves every input, so token counts add up across
	// inputs: a record that would take its series past MaxInt64 is rightly
	// rejected (ErrInvalidValue). accepted is the sum of every token count
	// accepted so far, an upper bound of any one series' value: while n
	// fits under MaxInt64-accepted no series can overflow, and the record
	// must be accepted.
	var accepted atomic.Int64

	f.Fuzz(func(t *testing.T, id, label string, n int64, v float64, status string) {
		both := validLabel(id) && validLabel(label)
		check := func(name string, err error, labelsOK, valueOK, statusOK bool) {
			t.Helper()
			switch {
			case !labelsOK && !errors.Is(err, otelcollector.ErrInvalidLabel) && !errors.Is(err, otelcollector.ErrInvalidValue) && !errors.Is(err, otelcollector.ErrUnknownStatus):
				t.Fatalf("%s(%q, %q): %v, want a label error", name, id, label, err)
			case labelsOK && valueOK && statusOK && err != nil:
				t.Fatalf("%s(%q, %q, %v, %v, %q): unexpected %v", name, id, label, n, v, status, err)
			case (!labelsOK || !valueOK || !statusOK) && err == nil:
				t.Fatalf("%s(%q, %q, %v, %v, %q): accepted a bad value", name, id, label, n, v, status)
			}
		}
		err := c.RecordTokenUsage(ctx, id, label, n)
		if both && n >= 0 && errors.Is(err, otelcollector.ErrInvalidValue) && n > math.MaxInt64-accepted.Load() {
			err = nil // may overflow a series: rejecting is right
		} else if err == nil && n > 0 {
			accepted.Store(satAdd(accepted.Load(), n))
		}
		check("RecordTokenUsage", err, both, n >= 0, true)
		check("RecordMessageLatency", c.RecordMessageLatency(ctx, id, time.Duration(n)), validLabel(id), n >= 0, true)
		check("RecordError", c.RecordError(ctx, id, label), both, true, true)
		ts := otelcollector.ToolStatus(status)
		check("RecordToolInvocation", c.RecordToolInvocation(ctx, id, label, ts), both, true,
			ts == otelcollector.ToolSuccess || ts == otelcollector.ToolError || ts == otelcollector.ToolTimeout)
		ds := otelcollector.DelegationStatus(status)
		check("RecordDelegation", c.RecordDelegation(ctx, id, label, ds), both, true,
			ds == otelcollector.DelegationSuccess || ds == otelcollector.DelegationError || ds == otelcollector.DelegationRejected)
		finite := !math.IsNaN(v) && !math.IsInf(v, 0)
		check("UpdateNodeLoad", c.UpdateNodeLoad(label, v), validLabel(label), finite && v >= 0 && v <= 1, true)
		bp := otelcollector.BudgetPeriod(status)
		check("UpdateBudgetUtilization", c.UpdateBudgetUtilization(id, bp, v), validLabel(id), finite && v >= 0,
			bp == otelcollector.PeriodDaily || bp == otelcollector.PeriodWeekly || bp == otelcollector.PeriodMonthly)
		if err := c.RecordSessionStart(ctx, id, label); err == nil {
			if err := c.RecordSessionEnd(ctx, id, label); err != nil {
				t.Fatalf("ending a started session: %v", err)
			}
		} else if both {
			t.Fatalf("RecordSessionStart(%q, %q): %v", id, label, err)
		}
	})
}

// satAdd adds b >= 0 to a >= 0, saturating at MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func validLabel(s string) bool {
	return s != "" && len(s) <= otelcollector.MaxLabelBytes && utf8.ValidString(s)
}
