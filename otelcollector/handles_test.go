package otelcollector_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wundr-io/orchestrator-otel/otelcollector"
)

var counterModes = []struct {
	name string
	opts []otelcollector.Option
}{
	{"synchronous", nil},
	{"atomic", []otelcollector.Option{otelcollector.WithAtomicCounters()}},
}

// TestHandlesRecord checks that each handle method lands in the same series
// as the Collector method it stands for.
func TestHandlesRecord(t *testing.T) {
	for _, mode := range counterModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			c, r := newTestCollector(t, mode.opts...)
			ok := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			o, err := c.Orchestrator("orch-1")
			ok(err)
			if o.ID() != "orch-1" {
				t.Fatalf("ID = %q", o.ID())
			}
			m, err := o.Model("sonnet")
			ok(err)
			ok(m.Add(ctx, 100))
			ok(o.RecordTokenUsage(ctx, "sonnet", 20))
			ok(c.RecordTokenUsage(ctx, "orch-1", "sonnet", 3))
			tool, err := o.Tool("bash")
			ok(err)
			ok(tool.Inc(ctx, otelcollector.ToolSuccess))
			ok(tool.Inc(ctx, otelcollector.ToolSuccess))
			ok(tool.Inc(ctx, otelcollector.ToolError))
			ok(o.RecordToolInvocation(ctx, "bash", otelcollector.ToolError))
			s, err := o.SessionType("claude-code")
			ok(err)
			ok(s.Start(ctx))
			ok(s.Start(ctx))
			ok(o.RecordSessionStart(ctx, "claude-code"))
			ok(s.End(ctx))
			ok(o.RecordSessionEnd(ctx, "claude-code"))
			e, err := o.ErrorType("timeout")
			ok(err)
			ok(e.Inc(ctx))
			ok(o.RecordError(ctx, "timeout"))
			ok(o.RecordDelegation(ctx, "orch-2", otelcollector.DelegationRejected))
			ok(o.RecordMessageLatency(ctx, 1500*time.Millisecond))

			ms := collect(t, r)
			for _, tc := range []struct {
				metric string
				labels []string
				want   int64
			}{
				{"orchestrator.tokens.used", []string{"orchestrator_id", "orch-1", "model", "sonnet"}, 123},
				{"orchestrator.tool.invocations", []string{"orchestrator_id", "orch-1", "tool_name", "bash", "status", "success"}, 2},
				{"orchestrator.tool.invocations", []string{"orchestrator_id", "orch-1", "tool_name", "bash", "status", "error"}, 2},
				{"orchestrator.sessions.active", []string{"orchestrator_id", "orch-1", "session_type", "claude-code"}, 1},
				{"orchestrator.errors", []string{"orchestrator_id", "orch-1", "error_type", "timeout"}, 2},
				{"orchestrator.federation.delegations", []string{"from_orchestrator", "orch-1", "to_orchestrator", "orch-2", "status", "rejected"}, 1},
			} {
				if v, found := intValue(ms[tc.metric], set(tc.labels...)); !found || v != tc.want {
					t.Errorf("%s%v = %d (found %v), want %d", tc.metric, tc.labels, v, found, tc.want)
				}
			}
			if n := seriesCount(ms["orchestrator.tool.invocations"]); n != 2 {
				t.Errorf("%d tool series, want 2: an unused status must not appear", n)
			}
			h := ms["orchestrator.message.latency"].Data.(metricdata.Histogram[float64])
			if len(h.DataPoints) != 1 || h.DataPoints[0].Count != 1 || h.DataPoints[0].Sum != 1.5 {
				t.Errorf("latency = %+v", h.DataPoints)
			}
		})
	}
}

// TestBindCreatesNoSeries checks that binding a handle exports nothing
// until it records, as with the SDK's own instruments.
func TestBindCreatesNoSeries(t *testing.T) {
	for _, mode := range counterModes {
		t.Run(mode.name, func(t *testing.T) {
			c, r := newTestCollector(t, mode.opts...)
			o, err := c.Orchestrator("orch-1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.Model("m"); err != nil {
				t.Fatal(err)
			}
			if _, err := o.SessionType("s"); err != nil {
				t.Fatal(err)
			}
			if _, err := o.ErrorType("e"); err != nil {
				t.Fatal(err)
			}
			if _, err := o.Tool("t"); err != nil {
				t.Fatal(err)
			}
			for name, m := range collect(t, r) {
				if name != "orchestrator.collector.rejected" && name != "orchestrator.collector.overflow" {
					t.Errorf("binding created %s: %+v", name, m.Data)
				}
			}
		})
	}
}

// TestHandleBadInput checks that labels are validated at bind time and
// values on every call, each failure counted like a rejected record.
func TestHandleBadInput(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestCollector(t)
	o, err := c.Orchestrator("orch-1")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := o.Model("m")
	tool, _ := o.Tool("t")
	s, _ := o.SessionType("s")
	testCases := []struct {
		name    string
		call    func() error
		want    error
		inError string
	}{
		{"Orchestrator empty", func() error { _, err := c.Orchestrator(""); return err }, otelcollector.ErrInvalidLabel, "orchestratorID"},
		{"Model too long", func() error { _, err := o.Model(strings.Repeat("x", 257)); return err }, otelcollector.ErrInvalidLabel, "model"},
		{"Tool invalid UTF-8", func() error { _, err := o.Tool("\xff"); return err }, otelcollector.ErrInvalidLabel, "toolName"},
		{"SessionType empty", func() error { _, err := o.SessionType(""); return err }, otelcollector.ErrInvalidLabel, "sessionType"},
		{"ErrorType empty", func() error { _, err := o.ErrorType(""); return err }, otelcollector.ErrInvalidLabel, "errorType"},
		{"TokenCounter negative", func() error { return m.Add(ctx, -1) }, otelcollector.ErrInvalidValue, "tokens"},
		{"ToolCounter unknown status", func() error { return tool.Inc(ctx, "ok") }, otelcollector.ErrUnknownStatus, "status"},
		{"SessionCounter end without start", func() error { return s.End(ctx) }, otelcollector.ErrInvalidValue, "active sessions"},
		{"latency negative", func() error { return o.RecordMessageLatency(ctx, -time.Second) }, otelcollector.ErrInvalidValue, "latency"},
		{"Orchestrator.RecordTokenUsage empty model", func() error { return o.RecordTokenUsage(ctx, "", 1) }, otelcollector.ErrInvalidLabel, "model"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			before := c.Rejected()
			err := tc.call()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.inError) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.want, tc.inError)
			}
			if got := c.Rejected() - before; got != 1 {
				t.Fatalf("rejections counted: %d, want 1", got)
			}
		})
	}
}

// TestHandlesAfterClose checks that binding and every handle method return
// ErrClosed once the Collector is closed.
func TestHandlesAfterClose(t *testing.T) {
	for _, mode := range counterModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			c, _ := newTestCollector(t, mode.opts...)
			o, _ := c.Orchestrator("orch-1")
			m, _ := o.Model("m")
			tool, _ := o.Tool("t")
			s, _ := o.SessionType("s")
			e, _ := o.ErrorType("e")
			if err := c.Close(ctx); err != nil {
				t.Fatal(err)
			}
			calls := map[string]func() error{
				"Orchestrator":         func() error { _, err := c.Orchestrator("orch-2"); return err },
				"Model":                func() error { _, err := o.Model("m2"); return err },
				"Tool":                 func() error { _, err := o.Tool("t2"); return err },
				"SessionType":          func() error { _, err := o.SessionType("s2"); return err },
				"ErrorType":            func() error { _, err := o.ErrorType("e2"); return err },
				"RecordMessageLatency": func() error { return o.RecordMessageLatency(ctx, time.Second) },
				"RecordTokenUsage":     func() error { return o.RecordTokenUsage(ctx, "m", 1) },
				"RecordToolInvocation": func() error { return o.RecordToolInvocation(ctx, "t", otelcollector.ToolSuccess) },
				"RecordSessionStart":   func() error { return o.RecordSessionStart(ctx, "s") },
				"RecordSessionEnd":     func() error { return o.RecordSessionEnd(ctx, "s") },
				"RecordDelegation":     func() error { return o.RecordDelegation(ctx, "x", otelcollector.DelegationSuccess) },
				"RecordError":          func() error { return o.RecordError(ctx, "e") },
				"TokenCounter.Add":     func() error { return m.Add(ctx, 1) },
				"ToolCounter.Inc":      func() error { return tool.Inc(ctx, otelcollector.ToolSuccess) },
				"SessionCounter.Start": func() error { return s.Start(ctx) },
				"SessionCounter.End":   func() error { return s.End(ctx) },
				"ErrorCounter.Inc":     func() error { return e.Inc(ctx) },
			}
			for name, call := range calls {
				if err := call(); !errors.Is(err, otelcollector.ErrClosed) {
					t.Errorf("%s after Close: %v, want ErrClosed", name, err)
				}
			}
		})
	}
}

// TestNilHandles checks that a handle whose binding failed returns
// ErrNilHandle instead of panicking.
func TestNilHandles(t *testing.T) {
	ctx := context.Background()
	var (
		o    *otelcollector.Orchestrator
		m    *otelcollector.TokenCounter
		tool *otelcollector.ToolCounter
		s    *otelcollector.SessionCounter
		e    *otelcollector.ErrorCounter
	)
	calls := map[string]func() error{
		"Model":                func() error { _, err := o.Model("m"); return err },
		"Tool":                 func() error { _, err := o.Tool("t"); return err },
		"SessionType":          func() error { _, err := o.SessionType("s"); return err },
		"ErrorType":            func() error { _, err := o.ErrorType("e"); return err },
		"RecordMessageLatency": func() error { return o.RecordMessageLatency(ctx, time.Second) },
		"RecordTokenUsage":     func() error { return o.RecordTokenUsage(ctx, "m", 1) },
		"RecordToolInvocation": func() error { return o.RecordToolInvocation(ctx, "t", otelcollector.ToolSuccess) },
		"RecordSessionStart":   func() error { return o.RecordSessionStart(ctx, "s") },
		"RecordSessionEnd":     func() error { return o.RecordSessionEnd(ctx, "s") },
		"RecordDelegation":     func() error { return o.RecordDelegation(ctx, "x", otelcollector.DelegationSuccess) },
		"RecordError":          func() error { return o.RecordError(ctx, "e") },
		"TokenCounter.Add":     func() error { return m.Add(ctx, 1) },
		"ToolCounter.Inc":      func() error { return tool.Inc(ctx, otelcollector.ToolSuccess) },
		"SessionCounter.Start": func() error { return s.Start(ctx) },
		"SessionCounter.End":   func() error { return s.End(ctx) },
		"ErrorCounter.Inc":     func() error { return e.Inc(ctx) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, otelcollector.ErrNilHandle) {
			t.Errorf("nil %s: %v, want ErrNilHandle", name, err)
		}
	}
	if o.ID() != "" {
		t.Error("nil Orchestrator has an ID")
	}
}

// TestHandlesConcurrentSafe shares handles between goroutines, including
// the lazy binding of ToolCounter's statuses.
func TestHandlesConcurrentSafe(t *testing.T) {
	for _, mode := range counterModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			c, r := newTestCollector(t, mode.opts...)
			o, _ := c.Orchestrator("orch-1")
			m, _ := o.Model("m")
			tool, _ := o.Tool("t")
			s, _ := o.SessionType("s")
			const goroutines, perG = 4, 300
			var wg sync.WaitGroup
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perG; i++ {
						_ = m.Add(ctx, 2)
						_ = tool.Inc(ctx, []otelcollector.ToolStatus{otelcollector.ToolSuccess, otelcollector.ToolError, otelcollector.ToolTimeout}[i%3])
						_ = s.Start(ctx)
						_ = s.End(ctx)
						_ = o.RecordMessageLatency(ctx, time.Millisecond)
					}
				}()
			}
			wg.Wait()
			ms := collect(t, r)
			if v, _ := intValue(ms["orchestrator.tokens.used"], set("orchestrator_id", "orch-1", "model", "m")); v != 2*goroutines*perG {
				t.Errorf("tokens = %d, want %d", v, 2*goroutines*perG)
			}
			var tools int64
			for _, dp := range ms["orchestrator.tool.invocations"].Data.(metricdata.Sum[int64]).DataPoints {
				tools += dp.Value
			}
			if tools != goroutines*perG {
				t.Errorf("tool invocations = %d, want %d", tools, goroutines*perG)
			}
			if v, _ := intValue(ms["orchestrator.sessions.active"], set("orchestrator_id", "orch-1", "session_type", "s")); v != 0 {
				t.Errorf("sessions = %d, want 0", v)
			}
		})
	}
}
